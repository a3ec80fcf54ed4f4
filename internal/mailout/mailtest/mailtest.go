// Package mailtest runs a real SMTP server on loopback that keeps what it
// receives, for tests of what Rampart sends through its relay
// (internal/mailout). It speaks SMTP with go-smtp's server; optionally it
// offers STARTTLS with a throwaway certificate and requires AUTH PLAIN.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// Options configure a [Box].
type Options struct {
	// TLS offers STARTTLS with a certificate for 127.0.0.1 and localhost,
	// which [Box.ClientTLS] trusts.
	TLS bool
	// Username and Password, when set, are required (AUTH PLAIN) before
	// MAIL FROM.
	Username, Password string
}

// Received is one message the server accepted.
type Received struct {
	From string
	To   []string
	// Raw is the message as sent in DATA.
	Raw []byte
	// Header is its parsed header; Body its body, quoted-printable decoded.
	Header mail.Header
	Body   string
	// TLS reports whether the session was encrypted; User is who
	// authenticated ("" for nobody).
	TLS  bool
	User string
}

// Box is a running SMTP server and what it received.
type Box struct {
	// Addr is the server's host:port on loopback.
	Addr string
	// ClientTLS trusts the server's certificate (with Options.TLS).
	ClientTLS *tls.Config

	opts  Options
	mu    sync.Mutex
	msgs  []Received
	taken int
	added chan struct{}
}

// Start runs a server until the test ends.
func Start(t testing.TB, opts Options) *Box {
	t.Helper()
	b := &Box{opts: opts, added: make(chan struct{}, 1)}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{box: b, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.MaxMessageBytes = 1 << 20
	if opts.TLS {
		cert, pool := selfSigned(t)
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		b.ClientTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	} else {
		s.AllowInsecureAuth = true
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return b
}

// All returns every message received so far.
func (b *Box) All() []Received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Received(nil), b.msgs...)
}

// Next waits up to 10 seconds for the next message not yet returned by
// Next and returns it; the test fails if none comes.
func (b *Box) Next(t testing.TB) Received {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		b.mu.Lock()
		if b.taken < len(b.msgs) {
			m := b.msgs[b.taken]
			b.taken++
			b.mu.Unlock()
			return m
		}
		b.mu.Unlock()
		select {
		case <-b.added:
		case <-deadline:
			t.Fatal("no mail arrived within 10 seconds")
		}
	}
}

// NoMore fails the test if a message arrives within wait that Next has
// not returned.
func (b *Box) NoMore(t testing.TB, wait time.Duration) {
	t.Helper()
	time.Sleep(wait)
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Equal(t, b.taken, len(b.msgs), "unexpected mail")
}

type session struct {
	box  *Box
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string {
	if s.box.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.box.opts.Username || pass != s.box.opts.Password {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.box.opts.Username != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Received{From: s.from, To: s.to, Raw: raw, User: s.user}
	_, m.TLS = s.conn.TLSConnectionState()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "unparsable message: " + err.Error()}
	}
	m.Header = msg.Header
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return err
	}
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		if body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err != nil {
			return &smtp.SMTPError{Code: 554, Message: "bad quoted-printable body"}
		}
	}
	m.Body = string(body)
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, m)
	s.box.mu.Unlock()
	select {
	case s.box.added <- struct{}{}:
	default:
	}
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

var _ smtp.AuthSession = (*session)(nil)

// selfSigned makes a certificate for 127.0.0.1 and localhost and a pool
// trusting it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailtest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}
