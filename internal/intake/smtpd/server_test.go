package smtpd_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/intake/intaketest"
	"github.com/rampartmail/rampart/internal/intake/smtpd"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const reportsDomain = "reports.rampart.test"

type env struct {
	*intaketest.Env
	addr   string
	domain uuid.UUID
	token  string
}

// setup runs a server on loopback for one test, with a hosted domain.
func setup(t *testing.T, change func(*smtpd.Config)) *env {
	t.Helper()
	e := newEnv(t)
	cfg := smtpd.Config{Addr: "127.0.0.1:0", Domain: reportsDomain, ShutdownGrace: 5 * time.Second}
	if change != nil {
		change(&cfg)
	}
	e.start(t, cfg)
	return e
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Env: intaketest.New(t)}
	e.domain, e.token = e.AddDomain(t, e.Account, "example.com")
	return e
}

// start runs the server until the test ends.
func (e *env) start(t *testing.T, cfg smtpd.Config) {
	t.Helper()
	srv, err := smtpd.New(cfg, e.Store, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	e.addr = srv.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
}

func (e *env) rua() string { return e.token + "@" + reportsDomain }

func (e *env) dial(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(e.addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Hello("mx.receiver.test"))
	return c
}

// message is a small rua mail.
func message(id string) string {
	return "From: noreply-dmarc@receiver.test\r\nTo: dmarc@example.com\r\nSubject: Report Domain: example.com Report-ID: " +
		id + "\r\nMessage-ID: <" + id + "@receiver.test>\r\n\r\nreport body " + id + "\r\n"
}

func send(c *smtp.Client, body string) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	return w.Close()
}

func requireCode(t *testing.T, err error, code int, enhanced smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	require.True(t, errors.As(err, &se), "want an SMTP error, got %v", err)
	require.Equal(t, code, se.Code, se.Message)
	require.Equal(t, enhanced, se.EnhancedCode, se.Message)
}

func TestAcceptsMailForAHostedDomain(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	c := e.dial(t)
	require.NoError(t, c.Mail("noreply-dmarc@receiver.test", nil))
	// The domain part is case-insensitive, and so is the token.
	require.NoError(t, c.Rcpt(strings.ToUpper(e.token)+"@Reports.Rampart.Test", nil))
	body := message("r1")
	require.NoError(t, send(c, body))
	require.NoError(t, c.Quit())

	blobs := e.Blobs(t)
	require.Len(t, blobs, 1)
	b := blobs[0]
	require.Equal(t, "smtp", b.Source)
	require.Equal(t, body, string(b.Raw), "stored exactly as received")
	require.Equal(t, []uuid.UUID{e.domain}, b.Recipients)
	require.Nil(t, b.AccountID)
	require.Equal(t, "127.0.0.1", b.Remote)
	require.Equal(t, 1, e.IngestJobs(t))
}

