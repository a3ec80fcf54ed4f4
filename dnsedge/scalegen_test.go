package dnsedge

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// The generated data set: hosted domains the size of a large installation,
// each with 3 netblocks, 5 enabled sender services out of a pool of 20, 3
// DKIM keys of a 2048-bit RSA key's size, DMARC and _nspf records, and BIMI
// for every fourth. Every value is a function of the domain's number, so
// that a test can tell what any domain answers without keeping the rows.

// genSenderRanges is the number of ranges of each service of the pool, as
// such services publish them: a large mailbox provider resolves to 10-20
// prefixes, a few bulk senders to dozens.
var genSenderRanges = [20]int{18, 12, 10, 16, 8, 14, 6, 20, 6, 40, 12, 4, 16, 30, 60, 24, 8, 6, 4, 10}

// genServicesPerDomain is how many services every generated domain enables.
const genServicesPerDomain = 5

// genService is service k of the pool.
func genService(k int) (name string, ranges []netip.Prefix, helo []string, include string) {
	name = fmt.Sprintf("sender%02d", k)
	n := genSenderRanges[k]
	for j := range n {
		if j%3 == 2 {
			// 2001:db8:1kk:j::/64
			var a [16]byte
			binary.BigEndian.PutUint32(a[:], 0x20010db8)
			binary.BigEndian.PutUint16(a[4:], uint16(0x100+k))
			binary.BigEndian.PutUint16(a[6:], uint16(j))
			ranges = append(ranges, netip.PrefixFrom(netip.AddrFrom16(a), 64))
			continue
		}
		// 100.(64+k).j.0/24, inside 100.64.0.0/10 and clear of every
		// generated netblock.
		ranges = append(ranges, netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + k), byte(j), 0}), 24))
	}
	helo = []string{name + ".example", "out." + name + "-mail.example"}
	return name, ranges, helo, "_spf." + name + ".example"
}

// genServiceIP is an address inside service k's ranges (IPv6 when v6).
func genServiceIP(k int, v6 bool) netip.Addr {
	_, ranges, _, _ := genService(k)
	for _, p := range ranges {
		if p.Addr().Is6() == v6 {
			return p.Addr().Next()
		}
	}
	panic("no range of that family")
}

// genDomainServices is the services domain i enables: 5 distinct ones.
func genDomainServices(i int) []int {
	out := make([]int, genServicesPerDomain)
	for k := range out {
		out[k] = (i + 4*k) % len(genSenderRanges)
	}
	return out
}

// genRow is one generated edge_domain row, in the forms the columns take.
type genRow struct {
	name      string
	mode      string
	dmarc     string
	netblocks []netip.Prefix
	services  []string
	nspf      string
	dkim      []byte // JSON
	bimi      string
}

// genDomainName is the name of domain i.
func genDomainName(i int) string { return fmt.Sprintf("d%06d.example", i) }

// genNetblocks are domain i's netblocks: an IPv4 /26 in 10.0.0.0/8, an
// IPv4 /30 in 172.16.0.0/12 and an IPv6 /64 in fd00::/8, distinct for
// every i below 2^18.
func genNetblocks(i int) []netip.Prefix {
	var a, b [4]byte
	binary.BigEndian.PutUint32(a[:], 10<<24|uint32(i)<<6)
	binary.BigEndian.PutUint32(b[:], 172<<24|16<<16|uint32(i)<<2)
	var c [16]byte
	c[0] = 0xfd
	binary.BigEndian.PutUint32(c[4:], uint32(i))
	return []netip.Prefix{
		netip.PrefixFrom(netip.AddrFrom4(a), 26),
		netip.PrefixFrom(netip.AddrFrom4(b), 30),
		netip.PrefixFrom(netip.AddrFrom16(c), 64),
	}
}

// genSelectors are the DKIM selectors of every generated domain.
var genSelectors = [3]string{"s2025a", "s2025b", "google"}

// genDKIMKey is the key of selector k of domain i: "v=DKIM1; k=rsa; p="
// and 392 characters of base64, the size of a 2048-bit RSA public key.
func genDKIMKey(i, k int) string {
	r := rand.New(rand.NewPCG(uint64(i), uint64(k)))
	b := make([]byte, 294) // a 2048-bit key's SubjectPublicKeyInfo
	for j := 0; j < len(b); j += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(b[j:], w[:])
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(b)
}

