package dmarc_test

import (
	"errors"
	"fmt"

	"github.com/rampartmail/rampart/internal/dmarc"
)

func Example() {
	r, err := dmarc.Parse("v=DMARC1;P=Reject; rua = mailto:dmarc@example.com!10M ; pct=50; np=quarantine;")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.String())
	fmt.Println(r.EffectivePercent(), r.EffectiveSubdomainPolicy(), r.EffectiveNonExistentPolicy())

	// A record built in code, as from owner input, is validated before use.
	r = dmarc.Record{Policy: dmarc.Quarantine, Percent: new(101)}
	fmt.Println(r.Validate())

	_, err = dmarc.Parse("v=spf1 -all")
	fmt.Println(errors.Is(err, dmarc.ErrNotDMARC))

	// Output:
	// v=DMARC1; p=reject; np=quarantine; pct=50; rua=mailto:dmarc@example.com!10m
	// 50 reject quarantine
	// dmarc: tag "pct": "101" is not an integer between 0 and 100
	// true
}
