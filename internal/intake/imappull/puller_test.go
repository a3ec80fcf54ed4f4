package imappull_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rampartmail/rampart/internal/intake/imappull"
	"github.com/rampartmail/rampart/internal/intake/intaketest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	username = "dmarc@customer.test"
	password = "secret"
)

// mailServer is a real IMAP server on loopback (go-imap's server with its
// in-memory backend) that records the FETCH commands it answers.
type mailServer struct {
	addr string
	user *imapmemserver.User

	mu       sync.Mutex
	fetches  int
	maxFetch int
}

type tlsListen int

const (
	plain tlsListen = iota
	implicitTLS
	startTLS
)

func startServer(t *testing.T, mode tlsListen, serverTLS *tls.Config) *mailServer {
	t.Helper()
	ms := &mailServer{user: imapmemserver.NewUser(username, password)}
	require.NoError(t, ms.user.Create("INBOX", nil))
	mem := imapmemserver.New()
	mem.AddUser(ms.user)
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &recordingSession{Session: mem.NewSession(), ms: ms}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: mode == plain,
		Logger:       log.New(io.Discard, "", 0),
	}
	if mode == startTLS {
		opts.TLSConfig = serverTLS
		opts.Caps[imap.CapStartTLS] = struct{}{}
	}
	srv := imapserver.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ms.addr = ln.Addr().String()
	if mode == implicitTLS {
		ln = tls.NewListener(ln, serverTLS)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ms
}

type recordingSession struct {
	imapserver.Session
	ms *mailServer
}

func (s *recordingSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	n := 0
	if uids, ok := numSet.(imap.UIDSet); ok {
		for _, r := range uids {
			n += int(r.Stop-r.Start) + 1
		}
	}
	s.ms.mu.Lock()
	s.ms.fetches++
	s.ms.maxFetch = max(s.ms.maxFetch, n)
	s.ms.mu.Unlock()
	return s.Session.Fetch(w, numSet, options)
}

type literal struct{ *bytes.Reader }

func message(i, pad int) []byte {
	return fmt.Appendf(nil, "From: noreply-dmarc@receiver.test\r\nSubject: Report Domain: example.com Report-ID: %d\r\nMessage-ID: <%d@receiver.test>\r\n\r\n%s\r\n",
		i, i, bytes.Repeat([]byte{'x'}, pad))
}

// add appends messages from..to-1, each pad bytes of body.
func (ms *mailServer) add(t testing.TB, from, to, pad int) {
	t.Helper()
	for i := from; i < to; i++ {
		_, err := ms.user.Append("INBOX", literal{bytes.NewReader(message(i, pad))}, &imap.AppendOptions{})
		require.NoError(t, err)
	}
}

func (ms *mailServer) fetchStats() (count, largest int) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.fetches, ms.maxFetch
}

type env struct {
	*intaketest.Env
	ms *mailServer
}

func setup(t *testing.T, messages int) *env {
	t.Helper()
	e := &env{Env: intaketest.New(t), ms: startServer(t, plain, nil)}
	e.ms.add(t, 0, messages, 100)
	return e
}

func (e *env) puller(t testing.TB, change func(*imappull.Config)) *imappull.Puller {
	t.Helper()
	cfg := imappull.Config{Addr: e.ms.addr, TLS: imappull.TLSNone, Username: username, Password: password, AccountID: e.Account}
	if change != nil {
		change(&cfg)
	}
	p, err := imappull.New(cfg, e.Pool, e.Store, nil)
	require.NoError(t, err)
	return p
}

type state struct {
	UIDValidity, LastUID int64
	LeaseOwner           *uuid.UUID
}

func (e *env) state(t testing.TB) state {
	t.Helper()
	var s state
	require.NoError(t, e.Pool.QueryRow(context.Background(),
		`SELECT uid_validity, last_uid, lease_owner FROM imap_pull_state WHERE account_id = $1 AND mailbox = 'INBOX'`, e.Account).
		Scan(&s.UIDValidity, &s.LastUID, &s.LeaseOwner))
	return s
}

func TestPullsEveryMessageOnceInBatches(t *testing.T) {
	t.Parallel()
	e := setup(t, 1000)
	p := e.puller(t, nil)

	st, err := p.Pull(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1000, st.Fetched)
	require.Equal(t, 1000, st.Accepted)
	require.Zero(t, st.Duplicates+st.Refused)
	require.EqualValues(t, 1000, st.LastUID)

	fetches, largest := e.ms.fetchStats()
	require.Equal(t, 10, fetches, "1000 messages in batches of 100")
	require.Equal(t, 100, largest)

	require.Equal(t, 1000, e.BlobCount(t))
	require.Equal(t, 1000, e.IngestJobs(t))
	require.Equal(t, 1000, e.Count(t, `SELECT count(*) FROM report_blobs b WHERE source = 'imap' AND account_id = $1
		AND NOT EXISTS (SELECT 1 FROM report_blob_recipients r WHERE r.blob_id = b.id)`, e.Account))
	b := e.Blobs(t)[0]
	require.Equal(t, "INBOX/1", b.Filename)
	require.Equal(t, string(message(0, 100)), string(b.Raw))

	s := e.state(t)
	require.EqualValues(t, 1000, s.LastUID)
	require.EqualValues(t, st.UIDValidity, s.UIDValidity)
	require.Nil(t, s.LeaseOwner, "the lease is released")

	// Nothing new: nothing fetched.
	st, err = p.Pull(context.Background())
	require.NoError(t, err)
	require.Zero(t, st.Fetched)

	// New mail: only it is fetched.
	e.ms.add(t, 1000, 1005, 100)
	st, err = p.Pull(context.Background())
	require.NoError(t, err)
	require.Equal(t, 5, st.Fetched)
	require.Equal(t, 5, st.Accepted)
	require.Equal(t, 1005, e.BlobCount(t))
}

