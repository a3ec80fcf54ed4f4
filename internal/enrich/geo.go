package enrich

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Geo reads the operator's MaxMind-format (.mmdb) files: one with the
// autonomous system of each network (the layout of GeoLite2-ASN and
// GeoIP2-ISP), one with its country (GeoLite2-Country, GeoIP2-Country,
// GeoIP2-City). Either may be absent. Nothing is downloaded: the operator
// installs and updates the files, and a restart reads the new ones. A Geo
// is safe for concurrent use.
type Geo struct {
	asn, country *maxminddb.Reader
}

// GeoInfo is what the files say about an address; zero values where they
// say nothing.
type GeoInfo struct {
	ASN     int64
	ASOrg   string
	Country string
}

// OpenGeo opens the files at asnPath and countryPath ("" for none). It
// returns nil when both are "", and an error naming the file when one
// cannot be read or is not a MaxMind DB.
func OpenGeo(asnPath, countryPath string) (*Geo, error) {
	if asnPath == "" && countryPath == "" {
		return nil, nil
	}
	g := &Geo{}
	var err error
	if asnPath != "" {
		if g.asn, err = open(asnPath); err != nil {
			return nil, fmt.Errorf("ASN database: %w", err)
		}
	}
	if countryPath != "" {
		if g.country, err = open(countryPath); err != nil {
			_ = g.Close()
			return nil, fmt.Errorf("country database: %w", err)
		}
	}
	return g, nil
}

func open(path string) (*maxminddb.Reader, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return r, nil
}

// Close releases the files.
func (g *Geo) Close() error {
	if g == nil {
		return nil
	}
	var errs []error
	for _, r := range []*maxminddb.Reader{g.asn, g.country} {
		if r != nil {
			errs = append(errs, r.Close())
		}
	}
	return errors.Join(errs...)
}

type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	// The country the network is registered in, for networks without a
	// located country (such as anycast ones).
	Registered struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

// Lookup says what the files hold for ip. A network the files do not list
// yields zero values; an error is a file that could not be decoded there.
func (g *Geo) Lookup(ip netip.Addr) (GeoInfo, error) {
	var info GeoInfo
	if g == nil {
		return info, nil
	}
	ip = ip.Unmap()
	if g.asn != nil && holds(g.asn, ip) {
		var rec asnRecord
		if err := g.asn.Lookup(ip).Decode(&rec); err != nil {
			return info, fmt.Errorf("ASN database at %s: %w", ip, err)
		}
		info.ASN, info.ASOrg = int64(rec.Number), rec.Org
	}
	if g.country != nil && holds(g.country, ip) {
		var rec countryRecord
		if err := g.country.Lookup(ip).Decode(&rec); err != nil {
			return info, fmt.Errorf("country database at %s: %w", ip, err)
		}
		info.Country = rec.Country.ISOCode
		if info.Country == "" {
			info.Country = rec.Registered.ISOCode
		}
	}
	return info, nil
}

// holds reports whether the file can list ip: an IPv4-only file lists no
// IPv6 address (and the library refuses to look one up).
func holds(r *maxminddb.Reader, ip netip.Addr) bool {
	return ip.Is4() || r.Metadata.IPVersion != 4
}
