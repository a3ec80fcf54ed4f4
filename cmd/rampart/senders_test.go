package main_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/attacktest"
)

// TestSendersRefresh: `rampart senders refresh` resolves the includes of
// the services domains enable, against the database and the configured
// resolver, prints each one's ranges, lookups and error, and exits 1 when
// one failed (its last good ranges kept).
func TestSendersRefresh(t *testing.T) {
	t.Parallel()
	bin, _ := attacktest.Binaries(t)
	env := apitest.Start(t)
	env.DNS.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ip4:149.72.0.0/16 ~all")
	env.DNS.Set("_spf.google.com", "v=spf1 include:_netblocks.google.com ~all")
	env.DNS.Set("_netblocks.google.com", "v=spf1 ip4:64.233.160.0/19 ~all")
	o := env.NewOwner(t, "CLI")
	env.AddVerifiedDomain(t, o, "cli-senders.example.com")
	for _, s := range []string{"sendgrid", "google-workspace"} {
		env.Do(t, o.Token, `mutation { enableSender(domain: "cli-senders.example.com", service: "`+s+`") { name } }`, nil).NoErrors(t)
	}

	refresh := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"senders", "refresh"}, args...)...)
		cmd.Env = []string{"DATABASE_URL=" + env.DatabaseURL, "RAMPART_DNS_RESOLVER=" + env.DNS.Addr,
			"RAMPART_EDGE_ZONE=" + apitest.EdgeZone, "RAMPART_REPORTS_DOMAIN=" + apitest.ReportsDomain}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	ranges := func(slug string) (n int) {
		require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT cardinality(ranges) FROM edge_service WHERE name = $1`, slug).Scan(&n))
		return n
	}

	// The vendor adds a range; the refresh takes it at once, however
	// recently the include was looked up.
	env.DNS.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ip4:149.72.0.0/16 ip4:198.51.100.0/24 ~all")
	out, err := refresh()
	require.NoError(t, err, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	require.Equal(t, []string{"SERVICE", "INCLUDES", "RANGES", "LOOKUPS", "RESOLVED", "ERROR"}, strings.Fields(lines[0]))
	g, sg := strings.Fields(lines[1]), strings.Fields(lines[2])
	require.Equal(t, []string{"google-workspace", "_spf.google.com", "1", "2"}, g[:4], out)
	require.Equal(t, "-", g[5])
	require.Equal(t, []string{"sendgrid", "sendgrid.net", "3", "1"}, sg[:4], out)
	require.Equal(t, 3, ranges("sendgrid"))

	// One include fails: exit 1, the error printed, the last good ranges
	// kept; -service names one.
	env.DNS.Delete("sendgrid.net")
	out, err = refresh("-service", "sendgrid")
	require.Error(t, err, out)
	require.Contains(t, out, "1 of 1 includes failed to resolve")
	require.Regexp(t, `(?m)^sendgrid\s+sendgrid\.net\s+3\s+1\s+\S+\s+.*sendgrid\.net`, out)
	require.Equal(t, 3, ranges("sendgrid"))
}