func TestResumesAfterBeingStopped(t *testing.T) {
	t.Parallel()
	e := setup(t, 1000)
	const batch = 50
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for ctx.Err() == nil {
			var n int
			if err := e.Pool.QueryRow(ctx, `SELECT count(*) FROM report_blobs`).Scan(&n); err == nil && n >= 330 {
				cancel()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	st, err := e.puller(t, func(c *imappull.Config) { c.BatchSize = batch }).Pull(ctx)
	cancel()
	<-stopped
	require.ErrorIs(t, err, context.Canceled)
	stored := e.BlobCount(t)
	s := e.state(t)
	require.Less(t, stored, 1000)
	require.Zero(t, s.LastUID%batch, "progress is recorded per batch")
	require.EqualValues(t, st.LastUID, s.LastUID)
	require.LessOrEqual(t, int(s.LastUID), stored)
	require.LessOrEqual(t, stored-int(s.LastUID), batch, "at most one batch stored past the checkpoint")
	require.Nil(t, s.LeaseOwner, "released even though the context ended")

	// A new process resumes at the checkpoint; what was stored past it
	// comes back as duplicates.
	st, err = e.puller(t, func(c *imappull.Config) { c.BatchSize = batch }).Pull(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1000-int(s.LastUID), st.Fetched)
	require.Equal(t, stored-int(s.LastUID), st.Duplicates)
	require.Equal(t, 1000-stored, st.Accepted)
	require.Equal(t, 1000, e.BlobCount(t))
	require.EqualValues(t, 1000, e.state(t).LastUID)
}

func TestLease(t *testing.T) {
	t.Parallel()
	e := setup(t, 3)
	p := e.puller(t, nil)
	_, err := p.Pull(context.Background())
	require.NoError(t, err)
	e.ms.add(t, 3, 5, 100)

	// Another puller (a crashed replica) holds the mailbox.
	_, err = e.Pool.Exec(context.Background(), `UPDATE imap_pull_state SET lease_owner = $1, lease_until = now() + interval '1 hour'`, uuid.New())
	require.NoError(t, err)
	st, err := p.Pull(context.Background())
	require.NoError(t, err)
	require.True(t, st.Busy)
	require.Zero(t, st.Fetched)

	// Its lease runs out: the mailbox is ours again.
	_, err = e.Pool.Exec(context.Background(), `UPDATE imap_pull_state SET lease_until = now() - interval '1 second'`)
	require.NoError(t, err)
	st, err = p.Pull(context.Background())
	require.NoError(t, err)
	require.False(t, st.Busy)
	require.Equal(t, 2, st.Accepted)
}

func TestUIDValidityChangeStartsOver(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	p := e.puller(t, nil)
	first, err := p.Pull(context.Background())
	require.NoError(t, err)
	require.Equal(t, 10, first.Accepted)

	// The mailbox is recreated with the same messages and two more: the
	// same UIDs now name other messages.
	require.NoError(t, e.ms.user.Delete("INBOX"))
	require.NoError(t, e.ms.user.Create("INBOX", nil))
	e.ms.add(t, 5, 12, 100)
	e.ms.add(t, 0, 5, 100)

	st, err := p.Pull(context.Background())
	require.NoError(t, err)
	require.True(t, st.Restarted)
	require.NotEqual(t, first.UIDValidity, st.UIDValidity)
	require.Equal(t, 12, st.Fetched)
	require.Equal(t, 10, st.Duplicates)
	require.Equal(t, 2, st.Accepted)
	require.Equal(t, 12, e.BlobCount(t))
	s := e.state(t)
	require.EqualValues(t, st.UIDValidity, s.UIDValidity)
	require.EqualValues(t, 12, s.LastUID)
}

func TestSkipsMessagesTooLarge(t *testing.T) {
	t.Parallel()
	e := setup(t, 2)
	e.ms.add(t, 2, 3, 5000)
	e.ms.add(t, 3, 4, 100)
	st, err := e.puller(t, func(c *imappull.Config) { c.MaxSize = 1000 }).Pull(context.Background())
	require.NoError(t, err)
	require.Equal(t, 4, st.Fetched)
	require.Equal(t, 3, st.Accepted)
	require.Equal(t, 1, st.Refused)
	require.EqualValues(t, 4, e.state(t).LastUID, "the pull moves past it")
}

func TestStoreFailureKeepsTheBatch(t *testing.T) {
	t.Parallel()
	e := setup(t, 5)
	_, err := e.Pool.Exec(context.Background(), `DROP TABLE report_blobs CASCADE`)
	require.NoError(t, err)
	_, err = e.puller(t, nil).Pull(context.Background())
	require.Error(t, err)
	s := e.state(t)
	require.Zero(t, s.LastUID)
	require.Nil(t, s.LeaseOwner)
}

func TestBadLogin(t *testing.T) {
	t.Parallel()
	e := setup(t, 1)
	_, err := e.puller(t, func(c *imappull.Config) { c.Password = "wrong" }).Pull(context.Background())
	require.ErrorContains(t, err, "log in")
	require.Zero(t, e.BlobCount(t))
}

func TestTLSModes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		listen tlsListen
		mode   imappull.TLSMode
	}{
		{"implicit TLS", implicitTLS, imappull.TLSImplicit},
		{"STARTTLS", startTLS, imappull.TLSStartTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			serverTLS, clientTLS := intaketest.TLS(t, "imap.customer.test")
			e := &env{Env: intaketest.New(t), ms: startServer(t, tc.listen, serverTLS)}
			e.ms.add(t, 0, 3, 100)
			st, err := e.puller(t, func(c *imappull.Config) { c.TLS, c.TLSConfig = tc.mode, clientTLS }).Pull(context.Background())
			require.NoError(t, err)
			require.Equal(t, 3, st.Accepted)

			// A certificate that is not trusted is refused.
			_, err = e.puller(t, func(c *imappull.Config) { c.TLS = tc.mode }).Pull(context.Background())
			require.Error(t, err)
		})
	}
}

