package spf

import (
	"fmt"
	"strings"
)

// Result is the result of an SPF check (RFC 7208 §2.6). The zero value is
// None.
type Result uint8

// The results of RFC 7208 §2.6.
const (
	None Result = iota
	Neutral
	Pass
	Fail
	SoftFail
	TempError
	PermError
)

var resultNames = [...]string{
	None:      "none",
	Neutral:   "neutral",
	Pass:      "pass",
	Fail:      "fail",
	SoftFail:  "softfail",
	TempError: "temperror",
	PermError: "permerror",
}

// String returns the result as RFC 7208 spells it in Received-SPF header
// fields, in lowercase: "pass", "softfail", "permerror".
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// ParseResult parses the name of a result, in any case.
func ParseResult(s string) (Result, error) {
	for r, name := range resultNames {
		if strings.EqualFold(s, name) {
			return Result(r), nil
		}
	}
	return None, fmt.Errorf("spf: unknown result %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (r Result) MarshalText() ([]byte, error) {
	if int(r) >= len(resultNames) {
		return nil, fmt.Errorf("spf: invalid result %d", uint8(r))
	}
	return []byte(resultNames[r]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Result) UnmarshalText(text []byte) error {
	v, err := ParseResult(string(text))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
