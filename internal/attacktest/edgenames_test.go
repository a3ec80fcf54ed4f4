package attacktest_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
	"github.com/rampartmail/rampart/internal/edgeconf"
)

// Real-looking names: outside every special-use suffix, so that serve and
// dnsedge start on them without RAMPART_ALLOW_DEV_ZONE. Nothing resolves
// them: the tests ask the edge directly.
const (
	prodZone    = "edge.rampartmail.net"
	prodReports = "reports.rampartmail.net"
)

// exitOf runs a built binary with exactly env (and PATH) and returns its
// exit status and standard error.
func exitOf(t *testing.T, bin string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Dir = t.TempDir()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stderr.String()
	}
	require.NoError(t, err)
	return 0, stderr.String()
}

// TestDevEdgeNamesRefused: `rampart serve` and dnsedge refuse to start on
// the development defaults, or on any edge zone or reports domain under a
// special-use suffix that resolvers answer NXDOMAIN for, naming the setting
// and what to set, before they connect to anything; the former dnsedge
// names are checked the same, and a former and a current name with
// different values are refused.
func TestDevEdgeNamesRefused(t *testing.T) {
	t.Parallel()
	rampart, edge := attacktest.Binaries(t)
	// A database nobody listens on: a binary getting past the check would
	// fail on it instead, with another message.
	noDB := "DATABASE_URL=postgres://127.0.0.1:1/none?connect_timeout=1"
	for _, b := range []struct {
		name string
		bin  string
		args []string
	}{
		{"rampart serve", rampart, []string{"serve"}},
		{"dnsedge", edge, nil},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			prefix := strings.Fields(b.name)[0] + ": "
			for _, tc := range []struct {
				env  []string
				args []string
				want string
			}{
				// The defaults.
				{nil, nil, `-edge-zone (RAMPART_EDGE_ZONE) is "edge.rampart.test", the development default: resolvers answer NXDOMAIN under .test, ` +
					`so every customer's SPF record including it would be a permerror and their DMARC records would not be found; ` +
					`set RAMPART_EDGE_ZONE to a zone delegated to the edge's name servers; ` +
					`-reports-domain (RAMPART_REPORTS_DOMAIN) is "reports.rampart.test", the development default: resolvers answer NXDOMAIN under .test, ` +
					`so no report sent to an address at it would arrive; set RAMPART_REPORTS_DOMAIN to the domain receiving DMARC reports ` +
					`(or set RAMPART_ALLOW_DEV_ZONE=true for a lab or a test)`},
				{[]string{"RAMPART_EDGE_ZONE=" + prodZone}, nil, `-reports-domain (RAMPART_REPORTS_DOMAIN) is "reports.rampart.test", the development default`},
				{[]string{"RAMPART_REPORTS_DOMAIN=" + prodReports}, []string{"-edge-zone", "edge.lab.example"}, `-edge-zone (RAMPART_EDGE_ZONE) is "edge.lab.example": resolvers answer NXDOMAIN under .example`},
				{[]string{"RAMPART_EDGE_ZONE=edge.invalid", "RAMPART_REPORTS_DOMAIN=" + prodReports}, nil, `under .invalid`},
				{[]string{"RAMPART_EDGE_ZONE=" + prodZone, "RAMPART_REPORTS_DOMAIN=reports.localhost"}, nil, `under .localhost`},
				{[]string{"RAMPART_EDGE_ZONE=" + prodZone, "RAMPART_REPORTS_DOMAIN=" + prodReports, "RAMPART_EDGE_NS=ns1.lab.local"}, nil, `-edge-ns (RAMPART_EDGE_NS) names "ns1.lab.local"`},
				{[]string{"RAMPART_EDGE_ZONE=" + prodZone, "RAMPART_REPORTS_DOMAIN="}, nil, "-reports-domain (RAMPART_REPORTS_DOMAIN) is empty"},
				{[]string{"RAMPART_EDGE_ZONE=" + prodZone, "RAMPART_REPORTS_DOMAIN=" + prodReports, "RAMPART_ALLOW_DEV_ZONE=yes"}, nil,
					`RAMPART_ALLOW_DEV_ZONE: invalid boolean value "yes" for -allow-dev-zone: want true or false`},
			} {
				code, stderr := exitOf(t, b.bin, append([]string{noDB}, tc.env...), append(b.args, tc.args...)...)
				require.Equal(t, 1, code, "%v %v: %s", tc.env, tc.args, stderr)
				require.Contains(t, stderr, prefix+"", "%v %v", tc.env, tc.args)
				require.Contains(t, lastLine(stderr), tc.want, "%v %v", tc.env, tc.args)
				require.NotContains(t, stderr, "127.0.0.1:1", "refused before connecting")
			}
		})
	}

	// dnsedge's former names: a development name under them is refused
	// too, and a conflict between a former and a current name.
	code, stderr := exitOf(t, edge, []string{noDB, "DNSEDGE_ZONE=edge.rampart.test", "RAMPART_REPORTS_DOMAIN=" + prodReports})
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, `-edge-zone (RAMPART_EDGE_ZONE) is "edge.rampart.test", the development default`)
	code, stderr = exitOf(t, edge, []string{noDB, "RAMPART_EDGE_ZONE=" + prodZone, "DNSEDGE_ZONE=edge.rampartmail.org", "RAMPART_REPORTS_DOMAIN=" + prodReports})
	require.Equal(t, 1, code, stderr)
	require.Equal(t, `dnsedge: RAMPART_EDGE_ZONE="edge.rampartmail.net" and the deprecated DNSEDGE_ZONE="edge.rampartmail.org" disagree: set only RAMPART_EDGE_ZONE`, lastLine(stderr))
	code, stderr = exitOf(t, edge, []string{noDB, "RAMPART_REPORTS_DOMAIN=" + prodReports}, "-edge-zone", prodZone, "-zone", "edge.rampartmail.org")
	require.Equal(t, 1, code, stderr)
	require.Equal(t, `dnsedge: -edge-zone="edge.rampartmail.net" and the deprecated -zone="edge.rampartmail.org" disagree: give only -edge-zone`, lastLine(stderr))

	// Past the check, on real-looking names, both get as far as the
	// database.
	code, stderr = exitOf(t, rampart, []string{noDB, "RAMPART_EDGE_ZONE=" + prodZone, "RAMPART_REPORTS_DOMAIN=" + prodReports}, "serve")
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "rampart: connect to PostgreSQL")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// startEdgeWith runs the dnsedge binary with exactly env (plus a loopback
// listener and no snapshot file or metrics) and waits until it serves.
func startEdgeWith(t *testing.T, env map[string]string) *attacktest.Edge {
	t.Helper()
	_, bin := attacktest.Binaries(t)
	env["DNSEDGE_LISTEN"] = "127.0.0.1:0"
	env["DNSEDGE_SNAPSHOT"] = filepath.Join(t.TempDir(), "edge.snapshot")
	env["DNSEDGE_METRICS"] = ""
	env["DNSEDGE_LOG_FORMAT"] = "json"
	p := attacktest.Start(t, "dnsedge", bin, env)
	addr := p.LogField(t, "dnsedge serving", "udp", 60*time.Second)
	return &attacktest.Edge{Proc: p, Addr: addr}
}

