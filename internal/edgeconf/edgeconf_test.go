package edgeconf_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/edgeconf"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	good := edgeconf.Values{Zone: "edge.rampartmail.net", ReportsDomain: "reports.rampartmail.net"}
	warning, err := good.Check()
	require.NoError(t, err)
	require.Empty(t, warning)
	good.NameServers = "ns1.rampartmail.net=192.0.2.53, ns2.dns-host.org"
	_, err = good.Check()
	require.NoError(t, err)

	// The development defaults, then names under every special-use suffix
	// a stock resolver answers NXDOMAIN for.
	_, err = edgeconf.Values{Zone: edgeconf.DevZone, ReportsDomain: "reports.rampartmail.net"}.Check()
	require.EqualError(t, err, `-edge-zone (RAMPART_EDGE_ZONE) is "edge.rampart.test", the development default: resolvers answer NXDOMAIN under .test, `+
		`so every customer's SPF record including it would be a permerror and their DMARC records would not be found; `+
		`set RAMPART_EDGE_ZONE to a zone delegated to the edge's name servers (or set RAMPART_ALLOW_DEV_ZONE=true for a lab or a test)`)
	_, err = edgeconf.Values{Zone: "edge.rampartmail.net", ReportsDomain: edgeconf.DevReportsDomain}.Check()
	require.ErrorContains(t, err, `-reports-domain (RAMPART_REPORTS_DOMAIN) is "reports.rampart.test", the development default: resolvers answer NXDOMAIN under .test`)
	require.ErrorContains(t, err, "set RAMPART_REPORTS_DOMAIN to the domain receiving DMARC reports")
	for _, name := range []string{"edge.test", "EDGE.Example.", "example", "x.invalid", "localhost", "edge.local", "e.onion", "e.alt", "edge.home.arpa", "edge.example.com", "example.org"} {
		_, err = edgeconf.Values{Zone: name, ReportsDomain: "reports.rampartmail.net"}.Check()
		require.ErrorContains(t, err, "-edge-zone (RAMPART_EDGE_ZONE) is", name)
		_, err = edgeconf.Values{Zone: "edge.rampartmail.net", ReportsDomain: name}.Check()
		require.ErrorContains(t, err, "-reports-domain (RAMPART_REPORTS_DOMAIN) is", name)
	}
	_, err = edgeconf.Values{Zone: "edge.rampartmail.net", ReportsDomain: "reports.rampartmail.net", NameServers: "ns1.rampartmail.net,ns2.lab.local=10.0.0.2"}.Check()
	require.ErrorContains(t, err, `-edge-ns (RAMPART_EDGE_NS) names "ns2.lab.local": resolvers answer NXDOMAIN under .local`)
	// Each name server once; those inside a refused zone go with it.
	_, err = edgeconf.Values{Zone: edgeconf.DevZone, ReportsDomain: "reports.rampartmail.net",
		NameServers: "ns1.edge.rampart.test=192.0.2.1,ns1.edge.rampart.test=192.0.2.2,ns3.lab.test,NS3.lab.test."}.Check()
	require.NotContains(t, err.Error(), "ns1.edge.rampart.test")
	require.Equal(t, 1, strings.Count(err.Error(), `"ns3.lab.test"`), err.Error())
	// Not fooled by a label that merely ends like one.
	for _, name := range []string{"edge.contest", "edge.mytest.net", "example.co", "edge.localhost-mail.net", "notexample.com"} {
		_, err = edgeconf.Values{Zone: name, ReportsDomain: name}.Check()
		require.NoError(t, err, name)
	}

	// Allowed for a lab: a warning instead.
	warning, err = edgeconf.Values{Zone: edgeconf.DevZone, ReportsDomain: edgeconf.DevReportsDomain, AllowDevZone: true}.Check()
	require.NoError(t, err)
	require.Contains(t, warning, "allowed by -allow-dev-zone (RAMPART_ALLOW_DEV_ZONE)")
	require.Contains(t, warning, `"edge.rampart.test"`)
	require.Contains(t, warning, `"reports.rampart.test"`)

	// Missing names are refused even then.
	_, err = edgeconf.Values{ReportsDomain: "reports.rampartmail.net", AllowDevZone: true}.Check()
	require.ErrorContains(t, err, "-edge-zone (RAMPART_EDGE_ZONE) is empty")
	_, err = edgeconf.Values{Zone: "edge.rampartmail.net", AllowDevZone: true}.Check()
	require.ErrorContains(t, err, "-reports-domain (RAMPART_REPORTS_DOMAIN) is empty")
}

// TestStandardLibraryOnly: cmd/dnsedge links this package, which must not
// bring any other code with it.
func TestStandardLibraryOnly(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	for _, d := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(d, "/")
		require.True(t, !strings.Contains(first, ".") || d == "github.com/rampartmail/rampart/internal/edgeconf", "edgeconf depends on %s", d)
	}
}
