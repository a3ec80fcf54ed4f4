package dmarc_test

import (
	"reflect"
	"testing"

	"github.com/rampartmail/rampart/internal/dmarc"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// valid and survives String and Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, tc := range validCases {
		f.Add(tc.in)
		f.Add(tc.text)
	}
	for _, tc := range invalidCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := dmarc.Parse(in)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse(%q) gave a record that does not validate: %v", in, err)
		}
		text := r.String()
		again, err := dmarc.Parse(text)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", in, text, err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip of %q via %q:\n got %#v\nwant %#v", in, text, again, r)
		}
		if again.String() != text {
			t.Fatalf("canonical text %q composed again as %q", text, again.String())
		}
	})
}
