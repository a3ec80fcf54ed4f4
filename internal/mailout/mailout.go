// Package mailout sends Rampart's own e-mail (invitations, password
// resets) through an SMTP relay the operator configures, or, in `rampart
// dev`, writes it to the log. Messages are plain text; every header value
// is checked, so that an address or subject cannot smuggle in headers.
package mailout

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one plain-text e-mail to one recipient.
type Message struct {
	To      string
	Subject string
	Body    string
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// TLS modes of the relay connection.
const (
	TLSStartTLS = "starttls" // plain connection, then STARTTLS (required)
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
	TLSNone     = "none"     // no TLS: only for a relay on the same host or network
)

// DefaultTimeout bounds one delivery to the relay.
const DefaultTimeout = 30 * time.Second

// maxAddressLen is the longest address accepted (RFC 5321's path limit).
const maxAddressLen = 254

// Config configures a [Relay].
type Config struct {
	// Addr is the relay's host:port.
	Addr string
	// From is the sender address of every message.
	From string
	// TLS is TLSStartTLS (the default), TLSImplicit or TLSNone.
	TLS string
	// Username and Password authenticate with AUTH PLAIN when Username is
	// set; never over a connection without TLS.
	Username, Password string
	// TLSConfig overrides the TLS client configuration (tests: a private
	// root); its ServerName defaults to the relay's host.
	TLSConfig *tls.Config
	// HelloName is the name sent in EHLO; default "localhost".
	HelloName string
	// Timeout bounds one delivery; default DefaultTimeout.
	Timeout time.Duration
	// Now is the clock for the Date header; default time.Now.
	Now func() time.Time
}

// Relay sends messages through an SMTP relay. It is safe for concurrent
// use; each message is its own connection.
type Relay struct{ cfg Config }

// NewRelay checks cfg and returns a Relay.
func NewRelay(cfg Config) (*Relay, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("mail relay address %q: want host:port", cfg.Addr)
	}
	if _, err := checkAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("mail sender address: %w", err)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSStartTLS
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return nil, fmt.Errorf("mail relay TLS mode %q: want starttls, tls or none", cfg.TLS)
	}
	if cfg.Username != "" && cfg.TLS == TLSNone {
		return nil, errors.New("mail relay: refusing to send a password without TLS (set TLS to starttls or tls)")
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Relay{cfg: cfg}, nil
}

// Send delivers m to the relay: it returns once the relay accepted the
// message, or with the relay's refusal or the connection's failure.
func (r *Relay) Send(ctx context.Context, m Message) error {
	to, err := checkAddress(m.To)
	if err != nil {
		return err
	}
	raw, err := Compose(r.cfg.From, m, r.cfg.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	c, err := r.dial(ctx)
	if err != nil {
		return fmt.Errorf("mail relay %s: %w", r.cfg.Addr, err)
	}
	defer func() { _ = c.Close() }()
	if err := r.deliver(c, to, raw); err != nil {
		return fmt.Errorf("mail relay %s: %w", r.cfg.Addr, err)
	}
	return nil
}

func (r *Relay) dial(ctx context.Context) (*smtp.Client, error) {
	host, _, _ := net.SplitHostPort(r.cfg.Addr)
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.cfg.TLSConfig != nil {
		tc = r.cfg.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.cfg.Addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var c *smtp.Client
	switch r.cfg.TLS {
	case TLSImplicit:
		c = smtp.NewClient(tls.Client(conn, tc))
		err = c.Hello(r.cfg.HelloName)
	case TLSStartTLS:
		// The relay must offer STARTTLS; a relay that does not is refused
		// rather than spoken to in the clear.
		if c, err = smtp.NewClientStartTLS(conn, tc); err == nil {
			err = c.Hello(r.cfg.HelloName)
		}
	default:
		c = smtp.NewClient(conn)
		err = c.Hello(r.cfg.HelloName)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

func (r *Relay) deliver(c *smtp.Client, to string, raw []byte) error {
	if r.cfg.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", r.cfg.Username, r.cfg.Password)); err != nil {
			return fmt.Errorf("authenticate: %w", err)
		}
	}
	from, _ := checkAddress(r.cfg.From)
	if err := c.Mail(from, nil); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	return c.Quit()
}

// ErrBadMessage is returned for a message that cannot be sent as given: a
// malformed address, or a header value with line breaks.
var ErrBadMessage = errors.New("bad message")

// checkAddress returns the bare address of a single e-mail address (with
// or without a display name), or an error matching ErrBadMessage.
func checkAddress(s string) (string, error) {
	if s == "" || len(s) > 2*maxAddressLen || strings.ContainsAny(s, "\r\n\x00") || !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: %q is not an e-mail address", ErrBadMessage, s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || len(a.Address) > maxAddressLen || !strings.Contains(a.Address, "@") {
		return "", fmt.Errorf("%w: %q is not an e-mail address", ErrBadMessage, s)
	}
	return a.Address, nil
}

// Compose renders the message with its headers, in CRLF lines, ready for
// DATA. It refuses (ErrBadMessage) addresses that do not parse and a
// subject with line breaks or control characters: nothing from the message
// can add a header.
func Compose(from string, m Message, now time.Time) ([]byte, error) {
	f, err := checkAddress(from)
	if err != nil {
		return nil, err
	}
	to, err := checkAddress(m.To)
	if err != nil {
		return nil, err
	}
	if !utf8.ValidString(m.Subject) || strings.ContainsFunc(m.Subject, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("%w: the subject has control characters", ErrBadMessage)
	}
	if !utf8.ValidString(m.Body) {
		return nil, fmt.Errorf("%w: the body is not UTF-8", ErrBadMessage)
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	_, domain, _ := strings.Cut(f, "@")
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", (&mail.Address{Address: f}).String())
	header("To", (&mail.Address{Address: to}).String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// Log is the Sender of `rampart dev`: it writes each message, links and
// all, to the log instead of sending it, so that a developer can follow an
// invitation or a password reset without a mail server.
type Log struct{ Logger *slog.Logger }

// Send implements Sender.
func (l Log) Send(ctx context.Context, m Message) error {
	to, err := checkAddress(m.To)
	if err != nil {
		return err
	}
	l.Logger.InfoContext(ctx, "mail (dev: printed, not sent)", "to", to, "subject", m.Subject, "body", m.Body)
	return nil
}
