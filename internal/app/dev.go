package app

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartmail/rampart/dnsedge"
	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/domainkey"
	"github.com/rampartmail/rampart/internal/pgcluster"
	"github.com/rampartmail/rampart/migrations"
)

// The demo account seeded by `rampart dev`.
const (
	DemoEmail    = "demo@rampart.test"
	DemoPassword = "rampart-demo-password" //nolint:gosec // G101: the documented password of the local demo account that only `rampart dev` seeds
	DemoAccount  = "Demo Company"
	DemoDomain   = "example.com"
)

// Dev is `rampart dev`: a private PostgreSQL cluster (unless DATABASE_URL is
// set), migrations, the demo account, the API, the workers and dnsedge in one
// process. Cancelling ctx stops everything, the cluster last.
//
// One `rampart dev` at a time uses a data folder: a second is refused
// (lockDataDir). A cluster found running there was left by a `rampart dev`
// that was killed (SIGKILL leaves PostgreSQL running, since it does not
// die with its parent): it is adopted and stopped on the way out like one
// this process started.
func Dev(ctx context.Context, cfg *Config, log *slog.Logger, out io.Writer) (err error) {
	cfg.Dev = true
	release, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer release()
	if cfg.DatabaseURL == "" {
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(cfg.DataDir, "pg"), Logger: log})
		if err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if serr := cluster.Stop(stopCtx); serr != nil {
				err = errors.Join(err, serr)
			}
		}()
		cfg.DatabaseURL = cluster.URL()
	}
	pool, err := OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.Up(ctx, pool, log); err != nil {
		return err
	}
	if err := SeedDemo(ctx, pool, cfg, log); err != nil {
		return err
	}
	cfg.Migrate = false
	if cfg.SMTPAddr == "" {
		cfg.SMTPAddr = "127.0.0.1:2525"
	}
	cfg.RiverUI = true
	api, err := NewAPI(ctx, pool, cfg, log)
	if err != nil {
		return err
	}
	seeded, err := SeedDemoReports(ctx, api.Store, time.Now(), log)
	if err != nil {
		return err
	}
	if cfg.EdgeNameServers == "" {
		// In dev the name servers are this machine, so that their A queries
		// resolve like the rest of the edge zone.
		if host, _ := splitHostPort(cfg.EdgeAddr); net.ParseIP(host) != nil {
			cfg.EdgeNameServers = fmt.Sprintf("ns1.%[1]s=%[2]s,ns2.%[1]s=%[2]s", cfg.EdgeZone, host)
		}
	}
	ns, err := cfg.EdgeNS()
	if err != nil {
		return err
	}
	snapshot := cfg.EdgeSnapshot
	if snapshot == "" {
		snapshot = filepath.Join(cfg.DataDir, "dnsedge.snapshot")
	}
	edge, err := dnsedge.New(dnsedge.Config{
		Zone: cfg.EdgeZone, NameServers: ns, Listen: cfg.EdgeAddr, MetricsListen: cfg.EdgeMetricsAddr,
		SnapshotPath: snapshot, DatabaseURL: cfg.DatabaseURL, ReportsDomain: cfg.ReportsDomain,
		RRLRate: cfg.EdgeRRL(), RRLSlip: cfg.EdgeRRLSlip,
	}, log.With("component", "dnsedge"), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	if err := edge.Start(ctx); err != nil {
		return err
	}
	smtpAddr := ""
	if api.SMTP != nil {
		smtpAddr = api.SMTP.Addr()
	}
	printBanner(out, api.HTTP.Addr(), edge.UDPAddr().String(), smtpAddr, cfg)
	go classifyDemo(ctx, api, seeded, log)
	apiErr := api.Run(ctx)
	edgeErr := edge.Wait()
	return errors.Join(apiErr, edgeErr)
}

