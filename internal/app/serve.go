package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rampartmail/rampart/graph"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/domainkey"
	"github.com/rampartmail/rampart/internal/sender"
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
}

// NewServices builds the domain services over a pool.
func NewServices(pool *pgxpool.Pool, cfg *Config, log *slog.Logger) (*Services, error) {
	keys, err := cfg.KeySet()
	if err != nil {
		return nil, err
	}
	a, err := auth.NewService(pool, keys, auth.Config{}, log)
	if err != nil {
		return nil, err
	}
	ns, err := cfg.NameServers()
	if err != nil {
		return nil, err
	}
	domains := domain.NewService(pool, domain.Config{EdgeZone: cfg.EdgeZone, NameServers: ns}, log)
	return &Services{
		Auth:     a,
		Accounts: account.NewService(pool),
		Domains:  domains,
		Senders:  sender.NewManager(pool, domains, log),
		Keys:     domainkey.NewManager(pool, domains, log),
	}, nil
}

// OpenPool connects to PostgreSQL and checks the connection.
func OpenPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, errors.New("no database: set DATABASE_URL (or use `rampart dev`, which starts a private cluster)")
	}
	pool, err := pgxpool.New(ctx, url)
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

// API is a running `rampart serve`: the HTTP API and the River workers.
type API struct {
	HTTP *server.Server
	log  *slog.Logger
	run  func(ctx context.Context) error
}

// NewAPI assembles the API and workers on an open pool. Run starts them.
func NewAPI(ctx context.Context, pool *pgxpool.Pool, cfg *Config, log *slog.Logger) (*API, error) {
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
	gql := graph.NewHandler(&graph.Resolver{
		AccountSvc: svc.Accounts, DomainSvc: svc.Domains, AuthSvc: svc.Auth,
		SenderSvc: svc.Senders, KeySvc: svc.Keys, Log: log, Pool: pool,
	}, graph.DefaultLimits)
	httpSrv := server.New(server.Config{Addr: cfg.APIAddr, Dev: cfg.Dev}, gql, pool, reg, log)
	if err := httpSrv.Listen(); err != nil {
		return nil, err
	}
	river, err := jobs.NewClient(pool, jobs.Config{Workers: cfg.Workers}, jobs.Services{Auth: svc.Auth, Senders: svc.Senders, Resolver: cfg.Resolver()}, log)
	if err != nil {
		return nil, err
	}
	a := &API{HTTP: httpSrv, log: log}
	a.run = func(ctx context.Context) error {
		if cfg.Workers > 0 {
			if err := river.Start(ctx); err != nil {
				return fmt.Errorf("start workers: %w", err)
			}
		}
		httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
		defer stopHTTP()
		httpDone := make(chan error, 1)
		go func() { httpDone <- httpSrv.Run(httpCtx) }()
		select {
		case err := <-httpDone:
			return err
		case <-ctx.Done():
		}
		// Shutdown order: workers drain their jobs, then the HTTP server
		// finishes its requests; the caller closes the pool last.
		log.Info("shutting down")
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

// Serve is `rampart serve`.
func Serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
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
