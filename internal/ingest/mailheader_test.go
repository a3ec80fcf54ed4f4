package ingest_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/ingest"
)

func TestParseMailHeaders(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 300)
	for _, tc := range []struct {
		name, raw string
		want      ingest.MailHeaders
	}{
		{"plain", "From: a@example.com\r\nSubject: Report Domain: example.com\r\nMessage-ID: <1@example.com>\r\n\r\nbody",
			ingest.MailHeaders{From: "a@example.com", Subject: "Report Domain: example.com", MessageID: "<1@example.com>"}},
		{"encoded words, folded", "From: =?UTF-8?B?UsOpY2VpdmVy?= <r@example.com>\r\nSubject: =?ISO-8859-1?Q?Rapport_=E9t=E9?=\r\n and more\r\n\r\n",
			ingest.MailHeaders{From: "Réceiver <r@example.com>", Subject: "Rapport été and more"}},
		{"mbox line first", "From r@example.com Thu Nov 27 00:00:00 2026\nSubject: s\n\n", ingest.MailHeaders{Subject: "s"}},
		{"NUL, controls, invalid UTF-8, bidi override", "Subject: a\x00b\x01c\xffd\u202ee\r\n\r\n", ingest.MailHeaders{Subject: "ab c\uFFFDde"}},
		{"broken part way keeps what came before", "Subject: kept\r\nno colon here\r\nFrom: lost@example.com\r\n\r\n", ingest.MailHeaders{Subject: "kept"}},
		{"long value clipped on a rune", "Subject: " + long + "\r\n\r\n", ingest.MailHeaders{Subject: strings.Repeat("é", 127)}},
		{"not a message", "<feedback/>", ingest.MailHeaders{}},
		{"header past 64 KiB is not read", "X-Pad: " + strings.Repeat("x", 70<<10) + "\r\nSubject: late\r\n\r\n", ingest.MailHeaders{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, ingest.ParseMailHeaders([]byte(tc.raw)))
		})
	}
}

// FuzzParseMailHeaders: whatever the bytes, each value is valid UTF-8
// without control or format characters, at most 255 bytes.
func FuzzParseMailHeaders(f *testing.F) {
	f.Add([]byte("From: =?UTF-8?B?UsOpY2VpdmVy?= <r@example.com>\r\nSubject: a\x00b\r\n c\r\nMessage-ID: <1@x>\r\n\r\n"))
	f.Add([]byte("From r@example.com\nSubject: =?ISO-8859-1?Q?=E9?=\n\n"))
	f.Add([]byte("Subject: \xff\xfe\u202e\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h := ingest.ParseMailHeaders(raw)
		for _, v := range []string{h.From, h.Subject, h.MessageID} {
			require.True(t, utf8.ValidString(v), "%q", v)
			require.LessOrEqual(t, len(v), 255)
			require.Equal(t, strings.TrimSpace(v), v)
			for _, r := range v {
				require.False(t, unicode.IsControl(r) || unicode.Is(unicode.Cf, r), "%q", v)
			}
		}
	})
}
