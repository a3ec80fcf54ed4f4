package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"riverqueue.com/riverui"

	"github.com/rampartmail/rampart/graph"
	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/dnscheck"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/domainconfig"
	"github.com/rampartmail/rampart/internal/domainkey"
	"github.com/rampartmail/rampart/internal/enrich"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/intake/imappull"
	"github.com/rampartmail/rampart/internal/intake/smtpd"
	"github.com/rampartmail/rampart/internal/intake/upload"
	"github.com/rampartmail/rampart/internal/mailout"
	"github.com/rampartmail/rampart/internal/readiness"
	"github.com/rampartmail/rampart/internal/reporting"
	"github.com/rampartmail/rampart/internal/request"
	"github.com/rampartmail/rampart/internal/sender"
	"github.com/rampartmail/rampart/internal/sources"
	"github.com/rampartmail/rampart/internal/spf"
	"github.com/rampartmail/rampart/jobs"
	"github.com/rampartmail/rampart/migrations"
	"github.com/rampartmail/rampart/server"
)

// Services are the domain services of one process.
type Services struct {
	Auth     *auth.Service
	Accounts *account.Service
	Domains  *domain.Service
	Senders  *sender.Manager
	Keys     *domainkey.Manager
	// Configs applies domains' declared configurations.
	Configs *domainconfig.Service
	// Sources classifies report sources (the job sources.classify).
	Sources *sources.Classifier
	// Readiness reads domains' readiness for enforcement.
	Readiness *readiness.Reader
	// Teams manages teams and their grants.
	Teams *access.Teams
}

// NewServices builds the domain services over a pool.
func NewServices(pool *pgxpool.Pool, cfg *Config, log *slog.Logger) (*Services, error) {
	if cfg.MSPDepth > 0 { // 0: a Config made without flags keeps the default
		access.SetMaxDepth(cfg.MSPDepth)
	}
	keys, err := cfg.KeySet()
	if err != nil {
		return nil, err
	}
	mail, err := cfg.mailer(log)
	if err != nil {
		return nil, err
	}
	link := cfg.linkBase()
	a, err := auth.NewService(pool, keys, auth.Config{LoginBackoff: cfg.LoginBackoff, LoginBackoffMax: cfg.LoginBackoffMax,
		SessionLifetime: cfg.SessionLifetime, Mail: mail, LinkBase: link, Now: cfg.Now}, log)
	if err != nil {
		return nil, err
	}
	dcfg, err := cfg.domainConfig()
	if err != nil {
		return nil, err
	}
	domains := domain.NewService(pool, dcfg, log)
	senders := sender.NewManager(pool, domains, log)
	if r := cfg.Resolver(); r != "" {
		senders.SetResolver(spf.NewDNSResolver(r))
	}
	dkeys := domainkey.NewManager(pool, domains, log)
	return &Services{
		Auth: a,
		Accounts: account.NewServiceWith(pool, account.Config{SignUp: cfg.SignUp == "open", Mail: mail, LinkBase: link,
			InvitationTTL: cfg.InvitationTTL, Now: cfg.Now}),
		Domains:   domains,
		Senders:   senders,
		Keys:      dkeys,
		Configs:   domainconfig.NewService(pool, domains, senders, dkeys),
		Sources:   sources.NewClassifier(pool, cfg.Resolver() != "", log),
		Readiness: readiness.NewReader(pool, dcfg.Readiness),
		Teams:     access.NewTeams(pool),
	}, nil
}

// domainConfig is what the domain service needs to know.
func (c *Config) domainConfig() (domain.Config, error) {
	ns, err := c.NameServers()
	if err != nil {
		return domain.Config{}, err
	}
	dcfg := domain.Config{EdgeZone: c.EdgeZone, NameServers: ns, ReportsDomain: c.ReportsDomain, RemovalGrace: domain.DefaultRemovalGrace,
		Readiness: c.Readiness}
	if dcfg.Readiness == (readiness.Settings{}) {
		dcfg.Readiness = readiness.Defaults
	}
	if c.RemovalGrace != 0 {
		if err := checkRemovalGrace(c.RemovalGrace); err != nil {
			return domain.Config{}, fmt.Errorf("-removal-grace (RAMPART_REMOVAL_GRACE): %w", err)
		}
		dcfg.RemovalGrace = c.RemovalGrace
	}
	if r := c.Resolver(); r != "" {
		dcfg.Checker = dnscheck.New(r)
	}
	return dcfg, nil
}

