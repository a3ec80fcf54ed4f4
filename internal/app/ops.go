package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/pgcluster"
	"github.com/rampartmail/rampart/migrations"
)

// Migrate is `rampart migrate [up | down-to N | version]`.
func Migrate(ctx context.Context, cfg *Config, log *slog.Logger, out io.Writer, args []string) error {
	pool, err := OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	cmd := "up"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "up":
		return migrations.Up(ctx, pool, log)
	case "down-to":
		if len(args) != 2 {
			return fmt.Errorf("usage: rampart migrate down-to VERSION")
		}
		v, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return fmt.Errorf("version %q: %w", args[1], err)
		}
		return migrations.DownTo(ctx, pool, v)
	case "version":
		v, err := migrations.Version(ctx, pool)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, v)
		return nil
	}
	return fmt.Errorf("unknown migrate command %q (up, down-to N, version)", cmd)
}

// CreateOwner is `rampart admin create-owner`: a new account and its owner.
func CreateOwner(ctx context.Context, cfg *Config, o account.NewOwner, password string, out io.Writer) error {
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	o.PasswordHash = hash
	pool, err := OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	acct, user, err := account.NewService(pool).CreateOwner(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "account %s (%s)\nowner   %s (%s)\n", acct.Name, acct.ID, user.Email, user.ID)
	return nil
}

// Query is `rampart query -server ADDR NAME [TYPE]`: one DNS query, printed
// like dig, for machines without dig.
func Query(server, name, qtype string, tcp bool, out io.Writer) error {
	t, ok := dns.StringToType[qtype]
	if !ok {
		return fmt.Errorf("unknown query type %q", qtype)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	c := &dns.Client{Timeout: 3 * time.Second}
	if tcp {
		c.Net = "tcp"
	}
	r, rtt, err := c.Exchange(m, server)
	if err != nil {
		return fmt.Errorf("query %s: %w", server, err)
	}
	fmt.Fprintln(out, r.String())
	fmt.Fprintf(out, ";; Query time: %v\n;; SERVER: %s\n", rtt.Round(time.Microsecond), server)
	return nil
}

// DevDB is `rampart devdb run|stop`: a throwaway cluster for make test.
// `run -dir D [-fresh] -- CMD...` starts a cluster in D (emptied first with
// -fresh), runs CMD with TEST_DATABASE_URL pointing at it, and stops it.
func DevDB(ctx context.Context, log *slog.Logger, dir string, fresh bool, command []string) error {
	if fresh {
		if err := pgcluster.StopDir(ctx, dir); err != nil {
			log.Warn("stop previous cluster", "err", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("empty %s: %w", dir, err)
		}
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Database: "postgres", Fast: true, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := c.Stop(stopCtx); err != nil {
			log.Error("stop test cluster", "err", err)
		}
	}()
	if len(command) == 0 {
		return fmt.Errorf("no command to run")
	}
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "TEST_DATABASE_URL="+c.AdminURL())
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	abs, _ := filepath.Abs(dir)
	log.Info("running with test cluster", "dir", abs, "command", command)
	return cmd.Run()
}

// StopDevDB stops the cluster running in dir, if any.
func StopDevDB(ctx context.Context, dir string) error { return pgcluster.StopDir(ctx, dir) }
