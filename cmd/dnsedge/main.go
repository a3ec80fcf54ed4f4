// Command dnsedge runs Rampart's authoritative DNS edge: it serves the DNS
// records Rampart hosts from a snapshot of PostgreSQL's edge tables. See
// package dnsedge.
//
// Every flag defaults to an environment variable:
//
//	-listen                    DNSEDGE_LISTEN                    UDP and TCP address (127.0.0.1:5353)
//	-edge-zone                 RAMPART_EDGE_ZONE                 the edge's own zone (edge.rampart.test: refused, see below)
//	-edge-ns                   RAMPART_EDGE_NS                   name servers, "name[=address],..." (ns1.<zone>,ns2.<zone>)
//	-reports-domain            RAMPART_REPORTS_DOMAIN            domain of the report addresses; serves
//	                                                             _report._dmarc.<it> (reports.rampart.test: refused)
//	-allow-dev-zone            RAMPART_ALLOW_DEV_ZONE            start on development names anyway (labs and tests)
//	-snapshot                  DNSEDGE_SNAPSHOT                  snapshot file (.data/dnsedge.snapshot)
//	-metrics                   DNSEDGE_METRICS                   /metrics address, empty for none (127.0.0.1:9153)
//	-resync                    DNSEDGE_RESYNC                    full reload interval (5m)
//	-spf-ttl                   DNSEDGE_SPF_TTL                   TTL of the per-query SPF answers (1m)
//	-tcp-max-conns             DNSEDGE_TCP_MAX_CONNS             TCP connections open at once (1024)
//	-tcp-max-conns-per-source  DNSEDGE_TCP_MAX_CONNS_PER_SOURCE  per IPv4 address or IPv6 /64 (64)
//	-tcp-read-timeout          DNSEDGE_TCP_READ_TIMEOUT          wait for a connection's first query (5s)
//	-tcp-idle-timeout          DNSEDGE_TCP_IDLE_TIMEOUT          idle time before a connection is closed (10s)
//	-rrl-rate                  DNSEDGE_RRL_RATE                  UDP responses per second per /24 or /56, 0 for no limit (200)
//	-rrl-slip                  DNSEDGE_RRL_SLIP                  send every Nth limited response truncated, -1 for none (2)
//	-log-format                DNSEDGE_LOG_FORMAT                text or json (text)
//	-log-level                 DNSEDGE_LOG_LEVEL                 debug, info, warn or error (info)
//	-pprof                     DNSEDGE_PPROF                     address serving /debug/pprof/, empty for none (none)
//
// The edge zone, name servers and reports domain are the settings of
// `rampart serve` of the same names (package internal/edgeconf): one
// environment shared by both binaries gives a pair that agrees. Their
// former names, -zone, -ns, DNSEDGE_ZONE, DNSEDGE_NS and
// DNSEDGE_REPORTS_DOMAIN, still work with a warning; a former and a current
// name given different values are refused. The defaults are development
// names under .test that no resolver on the internet answers for: dnsedge
// refuses them, and any zone, name server or reports domain under another
// special-use suffix (.example, .invalid, .localhost, .local, ...), unless
// -allow-dev-zone is given for a lab or a test.
//
// The database is DATABASE_URL, read from the environment only so that its
// password does not show in the process list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rampartmail/rampart/dnsedge"
	"github.com/rampartmail/rampart/internal/edgeconf"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dnsedge:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, opts, err := parseArgs(args, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(opts.format, opts.level)
	if err != nil {
		return err
	}
	for _, w := range opts.warnings {
		log.Warn("dnsedge: " + w)
	}
	if opts.devNames != "" {
		log.Warn("dnsedge: " + opts.devNames)
	}
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set")
	}
	if opts.pprof != "" {
		if err := servePprof(opts.pprof, log); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	edge, err := dnsedge.New(cfg, log, reg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return edge.Run(ctx)
}

// options are the process's settings outside the edge's configuration: the
// log's format and level, and the pprof listener's address; and what to
// warn about once the log is set up: deprecated setting names, and
// development names allowed by -allow-dev-zone.
type options struct {
	format, level, pprof string
	warnings             []string
	devNames             string
}

// parseArgs reads the flags, each defaulting to its environment variable as
// getenv finds it, into the edge's configuration.
func parseArgs(args []string, getenv func(string) (string, bool)) (dnsedge.Config, options, error) {
	var (
		cfg    dnsedge.Config
		opts   options
		envErr error
	)
	str := func(key, def string) string {
		if v, ok := getenv(key); ok {
			return v
		}
		return def
	}
	dur := func(key string, def time.Duration) time.Duration {
		v, ok := getenv(key)
		if !ok || v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			envErr = errors.Join(envErr, fmt.Errorf("%s: %w", key, err))
		}
		return d
	}
	num := func(key string, def int) int {
		v, ok := getenv(key)
		if !ok || v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			envErr = errors.Join(envErr, fmt.Errorf("%s: %w", key, err))
		}
		return n
	}

	fs := flag.NewFlagSet("dnsedge", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", str("DNSEDGE_LISTEN", dnsedge.DefaultListen), "UDP and TCP `address` to answer DNS on")
	shared := edgeconf.Define(fs)
	fs.StringVar(&cfg.SnapshotPath, "snapshot", str("DNSEDGE_SNAPSHOT", ".data/dnsedge.snapshot"), "snapshot `file`")
	fs.StringVar(&cfg.MetricsListen, "metrics", str("DNSEDGE_METRICS", "127.0.0.1:9153"), "`address` serving /metrics, empty for none")
	fs.DurationVar(&cfg.ResyncInterval, "resync", dur("DNSEDGE_RESYNC", dnsedge.DefaultResyncInterval), "full reload `interval`")
	fs.DurationVar(&cfg.SPFTTL, "spf-ttl", dur("DNSEDGE_SPF_TTL", dnsedge.DefaultSPFTTL), "`TTL` of the per-query SPF answers")
	fs.IntVar(&cfg.TCPMaxConns, "tcp-max-conns", num("DNSEDGE_TCP_MAX_CONNS", dnsedge.DefaultTCPMaxConns), "TCP connections open at once")
	fs.IntVar(&cfg.TCPMaxConnsPerSource, "tcp-max-conns-per-source", num("DNSEDGE_TCP_MAX_CONNS_PER_SOURCE", dnsedge.DefaultTCPMaxConnsPerSource), "TCP connections open at once per IPv4 address or IPv6 /64")
	fs.DurationVar(&cfg.TCPReadTimeout, "tcp-read-timeout", dur("DNSEDGE_TCP_READ_TIMEOUT", dnsedge.DefaultTCPReadTimeout), "wait for a TCP connection's first query, and bound on each write")
	fs.DurationVar(&cfg.TCPIdleTimeout, "tcp-idle-timeout", dur("DNSEDGE_TCP_IDLE_TIMEOUT", dnsedge.DefaultTCPIdleTimeout), "idle time before a TCP connection is closed")
	fs.IntVar(&cfg.RRLRate, "rrl-rate", num("DNSEDGE_RRL_RATE", dnsedge.DefaultRRLRate), "UDP responses per second per client /24 or /56; 0 for no limit (only for benchmarks from one network)")
	fs.IntVar(&cfg.RRLSlip, "rrl-slip", num("DNSEDGE_RRL_SLIP", dnsedge.DefaultRRLSlip), "send every `N`th rate-limited response truncated; -1 to drop them all")
	fs.StringVar(&opts.format, "log-format", str("DNSEDGE_LOG_FORMAT", "text"), "log `format`: text or json")
	fs.StringVar(&opts.level, "log-level", str("DNSEDGE_LOG_LEVEL", "info"), "log `level`: debug, info, warn or error")
	fs.StringVar(&opts.pprof, "pprof", str("DNSEDGE_PPROF", ""), "`address` serving /debug/pprof/ for profiling, empty for none")
	if envErr != nil {
		return cfg, opts, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, opts, err
	}
	if fs.NArg() > 0 {
		return cfg, opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	names, warnings, err := shared.Values(getenv)
	if err != nil {
		return cfg, opts, err
	}
	opts.warnings = warnings
	if opts.devNames, err = names.Check(); err != nil {
		return cfg, opts, err
	}
	cfg.Zone, cfg.ReportsDomain = names.Zone, names.ReportsDomain
	if names.NameServers != "" {
		if cfg.NameServers, err = dnsedge.ParseNameServers(names.NameServers); err != nil {
			return cfg, opts, fmt.Errorf("%s: %w", edgeconf.NameServers.Names(), err)
		}
	}
	if cfg.RRLRate <= 0 {
		// 0 is "no limit" on the command line, as NSD's rrl-ratelimit: 0;
		// in Config it would mean the default.
		cfg.RRLRate = dnsedge.RRLOff
	}
	cfg.DatabaseURL, _ = getenv("DATABASE_URL")
	return cfg, opts, nil
}

// servePprof serves the runtime profiles at addr, for measuring where the
// edge spends its time under load. It runs until the process exits.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil {
			log.Error("dnsedge: serve pprof", "err", err)
		}
	}()
	log.Info("dnsedge: serving pprof", "addr", ln.Addr().String())
	return nil
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
