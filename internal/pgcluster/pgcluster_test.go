package pgcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	// As root, clusters out of postgres's reach move under Relocated; the
	// tests keep theirs in a folder of their own rather than /var/lib.
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "pgcluster-test-")
		if err == nil {
			err = os.Chmod(dir, 0o755) // our own fresh folder: postgres must search it
		}
		if err != nil {
			panic(err)
		}
		Relocated = filepath.Join(dir, "pgcluster")
		code := m.Run()
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// fileState is what an attack must not change: type, mode and owner.
type fileState struct {
	mode     fs.FileMode
	uid, gid uint32
}

func stateOf(t *testing.T, path string, follow bool) fileState {
	t.Helper()
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(path)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return fileState{mode: fi.Mode(), uid: st.Uid, gid: st.Gid}
}

// oldSocketDir is the socket folder name the launcher used to derive from
// the data folder: predictable, so anyone could plant a link there.
func oldSocketDir(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(os.TempDir(), "rampart-pg-"+hex.EncodeToString(sum[:6]))
}

// victim is a folder an attacker would like the launcher to chmod or chown.
func victim(t *testing.T) string {
	t.Helper()
	v := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.Mkdir(v, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(v, "secret"), []byte("x"), 0o644))
	return v
}

// plant makes a symbolic link at path to target and removes it when the
// test ends.
func plant(t *testing.T, target, path string) {
	t.Helper()
	require.NoError(t, os.Symlink(target, path))
	t.Cleanup(func() { _ = os.Remove(path) })
}

// openTempDir is a fresh folder postgres can search (t.TempDir's parent is
// 0700), removed when the test ends.
func openTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

func skipWithoutBinaries(t *testing.T) {
	t.Helper()
	if _, err := FindBinaries(); err != nil {
		t.Skip(err)
	}
}

// TestStartPlantedLinks starts a cluster, as root when the tests run as
// root, after planting a link at the old predictable socket folder, in a
// data folder whose parent is closed to others (0700). Nothing outside the
// launcher's own fresh folders changes: not the link's target, not the
// parents; the socket folder is new, private and not the planted name; and
// the cluster works, is found again while running and stops.
func TestStartPlantedLinks(t *testing.T) {
	t.Parallel()
	skipWithoutBinaries(t)
	parent := filepath.Join(t.TempDir(), "closed")
	require.NoError(t, os.Mkdir(parent, 0o700))
	dataDir := filepath.Join(parent, "pg")
	t.Cleanup(func() { _ = Remove(dataDir) })
	target := victim(t)
	plant(t, target, oldSocketDir(dataDir))

	watched := []string{parent, filepath.Dir(parent), target, filepath.Join(target, "secret"), os.TempDir()}
	before := map[string]fileState{}
	for _, p := range watched {
		before[p] = stateOf(t, p, false)
	}
	link := stateOf(t, oldSocketDir(dataDir), false)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{DataDir: dataDir, Database: "postgres", Fast: true})
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = c.Stop(context.Background())
		}
	})

	for _, p := range watched {
		require.Equal(t, before[p], stateOf(t, p, false), "%s changed", p)
	}
	require.Equal(t, link, stateOf(t, oldSocketDir(dataDir), false), "planted link changed")
	dest, err := os.Readlink(oldSocketDir(dataDir))
	require.NoError(t, err)
	require.Equal(t, target, dest)

	// The socket folder: fresh, under the temporary folder, private.
	require.NotEqual(t, oldSocketDir(dataDir), c.socketDir)
	require.Equal(t, filepath.Clean(os.TempDir()), filepath.Dir(c.socketDir))
	sock := stateOf(t, c.socketDir, false)
	require.True(t, sock.mode.IsDir(), "socket folder is %v", sock.mode)
	require.Equal(t, fs.FileMode(0o700), sock.mode.Perm())
	wantUID := uint32(os.Geteuid())
	if c.cred != nil {
		wantUID = c.cred.Uid
	}
	require.Equal(t, wantUID, sock.uid)

	// The data folder: private, postgres's; as root behind a closed parent,
	// moved to a folder postgres can reach and linked from its place.
	if c.cred != nil {
		moved, ok := movedTo(dataDir)
		require.True(t, ok, "data folder not linked to its cluster")
		require.Equal(t, moved, c.opts.DataDir)
		require.True(t, strings.HasPrefix(moved, Relocated+string(filepath.Separator)))
	} else {
		require.Equal(t, dataDir, c.opts.DataDir)
	}
	data := stateOf(t, c.opts.DataDir, false)
	require.True(t, data.mode.IsDir())
	require.Equal(t, fs.FileMode(0o700), data.mode.Perm())
	require.Equal(t, wantUID, data.uid)

	requireQuery(t, c.AdminURL())

	// A second launcher finds the running server and its socket folder.
	again, err := Start(ctx, Options{DataDir: dataDir, Database: "postgres"})
	require.NoError(t, err)
	require.Equal(t, c.socketDir, again.socketDir)
	require.False(t, again.started)

	require.NoError(t, StopDir(ctx, dataDir))
	stopped = true
	_, err = os.Stat(filepath.Join(dataDir, "postmaster.pid"))
	require.ErrorIs(t, err, fs.ErrNotExist, "still running")
	_, err = os.Lstat(c.socketDir)
	require.ErrorIs(t, err, fs.ErrNotExist, "socket folder left behind")

	// Remove deletes the cluster; the next start is fresh.
	require.NoError(t, Remove(dataDir))
	_, err = os.Lstat(dataDir)
	require.ErrorIs(t, err, fs.ErrNotExist)
	_, err = os.Lstat(relocatedDir(dataDir))
	require.ErrorIs(t, err, fs.ErrNotExist)
	for _, p := range watched {
		require.Equal(t, before[p], stateOf(t, p, false), "%s changed", p)
	}
}