// genBIMI is domain i's BIMI record, or "" (withheld) for three in four.
func genBIMI(i int) string {
	if i%4 != 0 {
		return ""
	}
	name := genDomainName(i)
	return "v=BIMI1; l=https://" + name + "/bimi/logo.svg; a=https://" + name + "/bimi/vmc.pem"
}

// genBlocked reports whether domain i is blocked: one in fifty.
func genBlocked(i int) bool { return i%50 == 49 }

// genDMARC is domain i's DMARC record; version v makes changed ones.
func genDMARC(i, v int) string {
	policy := [3]string{"none", "quarantine", "reject"}[i%3]
	s := fmt.Sprintf("v=DMARC1; p=%s; rua=mailto:%s@reports.rampart.test; adkim=r; aspf=r", policy, genDomainName(i))
	if v > 0 {
		s += fmt.Sprintf("; pct=%d; v=%d", 1+v%100, v)
	}
	return s
}

// genDomain is domain i's row at version v (0 for the bulk load).
func genDomain(i, v int) genRow {
	r := genRow{name: genDomainName(i), mode: "sending", dmarc: genDMARC(i, v), netblocks: genNetblocks(i), bimi: genBIMI(i)}
	if genBlocked(i) {
		r.mode = modeBlocked
	}
	for _, k := range genDomainServices(i) {
		r.services = append(r.services, fmt.Sprintf("sender%02d", k))
	}
	var nspf strings.Builder
	nspf.WriteString("v=spf1")
	for _, p := range r.netblocks {
		if p.Addr().Is4() {
			nspf.WriteString(" ip4:")
		} else {
			nspf.WriteString(" ip6:")
		}
		nspf.WriteString(p.String())
	}
	nspf.WriteString(" -all")
	r.nspf = nspf.String()
	dkim := []byte{'['}
	for k, sel := range genSelectors {
		if k > 0 {
			dkim = append(dkim, ", "...)
		}
		// Neither the selector nor the key needs escaping in JSON.
		dkim = fmt.Appendf(dkim, `{"selector": %q, "txt": %q}`, sel, genDKIMKey(i, k))
	}
	r.dkim = append(dkim, ']')
	return r
}

// genLoad writes the 20 services and n generated domains to the edge tables,
// the domains with one COPY, and returns the highest serial. It notifies
// nothing: it is meant for a database no edge follows yet.
func genLoad(t testing.TB, pool *pgxpool.Pool, n int) int64 {
	t.Helper()
	ctx := context.Background()
	for k := range genSenderRanges {
		name, ranges, helo, include := genService(k)
		_, err := pool.Exec(ctx, `
			INSERT INTO edge_service (name, serial, ranges, helo_suffixes, includes)
			VALUES ($1, nextval('edge_serial_seq'), $2, $3, $4)`, name, ranges, helo, []string{include})
		require.NoError(t, err)
	}
	if n == 0 {
		var last int64
		require.NoError(t, pool.QueryRow(ctx, "SELECT last_value FROM edge_serial_seq").Scan(&last))
		return last
	}
	// Serials first..first+n-1, taken from the sequence at once.
	var last int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT setval('edge_serial_seq', nextval('edge_serial_seq') + $1 - 1)", n).Scan(&last))
	first := last - int64(n) + 1
	i := 0
	copied, err := pool.CopyFrom(ctx, pgx.Identifier{"edge_domain"},
		[]string{"name", "serial", "mode", "dmarc", "netblocks", "services", "nspf", "dkim", "bimi"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			r := genDomain(i, 0)
			i++
			return []any{r.name, first + int64(i-1), r.mode, r.dmarc, r.netblocks, r.services, r.nspf, r.dkim, r.bimi}, nil
		}))
	require.NoError(t, err)
	require.EqualValues(t, n, copied)
	_, err = pool.Exec(ctx, "ANALYZE edge_domain")
	require.NoError(t, err)
	return last
}

