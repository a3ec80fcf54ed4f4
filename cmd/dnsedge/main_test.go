package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/dnsedge"
)

func TestParseArgs(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":                     "postgres://edge@db/rampart",
		"DNSEDGE_ZONE":                     "edge.example",
		"DNSEDGE_REPORTS_DOMAIN":           "reports.example",
		"DNSEDGE_SPF_TTL":                  "30s",
		"DNSEDGE_TCP_MAX_CONNS":            "10",
		"DNSEDGE_TCP_MAX_CONNS_PER_SOURCE": "3",
		"DNSEDGE_TCP_READ_TIMEOUT":         "2s",
		"DNSEDGE_RRL_RATE":                 "20",
		"DNSEDGE_NS":                       "ns1.edge.example=192.0.2.53",
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, logOpts, err := parseArgs([]string{"-tcp-idle-timeout", "20s", "-rrl-slip", "-1", "-log-format", "json"}, getenv)
	require.NoError(t, err)
	require.Equal(t, "postgres://edge@db/rampart", cfg.DatabaseURL)
	require.Equal(t, "edge.example", cfg.Zone)
	require.Equal(t, "reports.example", cfg.ReportsDomain)
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

	// Defaults with an empty environment.
	cfg, _, err = parseArgs(nil, func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	require.Equal(t, dnsedge.DefaultTCPMaxConns, cfg.TCPMaxConns)
	require.Equal(t, dnsedge.DefaultRRLSlip, cfg.RRLSlip)
	require.Equal(t, dnsedge.DefaultSPFTTL, cfg.SPFTTL)
	require.Empty(t, cfg.ReportsDomain)
	require.Equal(t, dnsedge.DefaultRRLRate, cfg.RRLRate, "rate limiting on by default")

	// 0 turns it off, from the flag or the environment.
	cfg, _, err = parseArgs([]string{"-rrl-rate", "0"}, func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	require.Equal(t, dnsedge.RRLOff, cfg.RRLRate)
	cfg, _, err = parseArgs(nil, func(k string) (string, bool) { return "0", k == "DNSEDGE_RRL_RATE" })
	require.NoError(t, err)
	require.Equal(t, dnsedge.RRLOff, cfg.RRLRate)

	for k, v := range map[string]string{"DNSEDGE_SPF_TTL": "soon", "DNSEDGE_RRL_RATE": "many", "DNSEDGE_RESYNC": "5"} {
		_, _, err = parseArgs(nil, func(key string) (string, bool) { return v, key == k })
		require.ErrorContains(t, err, k)
	}
	_, _, err = parseArgs([]string{"extra"}, getenv)
	require.ErrorContains(t, err, "unexpected arguments")
}
