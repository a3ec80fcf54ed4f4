package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/dnsedge"
	"github.com/rampartmail/rampart/internal/edgeconf"
)

func TestParseArgs(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":                     "postgres://edge@db/rampart",
		"RAMPART_EDGE_ZONE":                "edge.rampartmail.net",
		"RAMPART_REPORTS_DOMAIN":           "reports.rampartmail.net",
		"DNSEDGE_SPF_TTL":                  "30s",
		"DNSEDGE_TCP_MAX_CONNS":            "10",
		"DNSEDGE_TCP_MAX_CONNS_PER_SOURCE": "3",
		"DNSEDGE_TCP_READ_TIMEOUT":         "2s",
		"DNSEDGE_RRL_RATE":                 "20",
		"RAMPART_EDGE_NS":                  "ns1.edge.rampartmail.net=192.0.2.53",
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, logOpts, err := parseArgs([]string{"-tcp-idle-timeout", "20s", "-rrl-slip", "-1", "-log-format", "json"}, getenv)
	require.NoError(t, err)
	require.Equal(t, "postgres://edge@db/rampart", cfg.DatabaseURL)
	require.Equal(t, "edge.rampartmail.net", cfg.Zone)
	require.Equal(t, "reports.rampartmail.net", cfg.ReportsDomain)
	require.Equal(t, 30*time.Second, cfg.SPFTTL)
	require.Equal(t, 10, cfg.TCPMaxConns)
	require.Equal(t, 3, cfg.TCPMaxConnsPerSource)
	require.Equal(t, 2*time.Second, cfg.TCPReadTimeout)
	require.Equal(t, 20*time.Second, cfg.TCPIdleTimeout)
	require.Equal(t, 20, cfg.RRLRate)
	require.Equal(t, -1, cfg.RRLSlip)
	require.Equal(t, "json", logOpts.format)
	require.Len(t, cfg.NameServers, 1)
	_, err = dnsedge.New(cfg, nil, nil)
	require.NoError(t, err)

	// Defaults with an empty environment: the development names are
	// refused; allowed, they are the pair `rampart serve` uses by default.
	none := func(string) (string, bool) { return "", false }
	_, _, err = parseArgs(nil, none)
	require.ErrorContains(t, err, `-edge-zone (RAMPART_EDGE_ZONE) is "edge.rampart.test", the development default`)
	cfg, opts, err := parseArgs([]string{"-allow-dev-zone"}, none)
	require.NoError(t, err)
	require.Contains(t, opts.devNames, "allowed by -allow-dev-zone (RAMPART_ALLOW_DEV_ZONE)")
	require.Equal(t, edgeconf.DevZone, cfg.Zone)
	require.Equal(t, edgeconf.DevReportsDomain, cfg.ReportsDomain)
	require.Equal(t, dnsedge.DefaultTCPMaxConns, cfg.TCPMaxConns)
	require.Equal(t, dnsedge.DefaultRRLSlip, cfg.RRLSlip)
	require.Equal(t, dnsedge.DefaultSPFTTL, cfg.SPFTTL)
	require.Equal(t, dnsedge.DefaultRRLRate, cfg.RRLRate, "rate limiting on by default")

	// 0 turns it off, from the flag or the environment.
	cfg, _, err = parseArgs([]string{"-rrl-rate", "0"}, getenv)
	require.NoError(t, err)
	require.Equal(t, dnsedge.RRLOff, cfg.RRLRate)
	cfg, _, err = parseArgs([]string{"-allow-dev-zone"}, func(k string) (string, bool) { return "0", k == "DNSEDGE_RRL_RATE" })
	require.NoError(t, err)
	require.Equal(t, dnsedge.RRLOff, cfg.RRLRate)

	for k, v := range map[string]string{"DNSEDGE_SPF_TTL": "soon", "DNSEDGE_RRL_RATE": "many", "DNSEDGE_RESYNC": "5", "RAMPART_ALLOW_DEV_ZONE": "yes"} {
		_, _, err = parseArgs(nil, func(key string) (string, bool) { return v, key == k })
		require.ErrorContains(t, err, k)
	}
	_, _, err = parseArgs([]string{"extra"}, getenv)
	require.ErrorContains(t, err, "unexpected arguments")
}