// TestStoresOnceForEveryRecipient: a message naming several report
// addresses is stored once, as one blob whose recipients are the named
// domains, with one job. The same message again is a duplicate; the same
// message for a further domain, even of another account, is the same blob
// with that recipient added and a new job to work it for it.
func TestStoresOnceForEveryRecipient(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	other, otherToken := e.AddDomain(t, e.Account, "example.net")
	elsewhere, elsewhereToken := e.AddDomain(t, e.AddAccount(t, "elsewhere"), "example.org")
	c := e.dial(t)
	require.NoError(t, c.Mail("noreply-dmarc@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	require.NoError(t, c.Rcpt(e.token+"+tag@"+reportsDomain, nil), "a +tag names the same domain")
	require.NoError(t, c.Rcpt(otherToken+"@"+reportsDomain, nil))
	require.NoError(t, send(c, message("r2")))

	blobs := e.Blobs(t)
	require.Len(t, blobs, 1)
	require.ElementsMatch(t, []uuid.UUID{e.domain, other}, blobs[0].Recipients)
	require.Equal(t, 1, e.IngestJobs(t))

	// The same message again (a retry) is recognised, not stored twice.
	require.NoError(t, c.Mail("noreply-dmarc@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	require.NoError(t, send(c, message("r2")))
	require.Equal(t, 1, e.BlobCount(t))
	require.Equal(t, 1, e.IngestJobs(t))

	// Sent on to another tenant's address: still one blob.
	require.NoError(t, c.Mail("noreply-dmarc@receiver.test", nil))
	require.NoError(t, c.Rcpt(elsewhereToken+"@"+reportsDomain, nil))
	require.NoError(t, send(c, message("r2")))
	blobs = e.Blobs(t)
	require.Len(t, blobs, 1)
	require.ElementsMatch(t, []uuid.UUID{e.domain, other, elsewhere}, blobs[0].Recipients)
	require.Equal(t, 2, e.IngestJobs(t))
}

// TestIngestedForEveryRecipient: one message carrying a report for each of
// two domains of different accounts, sent to both their addresses, is one
// blob, and the ingest job files each report under its own domain.
func TestIngestedForEveryRecipient(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	other, otherToken := e.AddDomain(t, e.AddAccount(t, "elsewhere"), "example.net")
	events := e.runIngest(t)

	c := e.dial(t)
	require.NoError(t, c.Mail("noreply-dmarc@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	require.NoError(t, c.Rcpt(otherToken+"@"+reportsDomain, nil))
	require.NoError(t, send(c, reportMail("example.com", "example.net")))
	require.Equal(t, 1, e.BlobCount(t))

	var jobID int64
	require.NoError(t, e.Pool.QueryRow(context.Background(), `SELECT id FROM river_job WHERE kind = 'report.ingest'`).Scan(&jobID))
	waitJob(t, events, jobID, river.EventKindJobCompleted)
	var status, warnings string
	require.NoError(t, e.Pool.QueryRow(context.Background(),
		`SELECT status, warnings::text FROM report_blobs`).Scan(&status, &warnings))
	require.Equal(t, "stored", status)
	require.Equal(t, "[]", warnings, "neither report was refused")
	rows, err := e.Pool.Query(context.Background(), `SELECT policy_domain, domain_id FROM reports`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var d string
		var id uuid.UUID
		err := r.Scan(&d, &id)
		return [2]string{d, id.String()}, err
	})
	require.NoError(t, err)
	require.ElementsMatch(t, [][2]string{{"example.com", e.domain.String()}, {"example.net", other.String()}}, got)
}

// runIngest works the report.ingest jobs on a River client until the test
// ends and returns its job events.
func (e *env) runIngest(t *testing.T) <-chan *river.Event {
	t.Helper()
	workers := river.NewWorkers()
	ingest.AddWorkers(workers, e.Pool, ingest.Options{}, nil)
	client, err := river.NewClient(riverpgxv5.New(e.Pool), &river.Config{
		Workers: workers,
		Queues:  map[string]river.QueueConfig{ingest.Queue: {MaxWorkers: 2, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond}},
		Logger:  slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	events, stop := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobCancelled, river.EventKindJobFailed)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
		stop()
	})
	return events
}

// waitJob waits for a job to end and requires how.
func waitJob(t *testing.T, events <-chan *river.Event, id int64, want river.EventKind) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Job != nil && ev.Job.ID == id {
				require.Equal(t, want, ev.Kind, "job %d: %v", id, ev.Job.Errors)
				return
			}
		case <-timeout:
			t.Fatalf("job %d did not end in time", id)
		}
	}
}

// reportMail is a rua mail with one aggregate report attached per domain.
func reportMail(domains ...string) string {
	var b strings.Builder
	b.WriteString("From: noreply-dmarc@receiver.test\r\nTo: dmarc@example.com\r\nSubject: Reports\r\n" +
		"Message-ID: <multi@receiver.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
	begin := time.Date(2024, 6, 13, 0, 0, 0, 0, time.UTC)
	for _, d := range domains {
		fmt.Fprintf(&b, "--b\r\nContent-Type: text/xml\r\nContent-Disposition: attachment; filename=\"%s.xml\"\r\n\r\n", d)
		fmt.Fprintf(&b, `<?xml version="1.0"?>
<feedback>
  <version>1.0</version>
  <report_metadata><org_name>receiver.test</org_name><email>dmarc@receiver.test</email><report_id>%s-1</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>%s</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct></policy_published>
  <record><row><source_ip>192.0.2.1</source_ip><count>3</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>%s</header_from></identifiers>
    <auth_results><spf><domain>%s</domain><result>pass</result></spf></auth_results></record>
</feedback>
`, d, begin.Unix(), begin.Add(24*time.Hour-time.Second).Unix(), d, d, d)
		b.WriteString("\r\n")
	}
	b.WriteString("--b--\r\n")
	return strings.ReplaceAll(strings.ReplaceAll(b.String(), "\r\n", "\n"), "\n", "\r\n")
}

func TestRefusesUnknownRecipientsAtRcpt(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	c := e.dial(t)
	require.NoError(t, c.Mail("noreply-dmarc@receiver.test", nil))
	for _, to := range []string{
		"0123456789abcdef@" + reportsDomain, // no such token
		e.token + "@example.com",            // not the reports domain
		e.token + "@sub." + reportsDomain,   // nor a subdomain of it
		"postmaster@" + reportsDomain,       // not a token
		"a@" + reportsDomain,                // too short to be a token
	} {
		requireCode(t, c.Rcpt(to, nil), 550, smtp.EnhancedCode{5, 1, 1})
	}
	_, err := c.Data()
	require.Error(t, err, "DATA without a recipient")
	require.Zero(t, e.BlobCount(t))
}

func TestEndsDirectoryHarvest(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *smtpd.Config) { c.MaxUnknownRecipients = 3 })
	c := e.dial(t)
	require.NoError(t, c.Mail("x@receiver.test", nil))
	for i := range 2 {
		requireCode(t, c.Rcpt(fmt.Sprintf("guess%08d@%s", i, reportsDomain), nil), 550, smtp.EnhancedCode{5, 1, 1})
	}
	requireCode(t, c.Rcpt("guess99999999@"+reportsDomain, nil), 421, smtp.EnhancedCode{4, 7, 0})
	require.Error(t, c.Noop(), "the server closed the connection")
}