// reportAuthorization asks the edge for the external report authorization
// record of RFC 7489 §7.1 that receivers look up before sending a domain's
// reports to an address at the reports domain.
func reportAuthorization(t *testing.T, e *attacktest.Edge, domain, reports string) {
	t.Helper()
	waitAnswer(t, e.Addr, domain+"._report._dmarc."+reports, dns.TypeTXT, dns.RcodeSuccess, []string{"v=DMARC1"})
}

// TestServeAndEdgePairAgree: `rampart serve` and dnsedge started from one
// environment, with one name per setting, agree: the rua address serve
// puts in a domain's DMARC record is at the reports domain whose report
// authorization records the edge serves, and the edge serves the domain's
// record in the zone serve tells the customer to point at. On real-looking
// names neither needs RAMPART_ALLOW_DEV_ZONE; with the defaults and
// RAMPART_ALLOW_DEV_ZONE (a lab) the pair agrees too; dnsedge's former
// names still work, with a warning.
func TestServeAndEdgePairAgree(t *testing.T) {
	t.Parallel()
	const domain = "pair-customer.com"

	t.Run("one environment", func(t *testing.T) {
		t.Parallel()
		shared := map[string]string{
			"RAMPART_EDGE_ZONE":      prodZone,
			"RAMPART_REPORTS_DOMAIN": prodReports,
			"RAMPART_EDGE_NS":        "ns1." + prodZone + "=192.0.2.53,ns2.dns-host.org",
		}
		s := attacktest.StartServe(t, attacktest.ServeOptions{Env: shared, Unset: []string{"RAMPART_ALLOW_DEV_ZONE"}})
		require.Empty(t, grep(s.Lines(), "development names"))
		o := s.API.NewOwner(t, "pair")
		s.API.AddVerifiedDomain(t, o, domain)
		record := dmarcOf(t, s, o.Token, domain)
		require.Contains(t, record, "@"+prodReports, record)

		env := map[string]string{"DATABASE_URL": s.DatabaseURL}
		for k, v := range shared {
			env[k] = v
		}
		e := startEdgeWith(t, env)
		require.Empty(t, grep(e.Lines(), `"level":"WARN"`))
		reportAuthorization(t, e, domain, prodReports)
		code, got := ask(t, e.Addr, domain+"._dmarc."+prodZone, dns.TypeTXT)
		require.Equal(t, dns.RcodeSuccess, code)
		require.Equal(t, []string{record}, got)
		code, got = ask(t, e.Addr, prodZone, dns.TypeNS)
		require.Equal(t, dns.RcodeSuccess, code)
		require.Len(t, got, 2)
		require.Contains(t, got[0]+got[1], "ns2.dns-host.org.")

		// The same settings under dnsedge's former names: served alike,
		// with a warning per name.
		old := startEdgeWith(t, map[string]string{
			"DATABASE_URL":           s.DatabaseURL,
			"DNSEDGE_ZONE":           prodZone,
			"DNSEDGE_REPORTS_DOMAIN": prodReports,
			"DNSEDGE_NS":             shared["RAMPART_EDGE_NS"],
		})
		for _, name := range []string{"DNSEDGE_ZONE", "DNSEDGE_REPORTS_DOMAIN", "DNSEDGE_NS"} {
			require.Len(t, grep(old.Lines(), name+" is deprecated"), 1, name)
		}
		reportAuthorization(t, old, domain, prodReports)
	})

	t.Run("defaults in a lab", func(t *testing.T) {
		t.Parallel()
		s := attacktest.StartServe(t, attacktest.ServeOptions{Unset: []string{"RAMPART_EDGE_ZONE", "RAMPART_REPORTS_DOMAIN"}})
		s.WaitLog(t, "allowed by -allow-dev-zone (RAMPART_ALLOW_DEV_ZONE)", 10*time.Second)
		o := s.API.NewOwner(t, "lab")
		s.API.AddVerifiedDomain(t, o, domain)
		require.Contains(t, dmarcOf(t, s, o.Token, domain), "@"+edgeconf.DevReportsDomain)

		e := startEdgeWith(t, map[string]string{"DATABASE_URL": s.DatabaseURL, "RAMPART_ALLOW_DEV_ZONE": "true"})
		e.WaitLog(t, "allowed by -allow-dev-zone (RAMPART_ALLOW_DEV_ZONE)", 10*time.Second)
		reportAuthorization(t, e, domain, edgeconf.DevReportsDomain)
		code, _ := ask(t, e.Addr, domain+"._dmarc."+edgeconf.DevZone, dns.TypeTXT)
		require.Equal(t, dns.RcodeSuccess, code)
	})
}

// grep returns the lines containing substr.
func grep(lines []string, substr string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}