func printBanner(out io.Writer, apiAddr, edgeAddr, smtpAddr string, cfg *Config) {
	host, port := splitHostPort(edgeAddr)
	edgeMetrics := ""
	if cfg.EdgeMetricsAddr != "" {
		edgeMetrics = "  (dnsedge: http://" + cfg.EdgeMetricsAddr + "/metrics)"
	}
	// The banner is for a person at a terminal; a failed write has no one to tell.
	_, _ = fmt.Fprintf(out, `
Rampart is running (Ctrl-C stops everything).

  GraphQL API   http://%[1]s/graphql
  GraphiQL      http://%[1]s/
  Metrics       http://%[1]s/metrics%[2]s
  dnsedge       %[3]s (UDP and TCP), zone %[4]s
  Report mail   smtp://%[10]s for <token>@%[11]s (each domain's reportAddress)
  Report upload POST http://%[1]s/upload (Bearer token)
  Job dashboard http://%[1]s/riverui/ (the demo owner is an operator; POST /riverui/session with its Bearer token sets the cookie)

  Demo login    %[5]s / %[6]s
  Mail          invitations and password resets are printed to this log, links included (set -smtp-relay to send them)

Log in:
  curl -s http://%[1]s/graphql -H 'Content-Type: application/json' \
    -d '{"query":"mutation { login(email: \"%[5]s\", password: \"%[6]s\") { accessToken } }"}'

The demo domain's DMARC record, from dnsedge:
  go run ./cmd/rampart query -server %[3]s _dmarc.%[7]s TXT
  dig @%[8]s -p %[9]s _dmarc.%[7]s TXT +norec

`, apiAddr, edgeMetrics, edgeAddr, cfg.EdgeZone, DemoEmail, DemoPassword, DemoDomain, host, port, smtpAddr, cfg.ReportsDomain)
}

// SeedDemo creates the demo owner, account and domain when they are missing.
// It goes through the same services as the API, as the demo owner; the demo
// domain is then verified as the operator would (`rampart admin
// verify-domain`), since nobody can publish its proof, so that the edge
// serves it at once.
func SeedDemo(ctx context.Context, pool *pgxpool.Pool, cfg *Config, log *slog.Logger) error {
	seedCfg := *cfg
	seedCfg.DNSResolver = "off" // no point looking for the demo domain's proof
	svc, err := NewServices(pool, &seedCfg, log)
	if err != nil {
		return err
	}
	exists, err := svc.Accounts.UserExists(ctx, DemoEmail)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	hash, err := auth.HashPassword(DemoPassword)
	if err != nil {
		return err
	}
	acct, user, err := svc.Accounts.CreateOwner(ctx, account.NewOwner{Email: DemoEmail, Name: "Demo Owner", PasswordHash: hash, AccountName: DemoAccount})
	if err != nil {
		return fmt.Errorf("seed demo owner: %w", err)
	}
	// The demo owner runs this instance, so it may open the job dashboard.
	if _, err := access.GrantOperator(ctx, pool, DemoEmail); err != nil {
		return fmt.Errorf("seed demo operator: %w", err)
	}
	asOwner := access.NewContext(ctx, access.Principal{UserID: user.ID})
	if _, err := svc.Domains.Add(asOwner, acct.ID, DemoDomain); err != nil && !errors.Is(err, apperr.ErrConflict) {
		return fmt.Errorf("seed demo domain: %w", err)
	}
	if _, err := svc.Domains.VerifyAsOperator(ctx, DemoDomain, &acct.ID); err != nil {
		return fmt.Errorf("verify demo domain: %w", err)
	}
	// The demo domain's own servers, so that its reports (SeedDemoReports)
	// show them as such.
	if _, err := svc.Senders.AddNetblock(asOwner, DemoDomain, demoNetblock, "office"); err != nil {
		return fmt.Errorf("seed demo netblock: %w", err)
	}
	// Google Workspace signs with a key the domain hosts, tied to the
	// service, as an administrator sets it up.
	services, err := catalog.Load()
	if err != nil {
		return err
	}
	if err := svc.Senders.SyncCatalog(ctx, services); err != nil {
		return err
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		return err
	}
	if _, _, err := svc.Keys.Add(asOwner, DemoDomain, domainkey.NewKey{
		Selector: "google", PublicKey: base64.StdEncoding.EncodeToString(der), Service: "google-workspace",
	}); err != nil {
		return fmt.Errorf("seed demo DKIM key: %w", err)
	}
	log.Info("seeded demo account", "email", DemoEmail, "domain", DemoDomain)
	return nil
}

// classifyDemo classifies the demo reports as soon as the workers have
// stored them, rather than at the next run of sources.classify (a minute
// later), so that the demo domain's readiness shows its senders at once.
func classifyDemo(ctx context.Context, api *API, blobs []uuid.UUID, log *slog.Logger) {
	if len(blobs) == 0 || api.Services.Sources == nil {
		return
	}
	for start := time.Now(); time.Since(start) < 2*time.Minute; {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		outcomes, err := api.Store.Outcomes(ctx, blobs)
		if err != nil {
			log.Warn("demo reports", "err", err)
			return
		}
		pending := 0
		for _, o := range outcomes {
			if o.Status == "pending" {
				pending++
			}
		}
		if pending == 0 {
			break
		}
	}
	if _, err := api.Services.Sources.Run(ctx, time.Now().Add(time.Minute)); err != nil && ctx.Err() == nil {
		log.Warn("classify demo reports", "err", err)
	}
}

func splitHostPort(addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, ""
	}
	return h, p
}
