package mbox_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rampartmail/rampart/internal/intake/mbox"
)

func ExampleReader() {
	const file = "From a@example.com Mon Jan  1 00:00:00 2024\n" +
		"Subject: first\n\n>From the body\n\n" +
		"From b@example.com Mon Jan  1 00:00:00 2024\n" +
		"Subject: second\n\n" + "too long for the limit\n"
	r := mbox.NewReader(strings.NewReader(file), 30)
	for {
		m, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if m.TooLarge {
			fmt.Printf("%d: skipped, %d bytes\n", m.Index, m.Size)
			continue
		}
		fmt.Printf("%d: %q\n", m.Index, m.Raw)
	}
	// Output:
	// 1: "Subject: first\n\nFrom the body\n"
	// 2: skipped, 40 bytes
}