func TestRefusesOversizeMessages(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *smtpd.Config) { c.MaxSize = 1024 })
	c := e.dial(t)
	ok, size := c.Extension("SIZE")
	require.True(t, ok)
	require.Equal(t, "1024", size)

	// Declared too large: refused at MAIL FROM.
	requireCode(t, c.Mail("x@receiver.test", &smtp.MailOptions{Size: 5000}), 552, smtp.EnhancedCode{5, 3, 4})

	// Not declared: refused once the limit is passed while reading DATA.
	require.NoError(t, c.Mail("x@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	big := message("big") + strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 100)
	requireCode(t, send(c, big), 552, smtp.EnhancedCode{5, 3, 4})
	require.Zero(t, e.BlobCount(t), "nothing stored")

	// The session goes on.
	require.NoError(t, c.Mail("x@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	require.NoError(t, send(c, message("small")))
	require.Equal(t, 1, e.BlobCount(t))
}

func TestStoreLimitBelowServerLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Store.SetMaxSize(100)
	e.start(t, smtpd.Config{Addr: "127.0.0.1:0", Domain: reportsDomain})
	c := e.dial(t)
	require.NoError(t, c.Mail("x@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	err := send(c, message("r5"))
	requireCode(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	require.ErrorContains(t, err, "the limit is 100 bytes")
	require.Zero(t, e.BlobCount(t))
}

func TestRefusesEmptyMessages(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	c := e.dial(t)
	require.NoError(t, c.Mail("x@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	requireCode(t, send(c, ""), 554, smtp.EnhancedCode{5, 6, 0})
	require.Zero(t, e.BlobCount(t))
}

func TestStoreFailureIsTemporary(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	_, err := e.Pool.Exec(context.Background(), `DROP TABLE report_blobs CASCADE`)
	require.NoError(t, err)
	c := e.dial(t)
	require.NoError(t, c.Mail("x@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	requireCode(t, send(c, message("r3")), 451, smtp.EnhancedCode{4, 3, 0})
}

// greeting opens a raw connection and reads the server's first line.
func greeting(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	line, err := bufio.NewReader(nc).ReadString('\n')
	require.NoError(t, err)
	return nc, line
}

func TestCapsConcurrentSessionsPerClient(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *smtpd.Config) { c.MaxSessionsPerClient = 2 })
	first, line := greeting(t, e.addr)
	require.True(t, strings.HasPrefix(line, "220 "), line)
	_, line = greeting(t, e.addr)
	require.True(t, strings.HasPrefix(line, "220 "), line)
	_, line = greeting(t, e.addr)
	require.True(t, strings.HasPrefix(line, "421 4.7.0 "), line)

	// A closed session frees its place.
	_ = first.Close()
	require.Eventually(t, func() bool {
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			return false
		}
		defer func() { _ = nc.Close() }()
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, _ := bufio.NewReader(nc).ReadString('\n')
		return strings.HasPrefix(l, "220 ")
	}, 5*time.Second, 20*time.Millisecond)
}

func TestLimitsSessionRate(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *smtpd.Config) { c.SessionsPerMinute = 2 })
	for range 2 {
		nc, line := greeting(t, e.addr)
		require.True(t, strings.HasPrefix(line, "220 "), line)
		_ = nc.Close()
	}
	_, line := greeting(t, e.addr)
	require.True(t, strings.HasPrefix(line, "421 4.7.0 "), line)
}

func TestLimitsMessageRate(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *smtpd.Config) { c.MessagesPerMinute = 1 })
	c := e.dial(t)
	require.NoError(t, c.Mail("x@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	require.NoError(t, send(c, message("r4")))
	requireCode(t, c.Mail("x@receiver.test", nil), 421, smtp.EnhancedCode{4, 7, 0})
	require.Error(t, c.Noop(), "the server closed the connection")
	require.Equal(t, 1, e.BlobCount(t))
}

func TestSTARTTLS(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := intaketest.TLS(t, "mx."+reportsDomain)
	e := setup(t, func(c *smtpd.Config) { c.TLS = serverTLS })

	plain := e.dial(t)
	ok, _ := plain.Extension("STARTTLS")
	require.True(t, ok, "STARTTLS offered")

	c, err := smtp.DialStartTLS(e.addr, clientTLS)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.Mail("x@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	state, ok := c.TLSConnectionState()
	require.True(t, ok)
	require.True(t, state.HandshakeComplete)
	require.NoError(t, send(c, message("tls")))
	require.NoError(t, c.Quit())
	require.Equal(t, 1, e.BlobCount(t))
}

func TestNoSTARTTLSWithoutCertificate(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	c := e.dial(t)
	ok, _ := c.Extension("STARTTLS")
	require.False(t, ok)
	_, err := smtp.DialStartTLS(e.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // refused before any handshake
	require.Error(t, err)
}

func TestShutdownClosesIdleSessions(t *testing.T) {
	t.Parallel()
	e := &env{Env: intaketest.New(t)}
	srv, err := smtpd.New(smtpd.Config{Addr: "127.0.0.1:0", Domain: reportsDomain}, e.Store, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	nc, line := greeting(t, srv.Addr())
	require.True(t, strings.HasPrefix(line, "220 "), line)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	_, err = bufio.NewReader(nc).ReadString('\n')
	require.Error(t, err, "the idle session was closed")
}

func TestNeedsReportsDomain(t *testing.T) {
	t.Parallel()
	_, err := smtpd.New(smtpd.Config{}, nil, nil)
	require.Error(t, err)
}

func TestShutdownLetsAMessageFinish(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, err := smtpd.New(smtpd.Config{Addr: "127.0.0.1:0", Domain: reportsDomain, ShutdownGrace: 10 * time.Second}, e.Store, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	e.addr = srv.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	idle, _ := greeting(t, e.addr)
	c := e.dial(t)
	require.NoError(t, c.Mail("x@receiver.test", nil))
	require.NoError(t, c.Rcpt(e.rua(), nil))
	w, err := c.Data()
	require.NoError(t, err)
	body := message("in-flight")
	_, err = w.Write([]byte(body[:20]))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the server is reading the message

	cancel()
	_, err = bufio.NewReader(idle).ReadString('\n')
	require.Error(t, err, "the idle session is closed at once")
	_, err = w.Write([]byte(body[20:]))
	require.NoError(t, err)
	require.NoError(t, w.Close(), "the message in flight is stored and acknowledged")
	require.NoError(t, <-done)
	require.Equal(t, 1, e.BlobCount(t))
}

func TestTLSFromFiles(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := intaketest.TLS(t, "mx."+reportsDomain)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert := serverTLS.Certificates[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))

	cfg, err := smtpd.TLSFromFiles(certFile, keyFile)
	require.NoError(t, err)
	e := setup(t, func(c *smtpd.Config) { c.TLS = cfg })
	c, err := smtp.DialStartTLS(e.addr, clientTLS)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.Noop())

	_, err = smtpd.TLSFromFiles(filepath.Join(dir, "missing.pem"), keyFile)
	require.Error(t, err)
}