func TestRunPullsUntilCancelled(t *testing.T) {
	t.Parallel()
	e := setup(t, 3)
	p := e.puller(t, func(c *imappull.Config) { c.Interval = 10 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, func() bool { return e.BlobCount(t) == 3 }, 10*time.Second, 10*time.Millisecond)
	e.ms.add(t, 3, 4, 100)
	require.Eventually(t, func() bool { return e.BlobCount(t) == 4 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []imappull.Config{
		{},
		{Addr: "imap.example.com", Username: "u", AccountID: uuid.New()},
		{Addr: "imap.example.com:993", Username: "u", AccountID: uuid.New(), TLS: "ssl"},
		{Addr: "imap.example.com:993", Username: "u"},
	} {
		_, err := imappull.New(cfg, nil, nil, nil)
		require.Error(t, err, "%+v", cfg)
	}
}

// peakHeap samples the live heap while f runs and returns its peak above
// the heap before f.
func peakHeap(f func()) uint64 {
	old := debug.SetGCPercent(5) // collect garbage early, so the samples see live data
	defer debug.SetGCPercent(old)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
			}
		}
	}()
	f()
	close(stop)
	<-sampled
	if peak.Load() < base {
		return 0
	}
	return peak.Load() - base
}

// TestMemoryStaysBounded pulls a 48 MiB mailbox and checks that the heap
// never grows by half of it. It does not run in parallel, so that the heap
// it measures is its own.
func TestMemoryStaysBounded(t *testing.T) {
	e := setup(t, 0)
	const n, size = 192, 256 << 10
	e.ms.add(t, 0, n, size)
	var st imappull.Stats
	var err error
	grew := peakHeap(func() {
		st, err = e.puller(t, func(c *imappull.Config) { c.BatchSize = 16 }).Pull(context.Background())
	})
	require.NoError(t, err)
	require.Equal(t, n, st.Accepted)
	t.Logf("heap grew by at most %.1f MiB while pulling %d MiB", float64(grew)/(1<<20), n*size>>20)
	require.Less(t, grew, uint64(n*size/2), "the pull must not hold the mailbox in memory")
}

// TestHundredThousandMessages is the full-size case; it takes minutes, so
// it runs only with RAMPART_TEST_IMAP_100K=1.
func TestHundredThousandMessages(t *testing.T) {
	if os.Getenv("RAMPART_TEST_IMAP_100K") == "" {
		t.Skip("set RAMPART_TEST_IMAP_100K=1 to pull 100,000 messages")
	}
	e := setup(t, 0)
	const n = 100_000
	e.ms.add(t, 0, n, 400)
	var st imappull.Stats
	var err error
	grew := peakHeap(func() {
		st, err = e.puller(t, func(c *imappull.Config) { c.BatchSize = 500 }).Pull(context.Background())
	})
	require.NoError(t, err)
	require.Equal(t, n, st.Accepted)
	require.Equal(t, n, e.BlobCount(t))
	t.Logf("heap grew by at most %.1f MiB", float64(grew)/(1<<20))
	require.Less(t, grew, uint64(64<<20))
}
