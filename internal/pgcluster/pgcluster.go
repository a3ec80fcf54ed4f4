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
//
// # Files
//
// The launcher may run as root in folders others can write (the temporary
// folder above all), so it creates what it hands to postgres without
// following symbolic links and never changes the mode of a folder it did
// not create:
//
//   - The socket folder is new on every start: os.MkdirTemp under the
//     temporary folder (socket paths are limited to about 100 bytes and
//     checkouts can be deep), mode 0700, given to postgres through a
//     descriptor opened with O_NOFOLLOW, and removed on Stop. PostgreSQL
//     records it in the data folder's postmaster.pid, where a later Start
//     reusing the running server reads it.
//   - The data folder is opened with O_NOFOLLOW and must be a folder owned
//     by the caller or by postgres; its mode (0700) and owner are set
//     through that descriptor. A symbolic link there is refused, except
//     the one the launcher itself makes when it moves the cluster (below).
//   - As root, postgres must be able to search every folder above the data
//     folder. Where one is closed to it (a checkout under /root, a test's
//     0700 temporary folder), the launcher leaves that folder's mode alone
//     and keeps the cluster in <Relocated>/<hash of the data folder's
//     path> instead, a folder only root can write whose parents postgres
//     can search, with a symbolic link to it at the data folder's place.
//     The link is the cluster's handle: when it is gone, so is the
//     cluster, and the next Start makes a fresh one ([Remove] deletes
//     both).
package pgcluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
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
	c := &Cluster{opts: opts, bin: bin}
	if os.Geteuid() == 0 {
		c.cred, err = postgresCredential()
		if err != nil {
			return nil, err
		}
	}
	if dir, err = c.prepareDataDir(dir); err != nil {
		return nil, err
	}
	if dir != opts.DataDir {
		opts.Logger.Info("data folder out of postgres's reach; the cluster is kept in a folder it can reach", "dir", opts.DataDir, "cluster", dir)
	}
	c.opts.DataDir = dir
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		opts.Logger.Info("initialising PostgreSQL cluster", "dir", dir)
		if err := c.run(ctx, "initdb", "-D", dir, "-U", "rampart", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
			return nil, fmt.Errorf("initdb: %w", err)
		}
	}
	if c.run(ctx, "pg_ctl", "-D", dir, "status") == nil {
		if c.socketDir, err = runningSocketDir(dir); err != nil {
			return nil, err
		}
		opts.Logger.Info("reusing running PostgreSQL cluster", "dir", dir, "socket", c.socketDir)
	} else {
		if c.socketDir, err = c.makeSocketDir(); err != nil {
			return nil, err
		}
		o := fmt.Sprintf("-k %s -c listen_addresses='' -c max_connections=300 -c shared_buffers=128MB", c.socketDir)
		if opts.Fast {
			o += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
		}
		logFile := filepath.Join(dir, "server.log")
		if err := c.run(ctx, "pg_ctl", "-D", dir, "-l", logFile, "-o", o, "-w", "-t", "60", "start"); err != nil {
			removeSocketDir(c.socketDir)
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

// Stop shuts the server down (fast mode: open sessions are cut) and removes
// the socket folder.
func (c *Cluster) Stop(ctx context.Context) error {
	if err := c.run(ctx, "pg_ctl", "-D", c.opts.DataDir, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("stop PostgreSQL: %w", err)
	}
	removeSocketDir(c.socketDir)
	c.opts.Logger.Info("PostgreSQL stopped", "dir", c.opts.DataDir)
	return nil
}

// StopDir stops the server running on a data folder, if any.
func StopDir(ctx context.Context, dataDir string) error {
	c, err := attach(dataDir)
	if err != nil || c == nil {
		return err
	}
	if c.run(ctx, "pg_ctl", "-D", c.opts.DataDir, "status") != nil {
		return nil
	}
	// Read before the server stops, which removes postmaster.pid.
	c.socketDir, _ = runningSocketDir(c.opts.DataDir)
	return c.Stop(ctx)
}

// Remove deletes a data folder whose server is stopped, and the cluster it
// stands for when the launcher moved it (see Files in the package
// documentation).
func Remove(dataDir string) error {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if moved, ok := movedTo(dir); ok {
		if err := os.RemoveAll(moved); err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}

// attach finds the cluster of a data folder without creating anything; nil
// when there is none.
func attach(dataDir string) (*Cluster, error) {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if moved, ok := movedTo(dir); ok {
		dir = moved
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)}, bin: bin}
	if os.Geteuid() == 0 {
		if c.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// runningSocketDir is the socket folder of the server running on dataDir,
// as it recorded it: the fifth line of postmaster.pid.
func runningSocketDir(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid")) //nolint:gosec // G304: the cluster's own data folder, given by the operator or the test harness
	if err != nil {
		return "", fmt.Errorf("read the running server's socket folder: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 || !filepath.IsAbs(strings.TrimSpace(lines[4])) {
		return "", fmt.Errorf("read the running server's socket folder: no socket folder in %s", filepath.Join(dataDir, "postmaster.pid"))
	}
	return strings.TrimSpace(lines[4]), nil
}

// Relocated is the folder holding the clusters of data folders postgres
// cannot reach (see Files in the package documentation). Only root writes
// it, and postgres can search it and its parents.
var Relocated = "/var/lib/rampart/pgcluster"

// movedTo is where the cluster of dir lives when the launcher moved it: dir
// is then a symbolic link to exactly that place.
func movedTo(dir string) (string, bool) {
	moved := relocatedDir(dir)
	target, err := os.Readlink(dir)
	return moved, err == nil && target == moved
}

func relocatedDir(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(Relocated, hex.EncodeToString(sum[:12]))
}

// makeSocketDir creates a fresh socket folder: a new, unpredictable name
// (mkdir fails on anything already there, a planted link included), mode
// 0700, given to postgres when running as root.
func (c *Cluster) makeSocketDir() (string, error) {
	dir, err := os.MkdirTemp("", "rampart-pg-")
	if err != nil {
		return "", fmt.Errorf("create socket folder: %w", err)
	}
	if err := c.claimDir(dir); err != nil {
		_ = os.Remove(dir)
		return "", err
	}
	return dir, nil
}

// removeSocketDir removes a stopped server's socket folder. The name may
// come from postmaster.pid, which postgres writes, so only an empty folder
// named as makeSocketDir names them is removed (rmdir, which neither
// follows a link nor removes a file).
func removeSocketDir(dir string) {
	if filepath.Dir(dir) == filepath.Clean(os.TempDir()) && strings.HasPrefix(filepath.Base(dir), "rampart-pg-") {
		_ = unix.Rmdir(dir)
	}
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
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("the postgres user's uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("the postgres user's gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// prepareDataDir creates or checks the data folder dir and returns where
// the cluster lives: dir, or its place under Relocated when postgres cannot
// reach dir.
func (c *Cluster) prepareDataDir(dir string) (string, error) {
	if moved, ok := movedTo(dir); ok {
		if err := c.claimDir(moved); err != nil {
			return "", err
		}
		return moved, nil
	}
	parentMode := os.FileMode(0o700)
	if c.cred != nil {
		parentMode = 0o755 // so that new parents let postgres through
	}
	if err := os.MkdirAll(filepath.Dir(dir), parentMode); err != nil {
		return "", fmt.Errorf("create data folder: %w", err)
	}
	if c.cred != nil {
		// Checked once the parents exist, since the umask may have
		// closed the new ones too.
		blocked, err := c.blockedParent(filepath.Dir(dir))
		if err != nil {
			return "", err
		}
		if blocked != "" {
			return c.relocate(dir, blocked)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create data folder: %w", err)
	}
	if err := c.claimDir(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// relocate makes a fresh cluster folder under Relocated for dir, which
// postgres cannot reach because of the folder blocked, and a link to it at
// dir.
func (c *Cluster) relocate(dir, blocked string) (string, error) {
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("data folder %s: postgres cannot reach it through %s, and the launcher does not open folders it did not create; use a data folder postgres can reach", dir, blocked)
	}
	if err := rootOnlyDir(Relocated); err != nil {
		return "", err
	}
	moved := relocatedDir(dir)
	// Without its link the cluster is gone: start afresh.
	if err := os.RemoveAll(moved); err != nil {
		return "", fmt.Errorf("remove the cluster left in %s: %w", moved, err)
	}
	if err := os.Mkdir(moved, 0o700); err != nil {
		return "", fmt.Errorf("create cluster folder: %w", err)
	}
	if err := c.claimDir(moved); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", fmt.Errorf("create data folder: %w", err)
	}
	if err := os.Symlink(moved, dir); err != nil {
		return "", fmt.Errorf("link data folder to cluster folder: %w", err)
	}
	return moved, nil
}

// rootOnlyDir creates dir and its missing parents (mode 0755, whatever the
// umask) and checks
// that every folder on the way is a real folder owned by root that no one
// else can write (or sticky, as /tmp, where no one else can replace it)
// and that postgres can search.
func rootOnlyDir(dir string) error {
	p := string(filepath.Separator)
	for _, part := range strings.Split(strings.TrimPrefix(filepath.Clean(dir), p), p) {
		p = filepath.Join(p, part)
		switch err := os.Mkdir(p, 0o755); { //nolint:gosec // G301: postgres must search every folder on the way to its socket; rootOnlyDir checks no one else can write
		case err == nil:
			// New, in a folder no one else can write: set the mode the
			// umask may have narrowed.
			if err := os.Chmod(p, 0o755); err != nil { //nolint:gosec // G302: a folder: postgres must be able to search it (see above)
				return err
			}
		case !errors.Is(err, fs.ErrExist):
			return fmt.Errorf("create %s: %w", p, err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch perm := fi.Mode().Perm(); {
		case !fi.IsDir() || !ok:
			return fmt.Errorf("%s is not a folder", p)
		case st.Uid != 0:
			return fmt.Errorf("%s is not owned by root", p)
		case perm&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
			return fmt.Errorf("%s can be written by others (mode %04o)", p, perm)
		case perm&0o001 == 0:
			return fmt.Errorf("postgres cannot search %s (mode %04o)", p, perm)
		}
	}
	return nil
}

// blockedParent returns the first folder at or above dir that postgres
// cannot search, or "" when it can reach dir.
func (c *Cluster) blockedParent(dir string) (string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	u, err := user.LookupId(strconv.Itoa(int(c.cred.Uid)))
	if err != nil {
		return "", err
	}
	groups, _ := u.GroupIds()
	for p := real; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return p, nil
		}
		perm := fi.Mode().Perm()
		var search bool
		switch {
		case st.Uid == c.cred.Uid:
			search = perm&0o100 != 0
		case st.Gid == c.cred.Gid || slices.Contains(groups, strconv.Itoa(int(st.Gid))):
			search = perm&0o010 != 0
		default:
			search = perm&0o001 != 0
		}
		if !search {
			return p, nil
		}
		if p == filepath.Dir(p) {
			return "", nil
		}
	}
}

// claimDir gets dir ready for postgres without following a symbolic link:
// it opens dir with O_NOFOLLOW, checks that it is a folder owned by the
// caller or by postgres, and sets mode 0700 (and owner postgres when
// running as root) through the descriptor, so that what is changed is
// what was checked.
func (c *Cluster) claimDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("%s is a symbolic link or not a folder; refusing to use it", dir)
		}
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer func() { _ = unix.Close(fd) }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if st.Uid != uint32(os.Geteuid()) && (c.cred == nil || st.Uid != c.cred.Uid) { //nolint:gosec // G115: a Linux uid is a uint32
		return fmt.Errorf("%s is owned by uid %d, neither this user nor postgres; refusing to use it", dir, st.Uid)
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	if c.cred != nil {
		if err := unix.Fchown(fd, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("give %s to postgres: %w", dir, err)
		}
	}
	return nil
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...) //nolint:gosec // G204: PostgreSQL's own programs (initdb, pg_ctl) from the located bin folder
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
	defer func() { _ = conn.Close(ctx) }()
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
	b, err := os.ReadFile(path) //nolint:gosec // G304: the cluster's own log file, shown in an error message
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return strings.TrimSpace(string(b))
}
