package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockDataDir makes the calling `rampart dev` the only one using the data
// folder dir until release is called or the process ends, however it ends:
// the kernel drops a flock with its last descriptor. A second `rampart dev`
// on the folder would reuse the first one's cluster and stop it on its way
// out; it is refused instead, with the pid recorded in the lock file.
func lockDataDir(dir string) (release func(), err error) {
	// As root the cluster runs as postgres, which must search this folder
	// to reach <dir>/pg (pgcluster's Files).
	mode := os.FileMode(0o700)
	if os.Geteuid() == 0 {
		mode = 0o755
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	path := filepath.Join(abs, "dev.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600) //nolint:gosec // G304: the operator's data folder
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(f, 32))
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data folder %s is in use by another rampart dev (pid %s); stop that one, or give this one its own -data-dir",
				abs, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return func() { _ = f.Close() }, nil
}