// enricher returns the enricher of report sources: reverse DNS through the
// resolver, ASN and country from the operator's files; nil when neither is
// configured. A file that cannot be read is an error.
func (c *Config) enricher(pool *pgxpool.Pool, log *slog.Logger) (*enrich.Enricher, error) {
	geo, err := enrich.OpenGeo(c.GeoIPASNDB, c.GeoIPCountryDB)
	if err != nil {
		return nil, fmt.Errorf("-geoip-asn-db, -geoip-country-db (RAMPART_GEOIP_ASN_DB, RAMPART_GEOIP_COUNTRY_DB): %w", err)
	}
	ecfg := enrich.Config{Geo: geo}
	if r := c.Resolver(); r != "" {
		ecfg.Checker = dnscheck.New(r)
	}
	if ecfg.Checker == nil && geo == nil {
		return nil, nil
	}
	return enrich.New(pool, ecfg, log), nil
}

// ConfigureSessions sets what every session of the pool runs with, unless
// the database URL sets it: no JIT compilation (jit=off). The report's
// statements read a few hundred summary rows but go through views whose
// live branches (days queued for classification) the planner costs at
// millions, so PostgreSQL would compile them on every read: a second of
// JIT for a statement that runs in milliseconds (docs/benchmarks.md).
func ConfigureSessions(pcfg *pgxpool.Config) {
	if _, ok := pcfg.ConnConfig.RuntimeParams["jit"]; !ok {
		pcfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
}

// OpenPool connects to PostgreSQL and checks the connection.
func OpenPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, errors.New("no database: set DATABASE_URL (or use `rampart dev`, which starts a private cluster)")
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// Each report worker holds a connection while it ingests; the
		// default (the number of CPUs) would starve the API.
		pcfg.MaxConns = 40
	}
	ConfigureSessions(pcfg)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return pool, nil
}

// API is a running `rampart serve`: the HTTP API, report intake and the
// River workers.
type API struct {
	HTTP *server.Server
	// SMTP is the rua mail server; nil when it is off.
	SMTP *smtpd.Server
	// Store takes report inputs in; Services are the domain services the
	// API calls.
	Store    *ingest.Store
	Services *Services
	log      *slog.Logger
	run      func(ctx context.Context) error
}