func requireQuery(t *testing.T, connURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	var one int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)
}

// TestStartRefusesLinkedDataDir plants links where the data folder goes:
// the launcher refuses them, changing nothing, before running anything.
func TestStartRefusesLinkedDataDir(t *testing.T) {
	t.Parallel()
	skipWithoutBinaries(t)
	ctx := context.Background()
	for name, parentMode := range map[string]fs.FileMode{"open parent": 0o755, "closed parent": 0o700} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			parent := filepath.Join(openTempDir(t), "parent")
			require.NoError(t, os.Mkdir(parent, parentMode))
			require.NoError(t, os.Chmod(parent, parentMode)) // whatever the umask
			dataDir := filepath.Join(parent, "pg")
			target := victim(t)
			plant(t, target, dataDir)
			before := stateOf(t, target, false)
			parentBefore := stateOf(t, parent, false)

			_, err := Start(ctx, Options{DataDir: dataDir})
			require.Error(t, err)
			require.Equal(t, before, stateOf(t, target, false))
			require.Equal(t, parentBefore, stateOf(t, parent, false))
			_, err = os.Stat(filepath.Join(target, "PG_VERSION"))
			require.ErrorIs(t, err, fs.ErrNotExist, "initdb ran in the link's target")
		})
	}
	t.Run("owned by another user", func(t *testing.T) {
		t.Parallel()
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a folder away")
		}
		dataDir := filepath.Join(openTempDir(t), "pg")
		require.NoError(t, os.Mkdir(dataDir, 0o755))
		require.NoError(t, os.Chmod(dataDir, 0o755)) // whatever the umask
		require.NoError(t, os.Chown(dataDir, 65534, 65534))
		_, err := Start(ctx, Options{DataDir: dataDir})
		require.ErrorContains(t, err, "owned by uid 65534")
		st := stateOf(t, dataDir, false)
		require.Equal(t, uint32(65534), st.uid)
		require.Equal(t, fs.FileMode(0o755), st.mode.Perm())
	})
}

// TestRootOnlyDir checks the folder the launcher moves clusters into: it
// must be root's alone all the way down.
func TestRootOnlyDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("checks root ownership")
	}
	base := openTempDir(t)
	require.NoError(t, rootOnlyDir(filepath.Join(base, "a", "b")))
	fi, err := os.Lstat(filepath.Join(base, "a", "b"))
	require.NoError(t, err)
	require.True(t, fi.IsDir())

	open := filepath.Join(base, "open")
	require.NoError(t, os.Mkdir(open, 0o777))
	require.NoError(t, os.Chmod(open, 0o777))
	require.ErrorContains(t, rootOnlyDir(filepath.Join(open, "x")), "can be written by others")

	plant(t, victim(t), filepath.Join(base, "link"))
	require.ErrorContains(t, rootOnlyDir(filepath.Join(base, "link", "x")), "not a folder")

	closed := filepath.Join(base, "closed")
	require.NoError(t, os.Mkdir(closed, 0o700))
	require.ErrorContains(t, rootOnlyDir(filepath.Join(closed, "x")), "cannot search")

	other := filepath.Join(base, "other")
	require.NoError(t, os.Mkdir(other, 0o755))
	require.NoError(t, os.Chown(other, 65534, 65534))
	require.ErrorContains(t, rootOnlyDir(filepath.Join(other, "x")), "not owned by root")
}

// TestDevDBPlantedLink runs the built `rampart devdb run` after planting a
// link at the old predictable socket folder of its data folder: the link's
// target and the data folder's parent keep their modes and owners, and the
// command gets a fresh socket folder, removed when it ends.
func TestDevDBPlantedLink(t *testing.T) {
	t.Parallel()
	skipWithoutBinaries(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "rampart")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/rampart").CombinedOutput()
	require.NoError(t, err, "%s", out)

	parent := openTempDir(t)
	dataDir := filepath.Join(parent, "pg")
	target := victim(t)
	plant(t, target, oldSocketDir(dataDir))
	watched := []string{parent, target, filepath.Join(target, "secret"), os.TempDir()}
	before := map[string]fileState{}
	for _, p := range watched {
		before[p] = stateOf(t, p, false)
	}

	urlFile := filepath.Join(dir, "url")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "devdb", "run", "-dir", dataDir, "-fresh", "--",
		"sh", "-c", `printf %s "$TEST_DATABASE_URL" > "$0"`, urlFile)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	for _, p := range watched {
		require.Equal(t, before[p], stateOf(t, p, false), "%s changed", p)
	}
	dest, err := os.Readlink(oldSocketDir(dataDir))
	require.NoError(t, err)
	require.Equal(t, target, dest)

	raw, err := os.ReadFile(urlFile)
	require.NoError(t, err)
	u, err := url.Parse(string(raw))
	require.NoError(t, err)
	socketDir := u.Query().Get("host")
	require.NotEqual(t, oldSocketDir(dataDir), socketDir)
	require.True(t, strings.HasPrefix(filepath.Base(socketDir), "rampart-pg-"), socketDir)
	_, err = os.Lstat(socketDir)
	require.ErrorIs(t, err, fs.ErrNotExist, "socket folder left behind")
}
