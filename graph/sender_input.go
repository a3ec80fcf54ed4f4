package graph

import (
	"errors"

	"github.com/rampartmail/rampart/internal/apperr"
)

// spfIncludesInput reads a service's includes from the input's spfIncludes
// and its deprecated alias spfInclude (one include; "" for none). Given
// both, the caller meant one of them, and which cannot be told: an error.
// set is false when neither was given (a patch leaves the includes alone);
// alias says the alias was used, so that errors name the field the caller
// gave (see aliasField).
func spfIncludesInput(list []string, one *string) (includes []string, set, alias bool, err error) {
	switch {
	case list != nil && one != nil:
		return nil, false, false, apperr.Invalid("spfInclude", "give spfIncludes or the deprecated spfInclude, not both")
	case list != nil:
		return list, true, false, nil
	case one == nil:
		return nil, false, false, nil
	case *one == "":
		return []string{}, true, true, nil
	default:
		return []string{*one}, true, true, nil
	}
}

// aliasField makes an error about spfIncludes name spfInclude, the field a
// caller using the deprecated alias gave.
func aliasField(err error, alias bool) error {
	var e *apperr.Error
	if !alias || !errors.As(err, &e) || e.Field != "spfIncludes" {
		return err
	}
	c := *e
	c.Field = "spfInclude"
	return &c
}
