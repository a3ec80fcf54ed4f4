// Package pgcluster starts and stops a private PostgreSQL cluster from the
// system's PostgreSQL binaries, for development (`rampart dev`, `make run`)
// and tests (`make test`). No containers: it runs initdb and pg_ctl found on
// PATH or under /usr/lib/postgresql/*/bin.
//
// The cluster listens only on a Unix socket (listen_addresses is empty), so
// several clusters can run side by side without port clashes. PostgreSQL
// refuses to run as root; when the caller is root the launcher runs initdb
// and the server as the unprivileged "postgres" system user (the
// distribution's package creates it) and gives that user the data folder.
package pgcluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries is returned when initdb or pg_ctl cannot be found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; install the distribution's postgresql package (for example: apt-get install postgresql) or set DATABASE_URL")

// Options configure a cluster.
type Options struct {
	// DataDir is the cluster's data folder; it is created when missing.
	DataDir string
	// Database is created after initdb; it defaults to "rampart".
	Database string
	// Fast turns off fsync and full-page writes, for throwaway test clusters.
	Fast bool
	// Logger receives progress messages; nil means discard.
	Logger *slog.Logger
}

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	opts      Options
	bin       string
	socketDir string
	cred      *syscall.Credential
	started   bool // false when an already running server was reused
}

// Start initialises the data folder when needed and starts the server, or
// reuses the server already running on that folder.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Database == "" {
		opts.Database = "rampart"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	opts.DataDir = dir
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, bin: bin, socketDir: SocketDir(dir)}
	if os.Geteuid() == 0 {
		c.cred, err = postgresCredential()
		if err != nil {
			return nil, err
		}
	}
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		opts.Logger.Info("initialising PostgreSQL cluster", "dir", dir)
		if err := c.run(ctx, "initdb", "-D", dir, "-U", "rampart", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
			return nil, fmt.Errorf("initdb: %w", err)
		}
	}
	if c.run(ctx, "pg_ctl", "-D", dir, "status") == nil {
		opts.Logger.Info("reusing running PostgreSQL cluster", "dir", dir)
	} else {
		o := fmt.Sprintf("-k %s -c listen_addresses='' -c max_connections=300 -c shared_buffers=128MB", c.socketDir)
		if opts.Fast {
			o += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
		}
		logFile := filepath.Join(dir, "server.log")
		if err := c.run(ctx, "pg_ctl", "-D", dir, "-l", logFile, "-o", o, "-w", "-t", "60", "start"); err != nil {
			return nil, fmt.Errorf("start PostgreSQL: %w; server log: %s", err, tail(logFile, 2048))
		}
		c.started = true
		opts.Logger.Info("PostgreSQL started", "dir", dir, "socket", c.socketDir)
	}
	if err := c.ensureDatabase(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// URL is the connection string of the cluster's database.
func (c *Cluster) URL() string { return URLFor(c.socketDir, c.opts.Database) }

// AdminURL is the connection string of the cluster's maintenance database.
func (c *Cluster) AdminURL() string { return URLFor(c.socketDir, "postgres") }

// URLFor returns a connection URL for a database on a Unix socket folder.
func URLFor(socketDir, database string) string {
	return fmt.Sprintf("postgres://rampart@/%s?host=%s&sslmode=disable", database, socketDir)
}

// Stop shuts the server down (fast mode: open sessions are cut).
func (c *Cluster) Stop(ctx context.Context) error {
	if err := c.run(ctx, "pg_ctl", "-D", c.opts.DataDir, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("stop PostgreSQL: %w", err)
	}
	c.opts.Logger.Info("PostgreSQL stopped", "dir", c.opts.DataDir)
	return nil
}

// StopDir stops the server running on a data folder, if any.
func StopDir(ctx context.Context, dataDir string) error {
	c, err := attach(dataDir)
	if err != nil {
		return err
	}
	if c.run(ctx, "pg_ctl", "-D", c.opts.DataDir, "status") != nil {
		return nil
	}
	return c.Stop(ctx)
}

func attach(dataDir string) (*Cluster, error) {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)}, bin: bin, socketDir: SocketDir(dir)}
	if os.Geteuid() == 0 {
		if c.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// SocketDir is the Unix socket folder for a data folder. It lives under the
// temporary folder, named from a hash of the data folder, because socket
// paths are limited to about 100 bytes and checkouts can be deep.
func SocketDir(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(os.TempDir(), "rampart-pg-"+hex.EncodeToString(sum[:6]))
}

// FindBinaries returns the folder holding initdb and pg_ctl.
func FindBinaries() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as the unprivileged postgres user, which does not exist (install the postgresql package): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) prepareDirs() error {
	for _, d := range []string{c.opts.DataDir, c.socketDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("chmod %s: %w", d, err)
		}
		if c.cred != nil {
			if err := os.Chown(d, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return fmt.Errorf("give %s to postgres: %w", d, err)
			}
		}
	}
	if c.cred != nil {
		// The postgres user must be able to reach the data folder through its
		// parents; grant search (not read) on each parent that lacks it.
		for p := filepath.Dir(c.opts.DataDir); p != "/" && p != "."; p = filepath.Dir(p) {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
					return fmt.Errorf("let postgres reach %s: %w", p, err)
				}
			}
		}
	}
	return nil
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	// pg_ctl start leaves the postmaster running with our pipes open unless
	// it logs to a file (-l), which Start always passes.
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (c *Cluster) ensureDatabase(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.AdminURL())
	if err != nil {
		return fmt.Errorf("connect to new cluster: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", c.opts.Database).Scan(&exists); err != nil {
		return fmt.Errorf("look for database %s: %w", c.opts.Database, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{c.opts.Database}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", c.opts.Database, err)
	}
	return nil
}

// tail returns the end of a file, for error messages.
func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return strings.TrimSpace(string(b))
}
