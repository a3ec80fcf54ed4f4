package access

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/internal/access/accessdb"
	"github.com/rampartmail/rampart/internal/apperr"
)

// Level is what a grant (a team's, or an API token's scope) allows on its
// domains; each holds every permission of the levels below it.
type Level int

// The levels. LevelOwner is for API tokens only: teams never hold
// [ManageUsers].
const (
	LevelRead Level = iota + 1
	LevelManageSenders
	LevelManagePolicy
	LevelAdmin
	LevelOwner
)

// levelPermissions is the one definition of what each level adds.
var levelPermissions = map[Level][]Permission{
	LevelRead:          {ViewReports},
	LevelManageSenders: {ManageSenders, ManageDKIM},
	LevelManagePolicy:  {ManagePolicy},
	LevelAdmin:         {ManageDomains},
	LevelOwner:         {ManageUsers},
}

var levelNames = map[Level]string{
	LevelRead: "read", LevelManageSenders: "manage senders", LevelManagePolicy: "manage policy",
	LevelAdmin: "admin", LevelOwner: "owner",
}

func (l Level) String() string {
	if s, ok := levelNames[l]; ok {
		return s
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Valid reports whether l is a level.
func (l Level) Valid() bool { return l >= LevelRead && l <= LevelOwner }

// Holds reports whether the level holds the permission.
func (l Level) Holds(perm Permission) bool {
	for lv := LevelRead; lv <= l && lv <= LevelOwner; lv++ {
		for _, p := range levelPermissions[lv] {
			if p == perm {
				return true
			}
		}
	}
	return false
}

// Permissions lists what the level holds.
func (l Level) Permissions() []Permission {
	var out []Permission
	for lv := LevelRead; lv <= l && lv <= LevelOwner; lv++ {
		out = append(out, levelPermissions[lv]...)
	}
	return out
}

// SetKind is the shape of a [DomainSet].
type SetKind string

// The kinds of domain set.
const (
	AllDomains   SetKind = "all"
	NamedDomains SetKind = "named"
	LabelDomains SetKind = "label"
)

// DomainSet is the domains of an account a grant covers.
type DomainSet struct {
	Kind SetKind
	// Domains are the ids of a named set.
	Domains []uuid.UUID
	// Label is the label of a label set.
	Label string
}

// Within reports whether every domain of s is in o (both of one account);
// a label set is within only the same label or every domain, since which
// domains carry a label changes.
func (s DomainSet) Within(o DomainSet) bool {
	switch o.Kind {
	case AllDomains:
		return true
	case NamedDomains:
		if s.Kind != NamedDomains {
			return false
		}
		for _, d := range s.Domains {
			found := false
			for _, e := range o.Domains {
				found = found || d == e
			}
			if !found {
				return false
			}
		}
		return true
	case LabelDomains:
		return s.Kind == LabelDomains && s.Label == o.Label
	}
	return false
}

// DefaultMaxDepth is how deep customer accounts nest unless the operator
// says otherwise: an MSP, its customers, theirs, and theirs.
const DefaultMaxDepth = 3

var maxDepth atomic.Int32

func init() { maxDepth.Store(DefaultMaxDepth) }

// SetMaxDepth sets how many levels of customer accounts may hang below a
// top-level account (`-msp-depth`): owners act down that many levels, and
// [CheckParent] refuses deeper nesting. It is set once, at start-up.
func SetMaxDepth(n int) {
	if n < 0 {
		n = 0
	}
	maxDepth.Store(int32(n))
}

// MaxDepth returns the nesting depth the operator allows.
func MaxDepth() int { return int(maxDepth.Load()) }

// CheckParent refuses to make parentID the parent of an account when the
// new account would sit deeper than [MaxDepth] (BAD_USER_INPUT); a nil
// parent is always fine. It is asked wherever an account gets a parent.
func CheckParent(ctx context.Context, db accessdb.DBTX, parentID *uuid.UUID) error {
	if parentID == nil {
		return nil
	}
	d, err := accessdb.New(db).AccountDepth(ctx, accessdb.AccountDepthParams{AccountID: *parentID, MaxDepth: maxDepth.Load()})
	if err != nil {
		return fmt.Errorf("check nesting depth: %w", err)
	}
	if int(d)+1 > MaxDepth() {
		return apperr.Invalid("parentId", "customer accounts nest at most %d levels deep", MaxDepth())
	}
	return nil
}

// MaxLabelLen bounds a domain label.
const MaxLabelLen = 64

// NormalizeLabel trims and lower-cases a domain label and checks it: 1 to
// 64 characters, letters, digits, '-', '_' and '.' (BAD_USER_INPUT
// otherwise).
func NormalizeLabel(l string) (string, error) {
	l = strings.ToLower(strings.TrimSpace(l))
	if l == "" || len(l) > MaxLabelLen {
		return "", apperr.Invalid("label", "a label has 1 to %d characters", MaxLabelLen)
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return "", apperr.Invalid("label", "a label has only letters, digits, '-', '_' and '.'")
		}
	}
	return l, nil
}

// Within reports whether account is ancestor or a customer account below
// it, at most [MaxDepth] levels down.
func Within(ctx context.Context, db accessdb.DBTX, ancestor, account uuid.UUID) (bool, error) {
	ok, err := accessdb.New(db).IsWithin(ctx, accessdb.IsWithinParams{AncestorID: ancestor, AccountID: account, MaxDepth: maxDepth.Load()})
	if err != nil {
		return false, fmt.Errorf("check the account is below: %w", err)
	}
	return ok, nil
}