// The former names of the shared settings still work, each with a
// warning; a former and a current name given different values are refused.
func TestParseArgsFormerNames(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	old := map[string]string{
		"DNSEDGE_ZONE":           "edge.rampartmail.net",
		"DNSEDGE_NS":             "ns1.edge.rampartmail.net=192.0.2.53,ns2.rampartmail.org",
		"DNSEDGE_REPORTS_DOMAIN": "reports.rampartmail.net",
	}
	cfg, opts, err := parseArgs(nil, env(old))
	require.NoError(t, err)
	require.Equal(t, "edge.rampartmail.net", cfg.Zone)
	require.Equal(t, "reports.rampartmail.net", cfg.ReportsDomain)
	require.Len(t, cfg.NameServers, 2)
	require.ElementsMatch(t, []string{
		"DNSEDGE_ZONE is deprecated: set RAMPART_EDGE_ZONE instead (the same for rampart serve and dnsedge)",
		"DNSEDGE_NS is deprecated: set RAMPART_EDGE_NS instead (the same for rampart serve and dnsedge)",
		"DNSEDGE_REPORTS_DOMAIN is deprecated: set RAMPART_REPORTS_DOMAIN instead (the same for rampart serve and dnsedge)",
	}, opts.warnings)

	cfg, opts, err = parseArgs([]string{"-zone", "edge.rampartmail.org", "-ns", "ns1.rampartmail.org", "-reports-domain", "reports.rampartmail.org"}, env(nil))
	require.NoError(t, err)
	require.Equal(t, "edge.rampartmail.org", cfg.Zone)
	require.Equal(t, []dnsedge.NameServer{{Name: "ns1.rampartmail.org"}}, cfg.NameServers)
	require.Equal(t, []string{
		"-zone is deprecated: use -edge-zone instead (the same for rampart serve and dnsedge)",
		"-ns is deprecated: use -edge-ns instead (the same for rampart serve and dnsedge)",
	}, opts.warnings)

	// The same value under both names is no conflict; the flag still wins
	// over the environment.
	cfg, _, err = parseArgs([]string{"-edge-zone", "edge.rampartmail.org", "-zone", "edge.rampartmail.org"},
		env(map[string]string{"RAMPART_EDGE_ZONE": "edge.rampartmail.net", "DNSEDGE_ZONE": "edge.rampartmail.net", "RAMPART_REPORTS_DOMAIN": "reports.rampartmail.net"}))
	require.NoError(t, err)
	require.Equal(t, "edge.rampartmail.org", cfg.Zone)

	_, _, err = parseArgs(nil, env(map[string]string{"RAMPART_EDGE_ZONE": "edge.rampartmail.net", "DNSEDGE_ZONE": "edge.rampartmail.org"}))
	require.EqualError(t, err, `RAMPART_EDGE_ZONE="edge.rampartmail.net" and the deprecated DNSEDGE_ZONE="edge.rampartmail.org" disagree: set only RAMPART_EDGE_ZONE`)
	_, _, err = parseArgs([]string{"-edge-ns", "ns1.rampartmail.net", "-ns", "ns2.rampartmail.net"}, env(map[string]string{"RAMPART_EDGE_ZONE": "edge.rampartmail.net"}))
	require.EqualError(t, err, `-edge-ns="ns1.rampartmail.net" and the deprecated -ns="ns2.rampartmail.net" disagree: give only -edge-ns`)
	// Even when a flag would win: the environment says two things.
	_, _, err = parseArgs([]string{"-reports-domain", "reports.rampartmail.org"},
		env(map[string]string{"RAMPART_REPORTS_DOMAIN": "reports.rampartmail.net", "DNSEDGE_REPORTS_DOMAIN": ""}))
	require.ErrorContains(t, err, "disagree")
}
