package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
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
	body := `{"query":"mutation { login(email: \"demo@rampart.test\", password: \"rampart-demo-password\") { accessToken user { email } } }"}`
	resp, err := http.Post(api[1], "application/json", strings.NewReader(body))
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var got struct {
		Data struct {
			Login struct{ AccessToken string } `json:"login"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(raw, &got), "%s", raw)
	require.Contains(t, string(raw), `"email":"demo@rampart.test"`)

	// The demo domain has reports, classified within seconds (a day the
	// periodic job holds is left to it, within a minute), and a verdict:
	// not ready, because of the failing sender.
	const readinessQuery = `{"query":"{ domain(name: \"example.com\") { reports { totalCount } readiness { verdict days reasons { code sender } senders { key passRate } } } }"}`
	var readiness string
	start := time.Now()
	const verdict = `"verdict":"NOT_READY","days":20,"reasons":[{"code":"SENDER_FAILING","sender":"mandrill"}]`
	for ; time.Since(start) < 90*time.Second; time.Sleep(200 * time.Millisecond) {
		req, err := http.NewRequest(http.MethodPost, api[1], strings.NewReader(readinessQuery))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+got.Data.Login.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		readiness = string(raw)
		if strings.Contains(readiness, verdict) {
			break
		}
	}
	t.Logf("demo readiness after %v: %s", time.Since(start), readiness)
	require.Contains(t, readiness, `"reports":{"totalCount":40}`)
	require.Contains(t, readiness, verdict)
	for _, sender := range []string{"internal", "google-workspace", "sendgrid"} {
		require.Contains(t, readiness, `{"key":"`+sender+`","passRate":100}`)
	}

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

// TestDevOwnsItsDataFolder: a second `rampart dev` on a data folder in use
// is refused, naming the first one's pid, and the first keeps serving; a
// `rampart dev` killed with SIGKILL leaves its PostgreSQL running, which the
// next one on the folder adopts, serves from and stops, so none is left.
func TestDevOwnsItsDataFolder(t *testing.T) {
	t.Parallel()
	bin, _ := attacktest.Binaries(t)
	data := filepath.Join(t.TempDir(), "data")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = pgcluster.StopDir(ctx, filepath.Join(data, "pg"))
		_ = pgcluster.Remove(filepath.Join(data, "pg"))
	})

	firstDay := time.Now().UTC().Format(time.DateOnly)
	first := startDev(t, bin, data)
	login(t, first.api)
	require.Contains(t, first.stderr.String(), "seeded demo reports")

	// A second one on the same folder is refused at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	second := exec.CommandContext(ctx, bin, "dev", "-data-dir", data, "-addr", "127.0.0.1:0",
		"-edge-addr", "127.0.0.1:0", "-edge-metrics", "", "-smtp-addr", "127.0.0.1:0")
	second.Env = append(os.Environ(), "DATABASE_URL=")
	out, err := second.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	require.Equal(t, 1, exit.ExitCode(), "%s", out)
	require.Contains(t, string(out), fmt.Sprintf("is in use by another rampart dev (pid %d)", first.cmd.Process.Pid))
	// The first still serves from its cluster.
	login(t, first.api)

	// SIGKILL: no chance to stop PostgreSQL, which outlives its parent.
	postmaster := postmasterPID(t, filepath.Join(data, "pg"))
	require.NoError(t, first.cmd.Process.Kill())
	_ = first.cmd.Wait()
	require.True(t, alive(postmaster), "the postmaster was expected to outlive a killed rampart dev")

	// The next one adopts the cluster, serves, and stops it with itself.
	third := startDev(t, bin, data)
	require.Contains(t, third.stderr.String(), "reusing running PostgreSQL cluster")
	if time.Now().UTC().Format(time.DateOnly) == firstDay {
		// The demo reports depend only on their day: a restart the same
		// day finds every one stored (or queued) already.
		require.NotContains(t, third.stderr.String(), "seeded demo reports")
	}
	require.Equal(t, postmaster, postmasterPID(t, filepath.Join(data, "pg")))
	login(t, third.api)
	require.NoError(t, third.cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, third.cmd.Wait(), third.stderr.String())
	_, err = os.Stat(filepath.Join(data, "pg", "postmaster.pid"))
	require.ErrorIs(t, err, os.ErrNotExist, "PostgreSQL still running after Ctrl-C")
	deadline := time.Now().Add(10 * time.Second)
	for alive(postmaster) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.False(t, alive(postmaster), "the adopted postmaster %d survived", postmaster)
}

// devProc is a `rampart dev` whose banner has been read.
type devProc struct {
	cmd    *exec.Cmd
	api    string
	stderr *lockedBuffer
}

// startDev starts `rampart dev` on the data folder, on free ports, and
// waits (at most two minutes) for its banner. The process is killed when
// the test ends.
func startDev(t *testing.T, bin, data string) *devProc {
	t.Helper()
	cmd := exec.Command(bin, "dev", "-data-dir", data, "-addr", "127.0.0.1:0",
		"-edge-addr", "127.0.0.1:0", "-edge-metrics", "", "-smtp-addr", "127.0.0.1:0", "-log-level", "info")
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &devProc{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(2 * time.Minute)
	for p.api == "" {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "dev exited early:\n%s", p.stderr.String())
			if m := regexp.MustCompile(`GraphQL API\s+(http://\S+)`).FindStringSubmatch(l); m != nil {
				p.api = m[1]
			}
		case <-deadline:
			t.Fatalf("no banner after 2 minutes:\n%s", p.stderr.String())
		}
	}
	go func() { // keep the pipe drained
		for range lines {
		}
	}()
	return p
}

// login signs the demo owner in, which needs the database.
func login(t *testing.T, api string) {
	t.Helper()
	body := `{"query":"mutation { login(email: \"demo@rampart.test\", password: \"rampart-demo-password\") { user { email } } }"}`
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(api, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Contains(t, string(raw), `"email":"demo@rampart.test"`)
}

// postmasterPID is the pid the running server recorded in its data folder.
func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	require.NoError(t, err)
	return pid
}

// alive reports whether the process runs (a zombie, which only waits to be
// reaped, does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
