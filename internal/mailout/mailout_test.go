package mailout_test

import (
	"bytes"
	"context"
	"errors"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/mailout"
	"github.com/rampartmail/rampart/internal/mailout/mailtest"
)

// TestRelay sends through a real SMTP server on loopback, in the clear and
// with STARTTLS and AUTH PLAIN, and reads the message back as received.
func TestRelay(t *testing.T) {
	t.Parallel()
	msg := mailout.Message{To: "Ann.Example@customer.test", Subject: "Join Acme on Rampart — ünïcode",
		Body: "Hello,\n\nfollow https://rampart.test/accept-invitation?token=rinv_abc=def\nA line of " + strings.Repeat("x", 100) + "\n"}

	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		box := mailtest.Start(t, mailtest.Options{})
		r, err := mailout.NewRelay(mailout.Config{Addr: box.Addr, From: "Rampart <noreply@rampart.test>", TLS: mailout.TLSNone})
		require.NoError(t, err)
		require.NoError(t, r.Send(context.Background(), msg))
		got := box.Next(t)
		require.Equal(t, "noreply@rampart.test", got.From)
		require.Equal(t, []string{"Ann.Example@customer.test"}, got.To)
		require.False(t, got.TLS)
		subject, err := new(mimeDecoder).decode(got.Header.Get("Subject"))
		require.NoError(t, err)
		require.Equal(t, msg.Subject, subject)
		require.Equal(t, strings.ReplaceAll(msg.Body, "\n", "\r\n")+"\r\n", got.Body, "the body survives quoted-printable, long lines and '=' included")
		require.Equal(t, "auto-generated", got.Header.Get("Auto-Submitted"))
		_, err = got.Header.Date()
		require.NoError(t, err)
	})

	t.Run("starttls and auth", func(t *testing.T) {
		t.Parallel()
		box := mailtest.Start(t, mailtest.Options{TLS: true, Username: "relay-user", Password: "relay-pass"})
		r, err := mailout.NewRelay(mailout.Config{Addr: box.Addr, From: "noreply@rampart.test", TLSConfig: box.ClientTLS,
			Username: "relay-user", Password: "relay-pass"})
		require.NoError(t, err)
		require.NoError(t, r.Send(context.Background(), msg))
		got := box.Next(t)
		require.True(t, got.TLS)
		require.Equal(t, "relay-user", got.User)

		bad, err := mailout.NewRelay(mailout.Config{Addr: box.Addr, From: "noreply@rampart.test", TLSConfig: box.ClientTLS,
			Username: "relay-user", Password: "wrong"})
		require.NoError(t, err)
		require.ErrorContains(t, bad.Send(context.Background(), msg), "authenticate")

		// A certificate the client does not trust is a failure, not a
		// downgrade.
		untrusting, err := mailout.NewRelay(mailout.Config{Addr: box.Addr, From: "noreply@rampart.test", Username: "relay-user", Password: "relay-pass"})
		require.NoError(t, err)
		require.Error(t, untrusting.Send(context.Background(), msg))
		box.NoMore(t, 0)
	})

	t.Run("starttls required", func(t *testing.T) {
		t.Parallel()
		box := mailtest.Start(t, mailtest.Options{})
		r, err := mailout.NewRelay(mailout.Config{Addr: box.Addr, From: "noreply@rampart.test"})
		require.NoError(t, err)
		require.ErrorContains(t, r.Send(context.Background(), msg), "STARTTLS")
		box.NoMore(t, 0)
	})

	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		r, err := mailout.NewRelay(mailout.Config{Addr: "127.0.0.1:1", From: "noreply@rampart.test", TLS: mailout.TLSNone, Timeout: 2 * time.Second})
		require.NoError(t, err)
		require.Error(t, r.Send(context.Background(), msg))
	})
}

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]mailout.Config{
		"no port":            {Addr: "relay.test", From: "a@b.test"},
		"bad from":           {Addr: "relay.test:25", From: "nobody"},
		"bad tls":            {Addr: "relay.test:25", From: "a@b.test", TLS: "maybe"},
		"password cleartext": {Addr: "relay.test:25", From: "a@b.test", TLS: mailout.TLSNone, Username: "u", Password: "p"},
	} {
		_, err := mailout.NewRelay(c)
		require.Error(t, err, name)
	}
}

func TestComposeRefusesInjection(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, m := range []mailout.Message{
		{To: "a@b.test\r\nBcc: victim@c.test", Subject: "x"},
		{To: "a@b.test", Subject: "x\r\nBcc: victim@c.test"},
		{To: "a@b.test", Subject: "x\nBcc: victim@c.test"},
		{To: "not an address", Subject: "x"},
		{To: "a@b.test, c@d.test", Subject: "x"},
	} {
		_, err := mailout.Compose("noreply@rampart.test", m, now)
		require.ErrorIs(t, err, mailout.ErrBadMessage, "%q", m)
	}
}

// FuzzCompose: whatever the recipient, subject and body, Compose either
// refuses with ErrBadMessage or yields a message that parses with exactly
// the expected headers, one recipient, and no header taken from the input.
func FuzzCompose(f *testing.F) {
	f.Add("a@b.test", "Hello", "body\n")
	f.Add("Ann <a@b.test>", "=?utf-8?q?x?=", "line\r\n.\r\n")
	f.Add("a@b.test\nBcc: c@d.test", "s", "b")
	f.Add("\"x\r\ny\" <a@b.test>", "s\u2028", "\x00")
	f.Fuzz(func(t *testing.T, to, subject, body string) {
		raw, err := mailout.Compose("noreply@rampart.test", mailout.Message{To: to, Subject: subject, Body: body}, time.Unix(0, 0))
		if err != nil {
			if !errors.Is(err, mailout.ErrBadMessage) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("composed message does not parse: %v\n%q", err, raw)
		}
		if len(m.Header) != 9 {
			t.Fatalf("want 9 headers, got %d: %v", len(m.Header), m.Header)
		}
		list, err := m.Header.AddressList("To")
		if err != nil || len(list) != 1 {
			t.Fatalf("To: %v %v", list, err)
		}
		if bytes.Contains(raw, []byte("\n")) && bytes.Count(raw, []byte("\n")) != bytes.Count(raw, []byte("\r\n")) {
			t.Fatalf("bare LF in %q", raw)
		}
	})
}
