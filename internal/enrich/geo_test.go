package enrich_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/enrich"
)

// writeMMDB writes a MaxMind DB of databaseType mapping each network to
// its record, in the layout of MaxMind's own files.
func writeMMDB(t *testing.T, databaseType string, ipVersion int, records map[string]mmdbtype.Map) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: databaseType, IPVersion: ipVersion, RecordSize: 24,
		IncludeReservedNetworks: true})
	require.NoError(t, err)
	for cidr, rec := range records {
		_, network, err := net.ParseCIDR(cidr)
		require.NoError(t, err)
		require.NoError(t, tree.Insert(network, rec))
	}
	path := filepath.Join(t.TempDir(), databaseType+".mmdb")
	f, err := os.Create(path)
	require.NoError(t, err)
	_, err = tree.WriteTo(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return path
}

func asnRecord(n uint32, org string) mmdbtype.Map {
	return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(n), "autonomous_system_organization": mmdbtype.String(org)}
}

func countryRecord(iso string) mmdbtype.Map {
	return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso), "names": mmdbtype.Map{"en": mmdbtype.String(iso)}}}
}

func geoFiles(t *testing.T) (asn, country string) {
	asn = writeMMDB(t, "GeoLite2-ASN", 6, map[string]mmdbtype.Map{
		"192.0.2.0/24":    asnRecord(64500, "Example Mail Co"),
		"2001:db8::/32":   asnRecord(64501, "Example Six"),
		"198.51.100.0/24": asnRecord(64502, "Other Net"),
	})
	country = writeMMDB(t, "GeoLite2-Country", 6, map[string]mmdbtype.Map{
		"192.0.2.0/25":  countryRecord("DE"),
		"2001:db8::/48": countryRecord("NL"),
		// Only the registered country, as for an anycast network.
		"198.51.100.0/24": {"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("US")}},
	})
	return asn, country
}

// TestGeo reads ASN and country for IPv4 and IPv6 addresses from files
// laid out as MaxMind's.
func TestGeo(t *testing.T) {
	t.Parallel()
	asn, country := geoFiles(t)
	g, err := enrich.OpenGeo(asn, country)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, g.Close()) })

	for ip, want := range map[string]enrich.GeoInfo{
		"192.0.2.10":        {ASN: 64500, ASOrg: "Example Mail Co", Country: "DE"},
		"::ffff:192.0.2.10": {ASN: 64500, ASOrg: "Example Mail Co", Country: "DE"},
		"192.0.2.200":       {ASN: 64500, ASOrg: "Example Mail Co"},
		"2001:db8::25":      {ASN: 64501, ASOrg: "Example Six", Country: "NL"},
		"2001:db8:1::25":    {ASN: 64501, ASOrg: "Example Six"},
		"198.51.100.7":      {ASN: 64502, ASOrg: "Other Net", Country: "US"},
		"203.0.113.1":       {},
		"2001:db9::1":       {},
	} {
		got, err := g.Lookup(netip.MustParseAddr(ip))
		require.NoError(t, err, ip)
		require.Equal(t, want, got, ip)
	}

	// One file alone; none at all is no Geo.
	only, err := enrich.OpenGeo("", country)
	require.NoError(t, err)
	got, err := only.Lookup(netip.MustParseAddr("2001:db8::25"))
	require.NoError(t, err)
	require.Equal(t, enrich.GeoInfo{Country: "NL"}, got)
	require.NoError(t, only.Close())
	none, err := enrich.OpenGeo("", "")
	require.NoError(t, err)
	require.Nil(t, none)

	// An IPv4-only file lists no IPv6 address.
	v4 := writeMMDB(t, "GeoLite2-ASN", 4, map[string]mmdbtype.Map{"192.0.2.0/24": asnRecord(64500, "Example Mail Co")})
	g4, err := enrich.OpenGeo(v4, "")
	require.NoError(t, err)
	got, err = g4.Lookup(netip.MustParseAddr("2001:db8::25"))
	require.NoError(t, err)
	require.Zero(t, got)
	got, err = g4.Lookup(netip.MustParseAddr("192.0.2.1"))
	require.NoError(t, err)
	require.Equal(t, int64(64500), got.ASN)
	require.NoError(t, g4.Close())
}

// TestGeoFileErrors: a missing file or one that is no MaxMind DB is an
// error that names it.
func TestGeoFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := enrich.OpenGeo(filepath.Join(dir, "missing.mmdb"), "")
	require.ErrorContains(t, err, "ASN database")
	require.ErrorContains(t, err, "missing.mmdb")

	junk := filepath.Join(dir, "junk.mmdb")
	require.NoError(t, os.WriteFile(junk, []byte("not a database"), 0o600))
	asn, _ := geoFiles(t)
	_, err = enrich.OpenGeo(asn, junk)
	require.ErrorContains(t, err, "country database")
	require.ErrorContains(t, err, "junk.mmdb")
}

// TestRunGeo: a run fills ASN and country with the reverse DNS, and with
// no resolver fills them alone.
func TestRunGeo(t *testing.T) {
	t.Parallel()
	s := startServer(t,
		reverse(t, "192.0.2.1")+" 60 IN PTR mail.good.test.",
		"mail.good.test. 60 IN A 192.0.2.1")
	asn, country := geoFiles(t)
	g, err := enrich.OpenGeo(asn, country)
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	f := newFixture(t)
	e, _ := f.setup(t, s, enrich.Config{Geo: g})
	f.report(t, start, "192.0.2.1", "2001:db8::1")
	run(t, e)
	v4 := f.get(t, e, "192.0.2.1")
	require.Equal(t, "mail.good.test", v4.PTR)
	require.True(t, v4.Confirmed)
	require.Equal(t, int64(64500), v4.ASN)
	require.Equal(t, "Example Mail Co", v4.ASOrg)
	require.Equal(t, "DE", v4.Country)
	v6 := f.get(t, e, "2001:db8::1")
	require.Equal(t, enrich.None, v6.Outcome)
	require.Equal(t, int64(64501), v6.ASN)
	require.Equal(t, "NL", v6.Country)

	// Without a resolver: geography alone, no outcome, no query.
	f2 := newFixture(t)
	sent := s.queries()
	e2 := enrich.New(f2.pool, enrich.Config{Geo: g}, log)
	f2.report(t, time.Now(), "198.51.100.7")
	st, err := e2.Run(context.Background(), time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, st.LookedUp)
	info := f2.get(t, e2, "198.51.100.7")
	require.Equal(t, enrich.Outcome(""), info.Outcome)
	require.Equal(t, "US", info.Country)
	require.Equal(t, sent, s.queries())
}
