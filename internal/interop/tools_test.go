//go:build interop

package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// repoRoot is the checkout's root.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// runTool runs a program with a bound on its time and returns its stdout
// and stderr together.
func runTool(timeout time.Duration, stdin []byte, dir, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...) //nolint:gosec // G702: the lab's own tools at fixed paths, with arguments the test builds
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: timed out after %s", filepath.Base(bin), timeout)
	}
	return out.String(), err
}

// runJSON runs a wrapper that reads one JSON request and writes one JSON
// object per line, and returns the objects by id.
func runJSON(timeout time.Duration, req any, env []string, bin string, args ...string) (map[string]cell, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(body)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if os.Getenv("INTEROP_DEBUG") != "" {
		_, _ = os.Stderr.Write(stderr.Bytes())
	}
	out := map[string]cell{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var c struct{ ID, Result, Detail string }
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return out, fmt.Errorf("%s: bad output line %q: %w", filepath.Base(bin), sc.Text(), err)
		}
		out[c.ID] = cell{Got: c.Result, Detail: oneLine(c.Detail)}
	}
	if ctx.Err() != nil {
		return out, fmt.Errorf("%s: timed out after %s; stderr: %s", filepath.Base(bin), timeout, stderr.String())
	}
	if runErr != nil {
		return out, fmt.Errorf("%s: %w; stderr: %s", filepath.Base(bin), runErr, stderr.String())
	}
	return out, nil
}

var spaces = regexp.MustCompile(`\s+`)

// oneLine makes a detail fit a table cell.
func oneLine(s string) string {
	s = strings.TrimSpace(spaces.ReplaceAllString(s, " "))
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// version runs a command and returns the first line matching re (or the
// first line), for the versions table.
func version(re string, bin string, args ...string) string {
	out, err := runTool(10*time.Second, nil, "", bin, args...)
	if err != nil && out == "" {
		return "unknown (" + err.Error() + ")"
	}
	rx := regexp.MustCompile(re)
	for _, l := range strings.Split(out, "\n") {
		if m := rx.FindStringSubmatch(l); m != nil {
			if len(m) > 1 {
				return strings.TrimSpace(m[1])
			}
			return strings.TrimSpace(m[0])
		}
	}
	return "unknown"
}

// debVersion is the installed version of a Debian package.
func debVersion(pkg string) string {
	out, err := runTool(10*time.Second, nil, "", "dpkg-query", "-W", "-f=${Version}", pkg)
	if err != nil {
		return "not installed"
	}
	return strings.TrimSpace(out)
}

// errNotRun marks a library that could not run here, with why.
type errNotRun struct{ why string }

func (e errNotRun) Error() string { return e.why }

func notRun(err error) (string, bool) {
	var e errNotRun
	if errors.As(err, &e) {
		return e.why, true
	}
	return "", false
}