// NewAPI assembles the API and workers on an open pool. Run starts them.
func NewAPI(ctx context.Context, pool *pgxpool.Pool, cfg *Config, log *slog.Logger) (*API, error) {
	proxies, err := cfg.Proxies()
	if err != nil {
		return nil, err
	}
	if cfg.Migrate {
		if err := migrations.Up(ctx, pool, log); err != nil {
			return nil, err
		}
	}
	svc, err := NewServices(pool, cfg, log)
	if err != nil {
		return nil, err
	}
	services, err := catalog.Load()
	if err != nil {
		return nil, err
	}
	if err := svc.Senders.SyncCatalog(ctx, services); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	enricher, err := cfg.enricher(pool, log)
	if err != nil {
		return nil, err
	}
	river, err := jobs.NewClient(pool, cfg.Jobs(), jobs.Services{Auth: svc.Auth, Senders: svc.Senders, Domains: svc.Domains, Sources: svc.Sources,
		Resolver: cfg.Resolver(), Enricher: enricher}, log)
	if err != nil {
		return nil, err
	}
	store := ingest.NewStore(pool, river, log)
	resolver := &graph.Resolver{
		AccountSvc: svc.Accounts, DomainSvc: svc.Domains, AuthSvc: svc.Auth,
		SenderSvc: svc.Senders, KeySvc: svc.Keys, ConfigSvc: svc.Configs, Reporting: reporting.NewReader(pool), Store: store,
		AuthReports:  authreport.New(pool),
		ReadinessSvc: svc.Readiness,
		TeamSvc:      svc.Teams,
		Log:          log, Pool: pool,
	}
	limits := graph.DefaultLimits
	if cfg.UploadMaxBody > 0 {
		limits.UploadBytes = int64(cfg.UploadMaxBody) // one limit for both upload paths
	}
	gql := graph.NewHandler(resolver, limits)
	uploads := upload.New(pool, store, upload.Config{MaxBody: int64(cfg.UploadMaxBody)}, log)
	authenticate := resolver.Authenticate
	lookup := func(ctx context.Context, name string) (uuid.UUID, uuid.UUID, error) {
		d, err := svc.Domains.Get(ctx, name)
		return d.AccountID, d.ID, err
	}
	chart := authreport.ChartHandler(resolver.AuthReports, lookup, time.Now, log)
	routes := []server.Route{
		{Pattern: "POST /upload", Handler: server.RequireAuth(authenticate, log, uploads)},
		{Pattern: "GET /charts/pass-rate.svg", Handler: server.RequireAuth(authenticate, log, chart)},
	}
	var dashboard *riverui.Handler
	if cfg.RiverUI {
		dashboard, err = riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(river, nil), Logger: log.With("component", "riverui"), Prefix: "/riverui",
		})
		if err != nil {
			return nil, fmt.Errorf("job dashboard: %w", err)
		}
		gate := &server.Dashboard{
			Prefix: "/riverui", SecureCookies: cfg.SecureCookies,
			Authenticate: authenticate, AuthenticateSession: resolver.AuthenticateDashboard,
			StartSession: resolver.StartDashboardSession, EndSession: svc.Auth.EndDashboardSession,
			Operator: access.New(pool).Operator, Log: log,
		}
		session := server.DashboardSession(gate)
		routes = append(routes,
			server.Route{Pattern: "POST /riverui/session", Handler: session},
			server.Route{Pattern: "DELETE /riverui/session", Handler: session},
			server.Route{Pattern: "/riverui/", Handler: server.OperatorOnly(gate, dashboard)})
	}
	api := server.GraphQLUploads(authenticate, limits.UploadBytes, log, gql)
	httpSrv := server.New(server.Config{Addr: cfg.APIAddr, Dev: cfg.Dev, TrustedProxies: proxies}, api, pool, reg, log, routes...)
	if err := httpSrv.Listen(); err != nil {
		return nil, err
	}
	intake, err := newIntake(cfg, proxies, pool, store, log)
	if err != nil {
		return nil, err
	}
	a := &API{HTTP: httpSrv, SMTP: intake.smtp, Store: store, Services: svc, log: log}
	a.run = func(ctx context.Context) error {
		if cfg.Workers > 0 {
			if err := river.Start(ctx); err != nil {
				return fmt.Errorf("start workers: %w", err)
			}
		}
		if dashboard != nil {
			if err := dashboard.Start(ctx); err != nil {
				return fmt.Errorf("start job dashboard: %w", err)
			}
		}
		intakeCtx, stopIntake := context.WithCancel(context.WithoutCancel(ctx))
		defer stopIntake()
		intakeDone := intake.run(intakeCtx)
		httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
		defer stopHTTP()
		httpDone := make(chan error, 1)
		go func() { httpDone <- httpSrv.Run(httpCtx) }()
		select {
		case err := <-httpDone:
			return err
		case <-ctx.Done():
		}
		// Shutdown order: intake stops taking mail, workers drain their
		// jobs, then the HTTP server finishes its requests; the caller
		// closes the pool last.
		log.Info("shutting down")
		stopIntake()
		intakeDone.Wait()
		if cfg.Workers > 0 {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if err := river.Stop(stopCtx); err != nil {
				log.Warn("workers did not drain in time", "err", err)
			}
			cancel()
		}
		stopHTTP()
		return <-httpDone
	}
	return a, nil
}

// Run serves until ctx is cancelled and everything has stopped.
func (a *API) Run(ctx context.Context) error { return a.run(ctx) }

// Serve is `rampart serve`. It refuses development edge names before it
// connects to anything (see [Config.CheckEdgeNames]).
func Serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
	if err := cfg.CheckEdgeNames(log); err != nil {
		return err
	}
	pool, err := OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	api, err := NewAPI(ctx, pool, cfg, log)
	if err != nil {
		return err
	}
	return api.Run(ctx)
}

