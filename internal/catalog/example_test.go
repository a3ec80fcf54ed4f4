package catalog_test

import (
	"fmt"

	"github.com/rampartmail/rampart/internal/catalog"
)

func ExampleService_MatchesHELO() {
	google, ok := catalog.Lookup("google-workspace")
	if !ok {
		return
	}
	fmt.Println(google.SPFIncludes)
	fmt.Println(google.MatchesHELO("mail-yw1-f170.google.com"))
	fmt.Println(google.MatchesHELO("MAIL-YW1-F170.GOOGLE.COM."))
	fmt.Println(google.MatchesHELO("evilgoogle.com"))

	// Output:
	// [_spf.google.com]
	// true
	// true
	// false
}
