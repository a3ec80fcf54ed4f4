// Package dbtest gives tests a real, migrated PostgreSQL database.
//
// The server is the one named by TEST_DATABASE_URL (make test starts a
// throwaway cluster with the project's launcher and sets it). When the
// variable is unset, the first test that needs a database starts a private
// cluster under the checkout's .data/testpg folder with the same launcher and
// leaves it running for later runs (make test-db-stop stops it).
//
// A migrated template database is built once per migration set; NewDB clones
// it (CREATE DATABASE ... TEMPLATE), which takes a few tens of milliseconds, so
// every test that commits or uses LISTEN/NOTIFY gets its own database.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/pgcluster"
	"github.com/rampartmail/rampart/migrations"
)

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error

	templateOnce sync.Once
	templateName string
	templateErr  error
)

// ServerURL returns the URL of the test server's maintenance database.
func ServerURL(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
			serverURL = u
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(repoRoot(), ".data", "testpg"), Database: "postgres", Fast: true})
		if err != nil {
			serverErr = fmt.Errorf("start test PostgreSQL (or set TEST_DATABASE_URL): %w", err)
			return
		}
		serverURL = c.AdminURL()
	})
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	return serverURL
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// connString builds a URL for another database on the same server.
func connString(t testing.TB, db string) string {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(ServerURL(t))
	if err != nil {
		t.Fatalf("parse server URL: %v", err)
	}
	cc := cfg.ConnConfig
	return fmt.Sprintf("host=%s port=%d user=%s password='%s' dbname=%s sslmode=disable", cc.Host, cc.Port, cc.User, cc.Password, db)
}

func migrationsHash() string {
	h := sha256.New()
	_ = fs.WalkDir(migrations.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(migrations.FS(), path)
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// template builds (once per server and migration set) the migrated template.
func template(t testing.TB) string {
	t.Helper()
	templateOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		name := "rampart_tpl_" + migrationsHash()
		admin, err := pgx.Connect(ctx, connString(t, "postgres"))
		if err != nil {
			templateErr = fmt.Errorf("connect to test server: %w", err)
			return
		}
		defer func() { _ = admin.Close(ctx) }()
		// Test binaries of several packages run at once; one builds the template.
		if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(7320001)"); err != nil {
			templateErr = err
			return
		}
		defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock(7320001)") //nolint:errcheck // closing admin (deferred above) releases the lock anyway
		var exists bool
		if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", name).Scan(&exists); err != nil {
			templateErr = err
			return
		}
		if !exists {
			if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
				templateErr = err
				return
			}
			if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
				templateErr = err
				return
			}
			pool, err := pgxpool.New(ctx, connString(t, name))
			if err != nil {
				templateErr = err
				return
			}
			err = migrations.Up(ctx, pool, nil)
			pool.Close()
			if err != nil {
				templateErr = fmt.Errorf("migrate template: %w", err)
				return
			}
			if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" WITH is_template = true ALLOW_CONNECTIONS = false"); err != nil {
				templateErr = err
				return
			}
		}
		templateName = name
	})
	if templateErr != nil {
		t.Fatal(templateErr)
	}
	return templateName
}

// NewDB creates a fresh migrated database for one test and drops it when the
// test ends. It returns its connection string.
func NewDB(t testing.TB) string {
	t.Helper()
	tpl := template(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "rampart_test_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, connString(t, "postgres"))
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	defer func() { _ = admin.Close(ctx) }()
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tpl)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(ctx, connString(t, "postgres"))
		if err != nil {
			t.Errorf("connect to drop test database: %v", err)
			return
		}
		defer func() { _ = admin.Close(ctx) }()
		if _, err := admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return connString(t, name)
}

// NewPool is NewDB with a pool that is closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), NewDB(t))
	if err != nil {
		t.Fatalf("open test pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
