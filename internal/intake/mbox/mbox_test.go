package mbox_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/intake/mbox"
)

// all reads every message.
func all(t testing.TB, data string, max int64) []mbox.Message {
	t.Helper()
	r := mbox.NewReader(strings.NewReader(data), max)
	var out []mbox.Message
	for {
		m, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, m)
	}
}

func raws(ms []mbox.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Raw)
		if m.TooLarge {
			out[i] = "<too large>"
		}
	}
	return out
}

func TestSplit(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200<<10)
	for _, tc := range []struct {
		name string
		in   string
		max  int64
		want []string
	}{
		{
			name: "three messages",
			in:   "From a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\nbody 1\n\nFrom b@x Mon Jan  1 00:00:00 2024\nSubject: 2\n\nbody 2\n\nFrom c@x Mon Jan  1 00:00:00 2024\nSubject: 3\n\nbody 3\n\n",
			want: []string{"Subject: 1\n\nbody 1\n", "Subject: 2\n\nbody 2\n", "Subject: 3\n\nbody 3\n"},
		},
		{
			name: "escaped From lines lose one >",
			in:   "From a@x\nSubject: 1\n\n>From here\n>>From there\n> From nowhere\nFrom: not a separator\n",
			want: []string{"Subject: 1\n\nFrom here\n>From there\n> From nowhere\nFrom: not a separator\n"},
		},
		{
			name: "CRLF",
			in:   "From a@x\r\nSubject: 1\r\n\r\nbody\r\n\r\nFrom b@x\r\nSubject: 2\r\n\r\nbody\r\n",
			want: []string{"Subject: 1\r\n\r\nbody\r\n", "Subject: 2\r\n\r\nbody\r\n"},
		},
		{
			name: "no blank line before the next separator, none at the end",
			in:   "From a@x\nSubject: 1\nFrom b@x\nSubject: 2",
			want: []string{"Subject: 1\n", "Subject: 2"},
		},
		{
			name: "empty messages",
			in:   "From a@x\n\nFrom b@x\nFrom c@x",
			want: []string{"", "", ""},
		},
		{
			name: "a line longer than the buffer",
			in:   "From a@x\nSubject: long\n\n" + long + "From not a separator\n\nFrom b@x\nSubject: 2\n",
			want: []string{"Subject: long\n\n" + long + "From not a separator\n", "Subject: 2\n"},
		},
		{
			name: "too large is skipped, the next is read",
			in:   "From a@x\nSubject: 1\n\n" + long + "\n\nFrom b@x\nSubject: 2\n",
			max:  1024,
			want: []string{"<too large>", "Subject: 2\n"},
		},
		{
			name: "exactly at the limit",
			in:   "From a@x\n0123456789\n\nFrom b@x\n01234567890\n",
			max:  11,
			want: []string{"0123456789\n", "<too large>"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := all(t, tc.in, tc.max)
			require.Equal(t, tc.want, raws(got))
			for i, m := range got {
				require.Equal(t, i+1, m.Index)
				if !m.TooLarge {
					require.EqualValues(t, len(m.Raw), m.Size)
				}
			}
		})
	}
}

func TestSeparatorAndSize(t *testing.T) {
	t.Parallel()
	got := all(t, "From a@x Mon Jan  1 00:00:00 2024\r\nS: 1\r\n\r\nFrom "+strings.Repeat("y", 5000)+"\nS: 2\n", 100)
	require.Len(t, got, 2)
	require.Equal(t, "From a@x Mon Jan  1 00:00:00 2024", got[0].Separator)
	require.Len(t, got[1].Separator, 1000, "a long separator line is cut")
	require.Equal(t, "S: 2\n", string(got[1].Raw))
}

func TestNotMbox(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "From: a@x\nSubject: 1\n\nbody\n", "<?xml version=\"1.0\"?>"} {
		_, err := mbox.NewReader(strings.NewReader(in), 0).Next()
		require.ErrorIs(t, err, mbox.ErrNotMbox, in)
		require.False(t, mbox.IsMbox([]byte(in)))
	}
	require.True(t, mbox.IsMbox([]byte("From a@x Mon Jan  1 00:00:00 2024\n")))
}

// write is a minimal mboxrd writer: the inverse of the reader for
// messages without CR that end with a line break.
func write(msgs [][]byte) []byte {
	var b bytes.Buffer
	for _, m := range msgs {
		b.WriteString("From sender@example.com Mon Jan  1 00:00:00 2024\n")
		for _, line := range bytes.SplitAfter(m, []byte("\n")) {
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				b.WriteByte('>')
			}
			b.Write(line)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte("From a@x\nSubject: 1\n\n>From here\n\nFrom b@x\nSubject: 2\n"))
	f.Add([]byte("From a@x\r\nS: 1\r\n\r\nFrom b@x\r\n"))
	f.Add([]byte("Subject: 1\x00From inside\x00>From\n>>From x\n\x00\x00\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Any input: no panic, messages within the limit and the input.
		const max = 1 << 12
		r := mbox.NewReader(bytes.NewReader(data), max)
		total := 0
		for i := 1; ; i++ {
			m, err := r.Next()
			if err != nil {
				break
			}
			require.Equal(t, i, m.Index)
			if m.TooLarge {
				require.Nil(t, m.Raw)
				require.Greater(t, m.Size, int64(max))
				continue
			}
			require.LessOrEqual(t, len(m.Raw), max)
			total += len(m.Raw)
		}
		require.LessOrEqual(t, total, len(data))

		// The input as messages: what a writer wrote, the reader returns.
		var msgs [][]byte
		for _, m := range bytes.Split(bytes.ReplaceAll(data, []byte("\r"), nil), []byte{0}) {
			if len(m) > 0 && m[len(m)-1] != '\n' {
				m = append(m, '\n')
			}
			msgs = append(msgs, m)
		}
		got := all(t, string(write(msgs)), 0)
		require.Len(t, got, len(msgs))
		for i, m := range got {
			require.Equal(t, string(msgs[i]), string(m.Raw), "message %d", i+1)
		}
	})
}
