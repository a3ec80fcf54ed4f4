// Package attacktest runs the built binaries (`rampart serve`, `dnsedge`) as
// separate processes on loopback for attack tests, and reads what the
// kernel says those processes used: peak resident memory (VmHWM) and CPU
// time from /proc. Nothing runs in the test's own process, so a bound on
// memory or CPU is a bound on the real server.
//
// Tests with such a bound carry the build tag `attack`, are named
// TestBounded..., and run without the race detector in `make test-attacks`
// (the race detector multiplies memory and CPU); attack tests without a
// resource bound are ordinary tests in `make test`.
package attacktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/dbtest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds bin/rampart and bin/dnsedge from this checkout once per
// test binary (without the race detector) and returns their paths.
func Binaries(t testing.TB) (rampart, dnsedge string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rampart-attack-bin-")
		if buildErr != nil {
			return
		}
		for _, name := range []string{"rampart", "dnsedge"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, name), "./cmd/"+name)
			cmd.Dir = repoRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %w\n%s", name, err, out)
				return
			}
		}
	})
	require.NoError(t, buildErr)
	return filepath.Join(buildDir, "rampart"), filepath.Join(buildDir, "dnsedge")
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Proc is a running binary. Its stderr (JSON or text log lines) is kept for
// the test log and for Wait* lookups.
type Proc struct {
	Cmd  *exec.Cmd
	Name string

	mu    sync.Mutex
	lines []string
	grow  chan struct{}
	done  chan struct{}
}

// Start runs a binary with the given environment added to a minimal one and
// stops it (SIGTERM, then SIGKILL after 10 s) when the test ends.
func Start(t testing.TB, name, bin string, env map[string]string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &Proc{Cmd: cmd, Name: name, grow: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.grow)
			p.grow = make(chan struct{})
			p.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		p.Stop()
		p.mu.Lock()
		defer p.mu.Unlock()
		if t.Failed() {
			for _, l := range p.lines {
				t.Logf("%s: %s", name, l)
			}
		}
	})
	return p
}

// Stop ends the process: SIGTERM, then SIGKILL after 10 s.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Lines returns the log lines so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// WaitLog waits up to timeout for a log line containing substr and returns it.
func (p *Proc) WaitLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if strings.Contains(p.lines[seen], substr) {
				l := p.lines[seen]
				p.mu.Unlock()
				return l
			}
		}
		grow := p.grow
		p.mu.Unlock()
		select {
		case <-grow:
		case <-p.done:
			p.mu.Lock()
			rest := p.lines[seen:]
			p.mu.Unlock()
			for _, l := range rest {
				if strings.Contains(l, substr) {
					return l
				}
			}
			t.Fatalf("%s exited before logging %q: %v", p.Name, substr, p.Cmd.ProcessState)
		case <-deadline:
			t.Fatalf("%s did not log %q within %s", p.Name, substr, timeout)
		}
	}
}

// LogField waits for a JSON log line whose msg is msg and returns field's value.
func (p *Proc) LogField(t testing.TB, msg, field string, timeout time.Duration) string {
	t.Helper()
	line := p.WaitLog(t, `"msg":"`+msg+`"`, timeout)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(line), &m), "log line %s", line)
	v, ok := m[field].(string)
	require.True(t, ok, "log line %s has no %s", line, field)
	return v
}

// Usage is what the kernel says a process has used.
type Usage struct {
	// PeakRSS is VmHWM: the largest resident set so far, in bytes.
	PeakRSS int64
	// RSS is VmRSS now, in bytes.
	RSS int64
	// CPU is user plus system time so far.
	CPU time.Duration
}

// Usage reads /proc/<pid>/status and /proc/<pid>/stat.
func (p *Proc) Usage(t testing.TB) Usage {
	t.Helper()
	u, err := ReadUsage(p.Cmd.Process.Pid)
	require.NoError(t, err)
	return u
}

