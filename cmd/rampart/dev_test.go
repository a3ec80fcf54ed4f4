package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/pgcluster"
)

// TestDevEndToEnd runs `rampart dev` as a user would (make run): it must
// start its own PostgreSQL, seed the demo, print working URLs and a query
// command whose answer is the demo domain's DMARC record, and stop
// everything, the cluster included, on Ctrl-C.
func TestDevEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "rampart")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	data := filepath.Join(dir, "data")
	// As root the cluster may live outside dir (pgcluster's Files).
	t.Cleanup(func() { _ = pgcluster.Remove(filepath.Join(data, "pg")) })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "-data-dir", data, "-addr", "127.0.0.1:0",
		"-edge-addr", "127.0.0.1:0", "-edge-metrics", "", "-smtp-addr", "127.0.0.1:0", "-log-level", "warn")
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()

	// Read the banner up to the query command.
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var banner strings.Builder
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(banner.String(), "dig @") {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "dev exited early: %s\n%s", banner.String(), stderr.String())
			banner.WriteString(l + "\n")
		case <-deadline:
			t.Fatalf("no banner after 2 minutes: %s\n%s", banner.String(), stderr.String())
		}
	}
	text := banner.String()
	api := regexp.MustCompile(`GraphQL API\s+(http://\S+)`).FindStringSubmatch(text)
	query := regexp.MustCompile(`rampart query -server (\S+) (\S+) TXT`).FindStringSubmatch(text)
	require.NotNil(t, api, text)
	require.NotNil(t, query, text)
	require.Contains(t, text, "demo@rampart.test / rampart-demo-password")

	// The printed query shows the demo domain's DMARC record.
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(query[2]), dns.TypeTXT)
	var answer []string
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		r, err := dns.Exchange(m, query[1])
		if err == nil && len(r.Answer) == 1 {
			answer = r.Answer[0].(*dns.TXT).Txt
			require.True(t, r.Authoritative)
			break
		}
	}
	require.Len(t, answer, 1)
	require.Regexp(t, `^v=DMARC1; p=none; rua=mailto:[0-9a-f]{16}@reports\.rampart\.test$`, answer[0])

	// Response rate limiting is on: a burst from one address past the
	// default 200 responses gets truncated replies (slipped) and no more
	// than the bucket's worth in full.
	full, slipped := burstUDP(t, query[1], m, 600)
	require.Positive(t, slipped, "no rate limiting in rampart dev")
	require.Less(t, full, 500)

	// The printed login works.
	body := `{"query":"mutation { login(email: \"demo@rampart.test\", password: \"rampart-demo-password\") { user { email } } }"}`
	resp, err := http.Post(api[1], "application/json", strings.NewReader(body))
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got), "%s", raw)
	require.Contains(t, string(raw), `"email":"demo@rampart.test"`)

	// Ctrl-C stops everything, the cluster included.
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), stderr.String())
	_, err = os.Stat(filepath.Join(data, "pg", "postmaster.pid"))
	require.ErrorIs(t, err, os.ErrNotExist, "PostgreSQL still running after Ctrl-C")
}

// burstUDP sends n copies of m at once from one socket and counts the full
// and the truncated replies that arrive until none has for half a second.
func burstUDP(t *testing.T, addr string, m *dns.Msg, n int) (full, slipped int) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	wire, err := m.Pack()
	require.NoError(t, err)
	// Read while sending, so that the socket's buffer does not overflow.
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for range n {
			if c.SetReadDeadline(time.Now().Add(500*time.Millisecond)) != nil {
				return
			}
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			var r dns.Msg
			if r.Unpack(buf[:k]) != nil {
				continue
			}
			if r.Truncated {
				slipped++
			} else {
				full++
			}
		}
	}()
	for range n {
		_, err := c.Write(wire)
		require.NoError(t, err)
	}
	<-done
	return full, slipped
}

// lockedBuffer is written by the child's stderr copier and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
