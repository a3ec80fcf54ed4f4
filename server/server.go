// Package server wires Rampart's HTTP surface: the GraphQL endpoint, GraphiQL
// in dev mode, health checks and Prometheus metrics, behind middleware that
// gives each request an id, records the client address (from X-Forwarded-For
// only when the peer is a trusted proxy), extracts the bearer
// credential (checked later by the GraphQL layer, after the query limits),
// bounds the body size and logs the request.
//
// The body limit (MaxBody, 1 MiB) holds for every request until its caller
// is authenticated: uploads, the only requests that may be larger, first
// authenticate from the Authorization header and authorise the caller, and
// only then raise their own limit ([request.RaiseBodyLimit]). So an
// anonymous client can make the server read no more than MaxBody of any
// body.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/request"
)

// Config configures the HTTP server.
type Config struct {
	// Addr is the listen address, e.g. 127.0.0.1:8080.
	Addr string
	// Dev serves GraphiQL at / and logs more.
	Dev bool
	// MaxBody bounds a request body, in bytes (default 1 MiB), until an
	// upload route has authenticated its caller and raised its own limit.
	MaxBody int64
	// TrustedProxies are the reverse proxies whose X-Forwarded-For header
	// names the client (see [request.Proxies.ClientAddr]); from any other
	// peer the header is ignored. The zero value trusts no one.
	TrustedProxies request.Proxies
}

// Server is the API's HTTP server.
type Server struct {
	cfg  Config
	log  *slog.Logger
	http *http.Server
	ln   net.Listener
}

// Route is an extra HTTP route, such as the report upload endpoint.
type Route struct {
	// Pattern is a net/http ServeMux pattern, e.g. "POST /upload".
	Pattern string
	Handler http.Handler
}

// New builds the server around the GraphQL handler and extra routes.
func New(cfg Config, graphql http.Handler, pool *pgxpool.Pool, reg *prometheus.Registry, log *slog.Logger, routes ...Route) *Server {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	s := &Server{cfg: cfg, log: log}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_http_requests_total", Help: "HTTP requests by route and status class.",
	}, []string{"route", "code"})
	reg.MustRegister(requests)

	mux := http.NewServeMux()
	mux.Handle("POST /graphql", graphql)
	mux.Handle("OPTIONS /graphql", graphql)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := pool.Ping(ctx); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if cfg.Dev {
		mux.Handle("GET /{$}", playground.Handler("Rampart GraphQL", "/graphql"))
	}
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	s.http = &http.Server{
		Handler:           s.middleware(mux, requests),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Listen binds the address; Addr reports it (useful with port 0).
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	s.log.Info("API listening", "addr", s.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shut); err != nil {
		return fmt.Errorf("shut down HTTP: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

// Unwrap lets http.ResponseController reach the connection (to extend
// deadlines for long uploads).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) middleware(next http.Handler, requests *prometheus.CounterVec) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := request.Info{ID: request.NewID(), Client: s.clientAddr(r), UserAgent: r.UserAgent()}
		if len(info.UserAgent) > 200 {
			info.UserAgent = info.UserAgent[:200]
		}
		if h := r.Header.Get("Authorization"); h != "" {
			scheme, cred, _ := strings.Cut(h, " ")
			if strings.EqualFold(scheme, "Bearer") {
				info.Bearer = strings.TrimSpace(cred)
			} else {
				info.Bearer = "\x00invalid" // a credential we cannot read is refused, not ignored
			}
		}
		w.Header().Set("X-Request-Id", info.ID)
		r = request.WithBodyLimit(w, r, s.cfg.MaxBody)
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(request.NewContext(r.Context(), info)))
		route := r.URL.Path
		switch route {
		case "/graphql", "/upload", "/healthz", "/readyz", "/metrics", "/":
		default:
			route = "other"
		}
		requests.WithLabelValues(route, fmt.Sprintf("%dxx", sw.code/100)).Inc()
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("request_id", info.ID), slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.code), slog.Duration("duration", time.Since(start)), slog.String("client", info.Client))
	})
}

// clientAddr is the request's client address: the peer, or the address a
// trusted proxy forwarded for.
func (s *Server) clientAddr(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr // not TCP (a test's httptest.NewRequest): as it is
	}
	return s.cfg.TrustedProxies.ClientAddr(ap.Addr(), r.Header.Values("X-Forwarded-For")).String()
}

// Authenticator turns a bearer credential into a principal; it returns an
// apperr.Error with code UNAUTHENTICATED for a credential that proves nothing.
type Authenticator func(ctx context.Context, bearer string) (access.Principal, error)

// RequireAuth wraps a plain HTTP route (not GraphQL) so that it runs only
// with an authenticated principal in its context; otherwise it answers 401
// with a JSON error in the shape of the GraphQL ones.
func RequireAuth(authenticate Authenticator, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.FromContext(r.Context())
		if info.Bearer == "" {
			WriteError(w, http.StatusUnauthorized, apperr.Unauthenticated, "authentication required", info.ID)
			return
		}
		p, err := authenticate(r.Context(), info.Bearer)
		if err != nil {
			if ae, ok := apperr.As(err); ok && ae.Code == apperr.Unauthenticated {
				WriteError(w, http.StatusUnauthorized, apperr.Unauthenticated, ae.Message, info.ID)
				return
			}
			log.ErrorContext(r.Context(), "authenticate", "err", err, "request_id", info.ID)
			WriteError(w, http.StatusInternalServerError, apperr.Internal, "internal error (request "+info.ID+")", info.ID)
			return
		}
		next.ServeHTTP(w, r.WithContext(access.NewContext(r.Context(), p)))
	})
}

// WriteError writes a JSON error body: {"error": {"code", "message", "requestId"}}.
func WriteError(w http.ResponseWriter, status int, code apperr.Code, message, requestID string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{
		"code": string(code), "message": message, "requestId": requestID,
	}})
}
