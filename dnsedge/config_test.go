package dnsedge

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseNameServers(t *testing.T) {
	t.Parallel()
	got, err := ParseNameServers(" NS1.edge.example.=192.0.2.1, ns1.edge.example=2001:db8::1 ,ns2.other.example,, ")
	require.NoError(t, err)
	require.Equal(t, []NameServer{
		{Name: "ns1.edge.example", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}},
		{Name: "ns2.other.example"},
	}, got)

	_, err = ParseNameServers("ns1.example=not-an-ip")
	require.Error(t, err)
	_, err = ParseNameServers(" , ")
	require.Error(t, err)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	c, s, err := Config{Zone: "Edge.Example.", DatabaseURL: "x"}.validate()
	require.NoError(t, err)
	require.Equal(t, "edge.example", c.Zone)
	require.Equal(t, "edge.example.", s.zone)
	require.Equal(t, []NameServer{{Name: "ns1.edge.example"}, {Name: "ns2.edge.example"}}, c.NameServers)
	require.Equal(t, "hostmaster.edge.example.", s.hostmaster)
	require.Equal(t, uint32(300), s.ttl)
	require.Equal(t, uint32(300), s.negTTL)
	require.Equal(t, DefaultListen, c.Listen)
	require.Equal(t, DefaultResyncInterval, c.ResyncInterval)
	require.Equal(t, uint32(60), s.spfTTL)
	require.Empty(t, s.reportsApex)
	require.Equal(t, DefaultTCPMaxConns, c.TCPMaxConns)
	require.Equal(t, DefaultTCPMaxConnsPerSource, c.TCPMaxConnsPerSource)
	require.Equal(t, DefaultTCPReadTimeout, c.TCPReadTimeout)
	require.Equal(t, DefaultTCPIdleTimeout, c.TCPIdleTimeout)
	require.Equal(t, DefaultRRLRate, c.RRLRate, "rate limiting on by default")
	require.Equal(t, DefaultRRLSlip, c.RRLSlip)

	c, s, err = Config{Zone: "edge.example", DatabaseURL: "x", ReportsDomain: "Reports.Rampart.Example.", SPFTTL: 10 * time.Second, RRLSlip: -1}.validate()
	require.NoError(t, err)
	require.Equal(t, "reports.rampart.example", c.ReportsDomain)
	require.Equal(t, "_report._dmarc.reports.rampart.example.", s.reportsApex)
	require.Equal(t, uint32(10), s.spfTTL)
	require.Equal(t, -1, c.RRLSlip)

	// Rate limiting is off only when asked, with any negative rate.
	for _, rate := range []int{RRLOff, -7} {
		c, _, err = Config{Zone: "edge.example", DatabaseURL: "postgres://edge@db/rampart", RRLRate: rate}.validate()
		require.NoError(t, err)
		require.Equal(t, RRLOff, c.RRLRate)
		e, err := New(c, nil, nil)
		require.NoError(t, err)
		require.Nil(t, e.rrl)
	}
	e, err := New(Config{Zone: "edge.example", DatabaseURL: "postgres://edge@db/rampart"}, nil, nil)
	require.NoError(t, err)
	require.NotNil(t, e.rrl, "on by default")

	_, s, err = Config{Zone: "edge.example", DatabaseURL: "x", Hostmaster: "dns-admin@rampart.example", TTL: time.Hour}.validate()
	require.NoError(t, err)
	require.Equal(t, "dns-admin.rampart.example.", s.hostmaster)
	require.Equal(t, uint32(3600), s.ttl)

	for name, c := range map[string]Config{
		"no database":              {Zone: "edge.example"},
		"no zone":                  {DatabaseURL: "x"},
		"bad zone":                 {Zone: "edge..example", DatabaseURL: "x"},
		"zone with a space":        {Zone: "edge example", DatabaseURL: "x"},
		"address outside zone":     {Zone: "edge.example", DatabaseURL: "x", NameServers: []NameServer{{Name: "ns.other.example", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}}},
		"name server twice":        {Zone: "edge.example", DatabaseURL: "x", NameServers: []NameServer{{Name: "ns.example"}, {Name: "NS.example."}}},
		"hostmaster with dot":      {Zone: "edge.example", DatabaseURL: "x", Hostmaster: "a.b@example.net"},
		"TTL under a second":       {Zone: "edge.example", DatabaseURL: "x", TTL: time.Millisecond},
		"negative negative TTL":    {Zone: "edge.example", DatabaseURL: "x", NegativeTTL: -time.Second},
		"invalid name server addr": {Zone: "edge.example", DatabaseURL: "x", NameServers: []NameServer{{Name: "ns.edge.example", Addrs: []netip.Addr{{}}}}},
		"bad reports domain":       {Zone: "edge.example", DatabaseURL: "x", ReportsDomain: "reports..example"},
		"reports domain in _spf":   {Zone: "edge.example", DatabaseURL: "x", ReportsDomain: "x._spf.edge.example"},
		"SPF TTL under a second":   {Zone: "edge.example", DatabaseURL: "x", SPFTTL: time.Millisecond},
		"negative TCP cap":         {Zone: "edge.example", DatabaseURL: "x", TCPMaxConns: -1},
		"negative per-source cap":  {Zone: "edge.example", DatabaseURL: "x", TCPMaxConnsPerSource: -5},
		"negative idle timeout":    {Zone: "edge.example", DatabaseURL: "x", TCPIdleTimeout: -time.Second},
	} {
		_, _, err := c.validate()
		require.Error(t, err, name)
	}
	_, err = New(Config{Zone: "edge.example", DatabaseURL: "postgres://%zz"}, nil, nil)
	require.ErrorContains(t, err, "DatabaseURL")
}
