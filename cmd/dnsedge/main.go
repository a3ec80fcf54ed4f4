// Command dnsedge runs Rampart's authoritative DNS edge: it serves the DNS
// records Rampart hosts from a snapshot of PostgreSQL's edge tables. See
// package dnsedge.
//
// Every flag defaults to an environment variable:
//
//	-listen      DNSEDGE_LISTEN      UDP and TCP address (127.0.0.1:5353)
//	-zone        DNSEDGE_ZONE        the edge's own zone (edge.rampart.test)
//	-ns          DNSEDGE_NS          name servers, "name[=address],..." (ns1.<zone>,ns2.<zone>)
//	-snapshot    DNSEDGE_SNAPSHOT    snapshot file (.data/dnsedge.snapshot)
//	-metrics     DNSEDGE_METRICS     /metrics address, empty for none (127.0.0.1:9153)
//	-resync      DNSEDGE_RESYNC      full reload interval (5m)
//	-log-format  DNSEDGE_LOG_FORMAT  text or json (text)
//	-log-level   DNSEDGE_LOG_LEVEL   debug, info, warn or error (info)
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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rampartmail/rampart/dnsedge"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dnsedge:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	resyncDefault := dnsedge.DefaultResyncInterval
	if v := os.Getenv("DNSEDGE_RESYNC"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("DNSEDGE_RESYNC: %w", err)
		}
		resyncDefault = d
	}
	fs := flag.NewFlagSet("dnsedge", flag.ContinueOnError)
	listen := fs.String("listen", env("DNSEDGE_LISTEN", dnsedge.DefaultListen), "UDP and TCP `address` to answer DNS on")
	zone := fs.String("zone", env("DNSEDGE_ZONE", "edge.rampart.test"), "the edge's own `zone`")
	ns := fs.String("ns", os.Getenv("DNSEDGE_NS"), "name servers, `name[=address],...` (default ns1.<zone>,ns2.<zone>)")
	snapshot := fs.String("snapshot", env("DNSEDGE_SNAPSHOT", ".data/dnsedge.snapshot"), "snapshot `file`")
	metrics := fs.String("metrics", env("DNSEDGE_METRICS", "127.0.0.1:9153"), "`address` serving /metrics, empty for none")
	resync := fs.Duration("resync", resyncDefault, "full reload `interval`")
	logFormat := fs.String("log-format", env("DNSEDGE_LOG_FORMAT", "text"), "log `format`: text or json")
	logLevel := fs.String("log-level", env("DNSEDGE_LOG_LEVEL", "info"), "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	log, err := newLogger(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	cfg := dnsedge.Config{
		Zone:           *zone,
		Listen:         *listen,
		MetricsListen:  *metrics,
		SnapshotPath:   *snapshot,
		ResyncInterval: *resync,
		DatabaseURL:    os.Getenv("DATABASE_URL"),
	}
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set")
	}
	if *ns != "" {
		if cfg.NameServers, err = dnsedge.ParseNameServers(*ns); err != nil {
			return fmt.Errorf("-ns: %w", err)
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

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
