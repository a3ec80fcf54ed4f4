package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/miekg/dns"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/account/accountdb"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/intake/importer"
	"github.com/rampartmail/rampart/internal/pgcluster"
	"github.com/rampartmail/rampart/internal/sender"
	"github.com/rampartmail/rampart/internal/spf"
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
		_, err = fmt.Fprintln(out, v)
		return err
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
	_, err = fmt.Fprintf(out, "account %s (%s)\nowner   %s (%s)\n", acct.Name, acct.ID, user.Email, user.ID)
	return err
}

// SetOperator is `rampart admin grant-operator` (grant true) and
// `revoke-operator` (grant false): the instance operator role, which opens
// the job dashboard, for the user with the e-mail address.
func SetOperator(ctx context.Context, cfg *Config, email string, grant bool, out io.Writer) error {
	if email == "" {
		return errors.New("an e-mail address is required (-email)")
	}
	pool, err := OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if grant {
		id, err := access.GrantOperator(ctx, pool, email)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "operator granted: %s (%s)\n", email, id)
		return err
	}
	id, held, err := access.RevokeOperator(ctx, pool, email)
	if err != nil {
		return err
	}
	if !held {
		_, err = fmt.Fprintf(out, "not an operator: %s (%s)\n", email, id)
		return err
	}
	_, err = fmt.Fprintf(out, "operator revoked: %s (%s)\n", email, id)
	return err
}

// VerifyDomain is `rampart admin verify-domain [-account ID] NAME`: the
// operator's override of the ownership proof. It verifies an account's
// claim on the name (the only claim, when -account is not given),
// displacing any other account's claim, and the edge serves the domain.
func VerifyDomain(ctx context.Context, cfg *Config, log *slog.Logger, accountID, name string, out io.Writer) error {
	var acct *uuid.UUID
	if accountID != "" {
		id, err := uuid.Parse(accountID)
		if err != nil {
			return fmt.Errorf("-account: %w", err)
		}
		acct = &id
	}
	pool, err := OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	dcfg, err := cfg.domainConfig()
	if err != nil {
		return err
	}
	d, err := domain.NewService(pool, dcfg, log).VerifyAsOperator(ctx, name, acct)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "verified %s for account %s; the edge serves it\n", d.Name, d.AccountID)
	return err
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
	if _, err := fmt.Fprintln(out, r.String()); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, ";; Query time: %v\n;; SERVER: %s\n", rtt.Round(time.Microsecond), server)
	return err
}

// DevDB is `rampart devdb run|stop`: a throwaway cluster for make test.
// `run -dir D [-fresh] [-durable] -- CMD...` starts a cluster in D (emptied
// first with -fresh), runs CMD with TEST_DATABASE_URL pointing at it, and
// stops it. The cluster runs without fsync, full-page writes and
// synchronous commit, as a test needs, unless durable is set: then with
// PostgreSQL's durable defaults, as a benchmark of production may.
func DevDB(ctx context.Context, log *slog.Logger, dir string, fresh, durable bool, command []string) error {
	if fresh {
		if err := pgcluster.StopDir(ctx, dir); err != nil {
			log.Warn("stop previous cluster", "err", err)
		}
		if err := pgcluster.Remove(dir); err != nil {
			return fmt.Errorf("empty %s: %w", dir, err)
		}
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Database: "postgres", Fast: !durable, Logger: log})
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
	cmd := exec.CommandContext(ctx, command[0], command[1:]...) //nolint:gosec // G204: `rampart devdb run -- CMD` runs the command the operator typed, by design
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "TEST_DATABASE_URL="+c.AdminURL())
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	abs, _ := filepath.Abs(dir)
	log.Info("running with test cluster", "dir", abs, "command", command)
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return &ChildExitError{Code: exit.ExitCode()}
		}
		return fmt.Errorf("run %s: %w", command[0], err)
	}
	return nil
}

// ChildExitError is DevDB's command failing with an exit status, which
// `rampart devdb run` passes on as its own.
type ChildExitError struct{ Code int }

func (e *ChildExitError) Error() string { return fmt.Sprintf("command exited with status %d", e.Code) }