// intake holds the report intake paths that run beside the API.
type intake struct {
	smtp   *smtpd.Server
	puller *imappull.Puller
	log    *slog.Logger
}

func newIntake(cfg *Config, proxies request.Proxies, pool *pgxpool.Pool, store *ingest.Store, log *slog.Logger) (*intake, error) {
	in := &intake{log: log}
	if cfg.SMTPAddr != "" {
		var tlsCfg *tls.Config
		if cfg.SMTPTLSCert != "" {
			var err error
			if tlsCfg, err = smtpd.TLSFromFiles(cfg.SMTPTLSCert, cfg.SMTPTLSKey); err != nil {
				return nil, err
			}
		}
		srv, err := smtpd.New(smtpd.Config{
			Addr: cfg.SMTPAddr, Domain: cfg.ReportsDomain, Hostname: cfg.SMTPHostname, TLS: tlsCfg,
			MaxSize: int64(cfg.SMTPMaxSize), MaxSessionsPerClient: cfg.SMTPMaxConnPerIP,
			SessionsPerMinute: cfg.SMTPSessionsPerMinute, MessagesPerMinute: cfg.SMTPMessagesPerMinute,
			TrustedProxies: proxies,
		}, store, log.With("component", "smtp"))
		if err != nil {
			return nil, err
		}
		if err := srv.Listen(); err != nil {
			return nil, err
		}
		in.smtp = srv
	}
	if cfg.IMAPAddr != "" {
		acct, err := uuid.Parse(cfg.IMAPAccount)
		if err != nil {
			return nil, fmt.Errorf("RAMPART_IMAP_ACCOUNT: %w", err)
		}
		pw := os.Getenv("RAMPART_IMAP_PASSWORD")
		if cfg.IMAPPasswordFile != "" {
			b, err := os.ReadFile(cfg.IMAPPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("IMAP password file: %w", err)
			}
			pw = strings.TrimSpace(string(b))
		}
		in.puller, err = imappull.New(imappull.Config{
			Addr: cfg.IMAPAddr, TLS: imappull.TLSMode(cfg.IMAPTLS), Username: cfg.IMAPUser,
			Password: pw, Mailbox: cfg.IMAPMailbox, AccountID: acct, Interval: cfg.IMAPInterval,
		}, pool, store, log.With("component", "imap"))
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}

// run starts the intake paths; the WaitGroup ends when they have stopped.
func (in *intake) run(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	if in.smtp != nil {
		wg.Go(func() {
			if err := in.smtp.Run(ctx); err != nil {
				in.log.Error("SMTP server stopped", "err", err)
			}
		})
	}
	if in.puller != nil {
		wg.Go(func() {
			if err := in.puller.Run(ctx); err != nil && ctx.Err() == nil {
				in.log.Error("IMAP pull stopped", "err", err)
			}
		})
	}
	return &wg
}

// mailer is where Rampart's own mail goes: the configured relay; in dev
// without one, the log; otherwise nowhere (nil: invitations and password
// resets are refused).
func (c *Config) mailer(log *slog.Logger) (mailout.Sender, error) {
	if c.SMTPRelay == "" {
		if c.Dev {
			return mailout.Log{Logger: log.With("component", "mail")}, nil
		}
		return nil, nil
	}
	pw := os.Getenv("RAMPART_SMTP_RELAY_PASSWORD")
	if c.SMTPRelayPasswordFile != "" {
		b, err := os.ReadFile(c.SMTPRelayPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("-smtp-relay-password-file: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	from := c.SMTPFrom
	if from == "" {
		from = "noreply@" + c.ReportsDomain
	}
	r, err := mailout.NewRelay(mailout.Config{Addr: c.SMTPRelay, From: from, TLS: c.SMTPRelayTLS,
		Username: c.SMTPRelayUser, Password: pw, HelloName: c.SMTPHostname, Now: c.Now})
	if err != nil {
		return nil, fmt.Errorf("-smtp-relay (RAMPART_SMTP_RELAY): %w", err)
	}
	return r, nil
}

// linkBase starts the links in Rampart's mail.
func (c *Config) linkBase() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	return "http://" + c.APIAddr
}