// putGenDomain writes domain i at version v the way the API does, an upsert
// with a new serial and NOTIFY in one transaction, and returns the serial.
func putGenDomain(ctx context.Context, pool *pgxpool.Pool, i, v int) (int64, error) {
	r := genDomain(i, v)
	var serial int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
			INSERT INTO edge_domain (name, serial, mode, dmarc, netblocks, services, nspf, dkim, bimi)
			VALUES ($1, nextval('edge_serial_seq'), $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (name) DO UPDATE
			SET serial = excluded.serial, mode = excluded.mode, dmarc = excluded.dmarc,
			    netblocks = excluded.netblocks, services = excluded.services, nspf = excluded.nspf,
			    dkim = excluded.dkim, bimi = excluded.bimi, deleted = false, updated_at = now()
			RETURNING serial`,
			r.name, r.mode, r.dmarc, r.netblocks, r.services, r.nspf, r.dkim, r.bimi).Scan(&serial); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify('rampart_edge', $1::bigint::text)", serial)
		return err
	})
	return serial, err
}

// TestGenerator checks that generated rows are what the edge accepts and
// that the bulk load stores them as the API would.
func TestGenerator(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	last := genLoad(t, db.pool, 100)
	rows, srows := genRows(100)
	ix, errs := buildIndex(last, rows, srows)
	require.Empty(t, errs)
	require.Equal(t, 100, ix.numDomains())
	require.Equal(t, len(genSenderRanges), ix.numServices())
	d, ok := ix.domains.get(genDomainName(7))
	require.True(t, ok)
	require.Len(t, d.selectors, 3)
	require.Len(t, d.selectors["google"].txt, 2, "a 2048-bit key takes two character-strings")
	require.Len(t, d.netblocks, 3)
	require.Len(t, d.services, genServicesPerDomain)

	// The stored rows are the generated ones.
	ctx := context.Background()
	var (
		dmarc, nspf, bimi string
		dkim              []byte
		netblocks         []netip.Prefix
		services          []string
	)
	require.NoError(t, db.pool.QueryRow(ctx, `SELECT dmarc, nspf, bimi, dkim, netblocks, services FROM edge_domain WHERE name = $1`,
		genDomainName(8)).Scan(&dmarc, &nspf, &bimi, &dkim, &netblocks, &services))
	want := genDomain(8, 0)
	require.Equal(t, want.dmarc, dmarc)
	require.Equal(t, want.nspf, nspf)
	require.Equal(t, want.bimi, bimi)
	require.JSONEq(t, string(want.dkim), string(dkim))
	require.Equal(t, want.netblocks, netblocks)
	require.Equal(t, want.services, services)
}

// genRows is the generated data set as index rows, for tests and
// benchmarks without a database.
func genRows(n int) ([]row, []serviceRow) {
	services := make([]serviceRow, len(genSenderRanges))
	for k := range services {
		name, ranges, helo, include := genService(k)
		services[k] = serviceRow{name: name, serial: int64(k + 1), ranges: ranges, heloSuffixes: helo, includes: []string{include}}
	}
	rows := make([]row, n)
	for i := range rows {
		g := genDomain(i, 0)
		rows[i] = row{name: g.name, serial: int64(len(services) + i + 1), mode: g.mode, dmarc: g.dmarc,
			netblocks: g.netblocks, services: g.services, nspf: g.nspf, dkim: string(g.dkim), bimi: g.bimi}
	}
	return rows, services
}

// genQueries asks about domain i for every kind of answer its records give:
// DMARC at both names, _nspf, SPF hits in its netblocks and its services'
// ranges (IPv4 and IPv6), a HELO match, a miss, every DKIM key, a selector
// that does not exist, BIMI, the report authorisation and a zone's SOA.
func genQueries(i int) []*dns.Msg {
	name := genDomainName(i)
	nets := genNetblocks(i)
	svc := genDomainServices(i)
	spf := func(ip netip.Addr, helo string) *dns.Msg {
		return question(spfName(ip.String(), helo, name), dns.TypeTXT, 1232)
	}
	qs := []*dns.Msg{
		question("_dmarc."+name+".", dns.TypeTXT, 1232),
		question(name+"._dmarc."+testZone+".", dns.TypeTXT, 0),
		question(name+"._nspf."+testZone+".", dns.TypeTXT, 1232),
		spf(nets[0].Addr().Next(), "mx."+name),
		spf(nets[2].Addr().Next(), "mx."+name),
		spf(genServiceIP(svc[1], false), "mx.example.net"),
		spf(genServiceIP(svc[2], true), "mx.example.net"),
		spf(netip.MustParseAddr("192.0.2.1"), fmt.Sprintf("mta7.sender%02d.example", svc[3])),
		spf(netip.MustParseAddr("192.0.2.1"), "mx.example.net"),
		question("nope._domainkey."+name+".", dns.TypeTXT, 1232),
		question("default._bimi."+name+".", dns.TypeTXT, 1232),
		question(name+"._report._dmarc.reports.rampart.test.", dns.TypeTXT, 1232),
		question("_domainkey."+name+".", dns.TypeSOA, 1232),
	}
	for _, sel := range genSelectors {
		qs = append(qs, question(sel+"._domainkey."+name+".", dns.TypeTXT, 1232))
	}
	return qs
}

// askUDP sends m over UDP, once more when a datagram is lost.
func askUDP(addr net.Addr, m *dns.Msg) (*dns.Msg, error) {
	var err error
	for range 3 {
		var r *dns.Msg
		if r, _, err = tryExchangeUDP(addr, m, 2*time.Second); err == nil {
			return r, nil
		}
	}
	return nil, err
}

// askAll asks every question over UDP and returns the replies.
func askAll(t testing.TB, addr net.Addr, qs []*dns.Msg) []*dns.Msg {
	t.Helper()
	out := make([]*dns.Msg, len(qs))
	for i, q := range qs {
		r, err := askUDP(addr, q)
		require.NoError(t, err, q.Question[0].String())
		out[i] = r
	}
	return out
}

// wire is a reply as sent, with its ID cleared: two edges serving the same
// snapshot give the same bytes.
func wire(t testing.TB, m *dns.Msg) string {
	t.Helper()
	c := m.Copy()
	c.Id = 0
	b, err := c.Pack()
	require.NoError(t, err)
	return string(b)
}

// requireSameReplies checks two lists of replies to the same questions for
// identical bytes (IDs aside) and that none is SERVFAIL.
func requireSameReplies(t testing.TB, qs, want, got []*dns.Msg) {
	t.Helper()
	for i, q := range qs {
		require.NotEqual(t, dns.RcodeServerFailure, want[i].Rcode, q.Question[0].String())
		require.NotEqual(t, dns.RcodeServerFailure, got[i].Rcode, q.Question[0].String())
		if wire(t, want[i]) != wire(t, got[i]) {
			require.Equal(t, want[i].String(), got[i].String(), q.Question[0].String())
			t.Fatalf("%s: replies differ in bytes", q.Question[0].String())
		}
	}
}

// requireGenAnswers checks the answers of domain i's questions (genQueries)
// against what was generated for it at version v.
func requireGenAnswers(t testing.TB, i, v int, replies []*dns.Msg) {
	t.Helper()
	txt := func(r *dns.Msg) string {
		var parts []string
		for _, rr := range r.Answer {
			if tx, ok := rr.(*dns.TXT); ok {
				parts = append(parts, strings.Join(tx.Txt, ""))
			}
		}
		return strings.Join(parts, " | ")
	}
	g := genDomain(i, v)
	nets := genNetblocks(i)
	svc := genDomainServices(i)
	spfHit := func(a netip.Addr) string {
		if genBlocked(i) {
			return "v=spf1 -all"
		}
		if a.Is4() {
			return "v=spf1 ip4:" + a.String() + " -all"
		}
		return "v=spf1 ip6:" + a.String() + " -all"
	}
	spfOther := func(s string) string {
		if genBlocked(i) {
			return "v=spf1 -all"
		}
		return s
	}
	want := []string{
		g.dmarc, g.dmarc, g.nspf,
		spfHit(nets[0].Addr().Next()),
		spfHit(nets[2].Addr().Next()),
		spfHit(genServiceIP(svc[1], false)),
		spfHit(genServiceIP(svc[2], true)),
		spfOther(fmt.Sprintf("v=spf1 include:_spf.sender%02d.example -all", svc[3])),
		spfOther("v=spf1 ~all"),
		"", g.bimi, "v=DMARC1", "",
	}
	if genBlocked(i) {
		want[2] = "v=spf1 -all"
		want[9] = "v=DKIM1; p=" // every selector of a blocked domain
	}
	for k := range genSelectors {
		key := genDKIMKey(i, k)
		if genBlocked(i) {
			key = "v=DKIM1; p="
		}
		want = append(want, key)
	}
	require.Len(t, replies, len(want))
	for k, r := range replies {
		require.Equal(t, want[k], txt(r), "domain %d, question %s", i, r.Question[0].String())
	}
}