// StopDevDB stops the cluster running in dir, if any.
func StopDevDB(ctx context.Context, dir string) error { return pgcluster.StopDir(ctx, dir) }

// ImportOptions are the flags of `rampart import`.
type ImportOptions struct {
	// AccountID scopes the reports to an account ("": any hosted domain).
	AccountID string
	// Quiet shows no progress.
	Quiet bool
	// Wait, when positive, waits up to this long for the workers of
	// `rampart serve` to decode what was queued, then prints each input's
	// outcome.
	Wait time.Duration
}

// ErrNotAllStored is returned by [Import] with a wait when an input was
// not stored: refused, failed, or still pending when the wait ended.
var ErrNotAllStored = errors.New("import not complete")

// Import is `rampart import [-account ID] [-quiet] [-wait] PATH...`: files,
// folders and mbox files of reports, queued for the workers of `rampart
// serve`. With a wait it prints what became of each input and returns an
// error matching [ErrNotAllStored] when any was not stored (duplicates
// count as stored), so that a script can tell.
func Import(ctx context.Context, cfg *Config, o ImportOptions, paths []string, out, progress io.Writer) error {
	accountID, quiet := o.AccountID, o.Quiet
	pool, err := OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	opts := importer.Options{Progress: progress}
	if quiet {
		opts.Progress = nil
	}
	if accountID != "" {
		id, err := uuid.Parse(accountID)
		if err != nil {
			return fmt.Errorf("-account: %w", err)
		}
		if _, err := accountdb.New(pool).AccountByID(ctx, id); err != nil {
			return fmt.Errorf("-account %s: no such account", id)
		}
		opts.AccountID = &id
	}
	// An insert-only client: the workers of `rampart serve` decode.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	im := importer.New(ingest.NewStore(pool, client, cfg.Logger(progress)), opts)
	sum, err := im.Import(ctx, paths)
	sum.Print(out)
	if err != nil || o.Wait <= 0 {
		return err
	}
	if err := im.Wait(ctx, &sum, o.Wait); err != nil {
		return err
	}
	sum.PrintOutcomes(out)
	if n := sum.NotStored(); n > 0 {
		return fmt.Errorf("%w: %d of %d inputs were not stored", ErrNotAllStored, n, len(sum.Queued)+len(sum.Refused))
	}
	return nil
}

// RefreshSenders is `rampart senders refresh [-service SLUG]`: it resolves
// now, through the configured DNS resolver, the SPF includes of every
// service a domain enables (or of the one named), whenever they were last
// looked up, stores the outcome as the hourly job does (a failure keeps
// the last good ranges and cost) and prints each service's ranges, lookups
// and error. It fails when any include failed to resolve.
func RefreshSenders(ctx context.Context, cfg *Config, log *slog.Logger, slug string, out io.Writer) error {
	r := cfg.Resolver()
	if r == "" {
		return errors.New("no DNS resolver: set -dns-resolver (RAMPART_DNS_RESOLVER) to a server, not off")
	}
	pool, err := OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	dcfg, err := cfg.domainConfig()
	if err != nil {
		return err
	}
	senders := sender.NewManager(pool, domain.NewService(pool, dcfg, log), log)
	services, err := senders.RefreshAsOperator(ctx, spf.NewDNSResolver(r), slug)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	// A tabwriter keeps the first write error and Flush returns it.
	_, _ = fmt.Fprintln(tw, "SERVICE\tINCLUDES\tRANGES\tLOOKUPS\tRESOLVED\tERROR")
	failed := 0
	for _, s := range services {
		lookups, resolved, why := "unknown", "never", "-"
		if s.SpfLookups != nil {
			lookups = strconv.Itoa(int(*s.SpfLookups))
		}
		if s.ResolvedAt != nil {
			resolved = s.ResolvedAt.UTC().Format(time.RFC3339)
		}
		if s.ResolveError != "" {
			why = s.ResolveError
			failed++
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Slug, strings.Join(s.SpfIncludes, ","), len(s.ResolvedRanges), lookups, resolved, why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d includes failed to resolve; their last good ranges are kept", failed, len(services))
	}
	return nil
}