// ReadUsage reads a process's peak and current RSS and its CPU time.
func ReadUsage(pid int) (Usage, error) {
	var u Usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmHWM":
			u.PeakRSS = n << 10
		case "VmRSS":
			u.RSS = n << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name may hold spaces; fields after it are fixed.
	rest := stat[bytes.LastIndexByte(stat, ')')+2:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	// USER_HZ is 100 on every Linux this runs on.
	u.CPU = time.Duration(utime+stime) * (time.Second / 100)
	return u, nil
}

// Serve is a running `rampart serve` on its own migrated database.
type Serve struct {
	*Proc
	// URL is the GraphQL endpoint; Base is the API's http://host:port.
	URL, Base string
	// SMTPAddr is the rua mail server's address ("" unless SMTP is on).
	SMTPAddr    string
	DatabaseURL string
	// Pool is a pool on the same database, for setting up and checking.
	Pool *pgxpool.Pool
	// Seed is the access-token signing seed.
	Seed []byte
	// Env is the environment the process was started with.
	Env map[string]string
	// API is an apitest client of the same server and database, for its
	// helpers (NewOwner, Do, AddVerifiedDomain: its DNS is the zone the
	// server's resolver asks, unless the test named another resolver).
	API *apitest.Env
}

// ServeOptions change how `rampart serve` starts.
type ServeOptions struct {
	// SMTP turns on the rua mail server on a loopback port.
	SMTP bool
	// Workers is RAMPART_WORKERS (default 0: no River workers).
	Workers int
	// Env is added to (and overrides) the harness's environment.
	Env map[string]string
	// Unset removes variables from the harness's environment, to start
	// with a setting's default.
	Unset []string
}

// StartServe runs `rampart serve` on a fresh database and waits until it
// listens.
func StartServe(t testing.TB, o ServeOptions) *Serve {
	t.Helper()
	bin, _ := Binaries(t)
	dbURL := dbtest.NewDB(t)
	seed, err := auth.GenerateSeed()
	require.NoError(t, err)
	// The world as the server's resolver sees it: customers publish their
	// ownership proofs here (s.API.Prove, s.API.AddVerifiedDomain).
	world := apitest.ServeZone(t, nil)
	env := map[string]string{
		"DATABASE_URL":           dbURL,
		"RAMPART_ADDR":           "127.0.0.1:0",
		"RAMPART_JWT_KEY":        base64.StdEncoding.EncodeToString(seed),
		"RAMPART_JWT_KID":        "k1",
		"RAMPART_LOG_FORMAT":     "json",
		"RAMPART_LOG_LEVEL":      "info",
		"RAMPART_DNS_RESOLVER":   world.Addr,
		"RAMPART_EDGE_ZONE":      apitest.EdgeZone,
		"RAMPART_REPORTS_DOMAIN": apitest.ReportsDomain,
		// The test names are under .test: a lab's, which serve refuses
		// without this.
		"RAMPART_ALLOW_DEV_ZONE": "true",
		"RAMPART_WORKERS":        strconv.Itoa(o.Workers),
	}
	if o.SMTP {
		env["RAMPART_SMTP_ADDR"] = "127.0.0.1:0"
	}
	for k, v := range o.Env {
		env[k] = v
	}
	for _, k := range o.Unset {
		delete(env, k)
	}
	p := Start(t, "rampart serve", bin, env, "serve")
	s := &Serve{Proc: p, DatabaseURL: dbURL, Seed: seed, Env: env}
	addr := p.LogField(t, "API listening", "addr", 60*time.Second)
	s.Base = "http://" + addr
	s.URL = s.Base + "/graphql"
	if o.SMTP {
		s.SMTPAddr = p.LogField(t, "SMTP listening", "addr", 30*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Pool, err = pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(s.Pool.Close)
	s.API = apitest.Attach(t, s.URL, dbURL, s.Pool, seed)
	if env["RAMPART_DNS_RESOLVER"] == world.Addr {
		s.API.DNS = world
	}
	return s
}

// Edge is a running dnsedge binary.
type Edge struct {
	*Proc
	// Addr is the UDP address it answers on; TCPAddr the TCP one.
	Addr, TCPAddr string
}

// StartEdge runs the dnsedge binary following databaseURL on a loopback
// port; extra flags are passed on. It waits until the edge serves.
func StartEdge(t testing.TB, databaseURL string, flags ...string) *Edge {
	t.Helper()
	return StartEdgeEnv(t, databaseURL, nil, flags...)
}

// StartEdgeEnv is StartEdge with env added to (and overriding) the
// harness's environment: the edge and reports names of the test API and
// RAMPART_ALLOW_DEV_ZONE, which dnsedge needs for them.
func StartEdgeEnv(t testing.TB, databaseURL string, env map[string]string, flags ...string) *Edge {
	t.Helper()
	_, bin := Binaries(t)
	all := map[string]string{
		"DATABASE_URL":           databaseURL,
		"DNSEDGE_LISTEN":         "127.0.0.1:0",
		"RAMPART_EDGE_ZONE":      apitest.EdgeZone,
		"RAMPART_REPORTS_DOMAIN": apitest.ReportsDomain,
		"RAMPART_ALLOW_DEV_ZONE": "true",
		"DNSEDGE_SNAPSHOT":       filepath.Join(t.TempDir(), "edge.snapshot"),
		"DNSEDGE_METRICS":        "",
		"DNSEDGE_LOG_FORMAT":     "json",
	}
	for k, v := range env {
		all[k] = v
	}
	p := Start(t, "dnsedge", bin, all, flags...)
	addr := p.LogField(t, "dnsedge serving", "udp", 60*time.Second)
	tcp := p.LogField(t, "dnsedge serving", "tcp", time.Second)
	return &Edge{Proc: p, Addr: addr, TCPAddr: tcp}
}
