package dnsedge_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartmail/rampart/dnsedge"
)

// An edge answering for edge.rampart.example with two name servers, the
// first one with its addresses served from the edge zone itself, the report
// authorisation records of reports.rampart.example, and response rate
// limiting.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	reg := prometheus.NewRegistry()

	edge, err := dnsedge.New(dnsedge.Config{
		Zone: "edge.rampart.example",
		NameServers: []dnsedge.NameServer{
			{Name: "ns1.edge.rampart.example", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53")}},
			{Name: "ns2.dns-provider.example"},
		},
		// Serve _report._dmarc.reports.rampart.example, so that receivers
		// send every hosted domain's reports to rua addresses there.
		ReportsDomain: "reports.rampart.example",
		Listen:        "[::]:53",
		MetricsListen: "127.0.0.1:9153",
		SnapshotPath:  "/var/lib/dnsedge/snapshot",
		// A public edge limits how much it can be used as a reflector.
		RRLRate:     50,
		DatabaseURL: os.Getenv("DATABASE_URL"),
	}, log, reg)
	if err != nil {
		log.Error("configure dnsedge", "err", err)
		return
	}
	if err := edge.Run(ctx); err != nil {
		log.Error("dnsedge", "err", err)
	}
}
