package dkim_test

import (
	"errors"
	"fmt"

	"github.com/rampartmail/rampart/internal/dkim"
)

func ExampleParsePublicKey() {
	// A record as a DNS provider shows it: quoted, split, with a testing flag.
	k, warnings, err := dkim.ParsePublicKey(`"v=DKIM1; k=ed25519; t=y; " "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(k.Type, k.Bits)
	fmt.Println(k.Record())
	for _, w := range warnings {
		fmt.Println(w.Code)
	}

	_, _, err = dkim.ParsePublicKey("v=DKIM1; k=rsa; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	fmt.Println(err)
	fmt.Println(errors.Is(err, dkim.ErrKeyMismatch))

	// Output:
	// ed25519 256
	// v=DKIM1; k=ed25519; t=y; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
	// testing
	// dkim: tag "p": k=rsa, but p= holds 32 bytes, the size of a raw ed25519 key; use k=ed25519
	// true
}

func ExampleParseSelector() {
	sel, err := dkim.ParseSelector(" Selector1 ")
	fmt.Println(sel, err)
	name, err := dkim.RecordName(sel, "example.com")
	fmt.Println(name, err)
	_, err = dkim.ParseSelector("selector1._domainkey")
	fmt.Println(err)

	// Output:
	// selector1 <nil>
	// selector1._domainkey.example.com <nil>
	// dkim: selector "selector1._domainkey": give only the selector, the part before ._domainkey
}
