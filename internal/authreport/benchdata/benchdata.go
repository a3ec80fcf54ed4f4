// Package benchdata bulk-loads realistic authentication-report data for the
// report's read benchmark (make bench-report) and its small-scale check in
// make test: the raw records (report_records) of many domains over many
// days, and what ingest and the classifier would have made of them (reports,
// report_sources, report_source_dkim, source_classes), written with COPY.
//
// The shape is what DMARC aggregate reports show: per domain a handful of
// sending services with many addresses each (classified by their ranges,
// one by its DKIM d= domain only), the domain's own netblock, forwarders
// (unaligned DKIM passes, or a forwarding reason) and unidentified sources
// (mostly addresses seen once), reported by several reporters; volumes are
// heavy-tailed across domains (a few big ones, many small ones).
//
// Load also returns what it put in, summed in Go ([Expect]), so that a test
// can check the report read back against it.
package benchdata

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/sources"
)

// Config sizes the data.
type Config struct {
	// Domains and Days (ending with End, a UTC day) to fill.
	Domains, Days int
	End           time.Time
	// Records is about how many raw records to write in all.
	Records int64
	// Name is the domains' parent name: d0001.<Name> and on.
	Name string
	// Seed makes the data; the same seed and sizes give the same data.
	Seed uint64
	// Expect sums what is written per domain, day and sender in memory
	// (for small sizes).
	Expect bool
	// Workers is how many connections load at once (default 2).
	Workers int
}

// Domain is a loaded domain.
type Domain struct {
	ID   uuid.UUID
	Name string
}

// Sender is a category and, for a service, its slug.
type Sender struct {
	Category authreport.Category
	Service  string
}

// Expect is what Load wrote, per domain (by index): the stats per day and
// sender, and the messages of each unidentified address.
type Expect struct {
	Days         []map[time.Time]map[Sender]*authreport.Stats
	Unidentified []map[netip.Addr]int64
	// Sources are the distinct addresses per domain and sender.
	Sources []map[Sender]map[netip.Addr]bool
}

// Result is what Load wrote.
type Result struct {
	Domains []Domain
	// Rows written per table.
	Records, Reports, Sources, SourceDKIM, Classes int64
	Expect                                         *Expect
}

// Service is a sending service of the data: slug bench-esp-N.
type Service struct {
	Slug, Name string
	// Range is the service's range (invalid for the one known by its DKIM
	// domain only); DKIMDomain its signing domain.
	Range      netip.Prefix
	DKIMDomain string
}

// Services are the data's sending services, most used first.
func Services() []Service {
	out := make([]Service, 10)
	for i := range out {
		out[i] = Service{Slug: fmt.Sprintf("bench-esp-%d", i+1), Name: fmt.Sprintf("Bench ESP %d", i+1),
			Range:      netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + i), 0, 0}), 16),
			DKIMDomain: fmt.Sprintf("esp%d.bench-mail.example", i+1)}
	}
	// The last is known by its DKIM domain only: its addresses are in
	// no range.
	out[9].Range = netip.Prefix{}
	return out
}

// netblock is a domain's own netblock: 10.a.b.0/24.
func netblock(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24) //nolint:gosec // G115: the low 16 bits of the domain's index, by design
}

var reporters = []struct {
	name string
	p    float64 // how likely it reports a given source on a day
}{
	{"google.com", 0.9}, {"Outlook.com", 0.7}, {"Yahoo", 0.45}, {"comcast.net", 0.2},
	{"Mail.Ru", 0.12}, {"Mimecast", 0.15}, {"GMX", 0.1}, {"Fastmail", 0.05},
}

// Setup inserts the services into sender_services (their ranges as
// resolved), the account's domains (verified) and their netblocks.
func Setup(ctx context.Context, pool *pgxpool.Pool, accountID uuid.UUID, cfg Config) ([]Domain, error) {
	for _, s := range Services() {
		ranges := []netip.Prefix{}
		if s.Range.IsValid() {
			ranges = []netip.Prefix{s.Range}
		}
		if _, err := pool.Exec(ctx, `INSERT INTO sender_services (slug, name, category, resolved_ranges, dkim_domains, resolved_at)
			VALUES ($1, $2, 'marketing', $3, $4, now())
			ON CONFLICT (slug) DO UPDATE SET resolved_ranges = EXCLUDED.resolved_ranges, dkim_domains = EXCLUDED.dkim_domains`,
			s.Slug, s.Name, ranges, []string{s.DKIMDomain}); err != nil {
			return nil, fmt.Errorf("insert service: %w", err)
		}
	}
	names := make([]string, cfg.Domains)
	for i := range names {
		names[i] = fmt.Sprintf("d%04d.%s", i+1, cfg.Name)
	}
	rows, err := pool.Query(ctx, `INSERT INTO domains (account_id, name, verified_at, verified_how, claim_expires_at, check_next_at)
		SELECT $1, n, now(), 'operator', NULL, NULL FROM unnest($2::text[]) WITH ORDINALITY AS t (n, i) ORDER BY i RETURNING id, name`, accountID, names)
	if err != nil {
		return nil, fmt.Errorf("insert domains: %w", err)
	}
	ds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Domain])
	if err != nil {
		return nil, fmt.Errorf("insert domains: %w", err)
	}
	slices.SortFunc(ds, func(a, b Domain) int { return cmpString(a.Name, b.Name) })
	ids := make([]uuid.UUID, len(ds))
	nets := make([]netip.Prefix, len(ds))
	for i, d := range ds {
		ids[i], nets[i] = d.ID, netblock(i)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO domain_netblocks (domain_id, cidr, label)
		SELECT unnest($1::uuid[]), unnest($2::cidr[]), 'offices'`, ids, nets); err != nil {
		return nil, fmt.Errorf("insert netblocks: %w", err)
	}
	return ds, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Load sets up the account's domains (see [Setup]) and writes their data.
// The report_sources and report_source_dkim rows queue their days for the
// classifier (classify_days), as ingest's would; the classes written are the
// ones the classifier gives.
func Load(ctx context.Context, pool *pgxpool.Pool, accountID uuid.UUID, cfg Config) (*Result, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	ds, err := Setup(ctx, pool, accountID, cfg)
	if err != nil {
		return nil, err
	}
	res := &Result{Domains: ds}
	if cfg.Expect {
		res.Expect = &Expect{
			Days:         make([]map[time.Time]map[Sender]*authreport.Stats, len(ds)),
			Unidentified: make([]map[netip.Addr]int64, len(ds)),
			Sources:      make([]map[Sender]map[netip.Addr]bool, len(ds)),
		}
	}
	// Heavy-tailed volumes: the domain of rank r (by a shuffle) gets a
	// share of the records proportional to 1/r.
	weights := make([]float64, len(ds))
	rank := rand.New(rand.NewPCG(cfg.Seed, 1)).Perm(len(ds)) //nolint:gosec // G404: synthetic data, reproducible by seed
	total := 0.0
	for i := range ds {
		weights[i] = 1 / float64(rank[i]+1)
		total += weights[i]
	}
	var partitions []time.Time
	for d := 0; d < cfg.Days; d++ {
		m := monthOf(cfg.End.AddDate(0, 0, -d))
		if !slices.Contains(partitions, m) {
			partitions = append(partitions, m)
		}
	}
	for _, m := range partitions {
		if _, err := pool.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS report_records_y%04dm%02d PARTITION OF report_records FOR VALUES FROM ('%s') TO ('%s')",
			m.Year(), int(m.Month()), m.Format(time.DateOnly), m.AddDate(0, 1, 0).Format(time.DateOnly))); err != nil {
			return nil, fmt.Errorf("create partition: %w", err)
		}
	}

	work := make(chan int)
	errs := make(chan error, cfg.Workers)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() {
			for i := range work {
				perDay := float64(cfg.Records) * weights[i] / total / float64(cfg.Days)
				g := newDomainGen(cfg, i, ds[i], perDay, res.Expect != nil)
				n, err := g.load(ctx, pool)
				if err != nil {
					errs <- fmt.Errorf("load %s: %w", ds[i].Name, err)
					for range work { //nolint:revive // drain
					}
					return
				}
				mu.Lock()
				res.Records += n.Records
				res.Reports += n.Reports
				res.Sources += n.Sources
				res.SourceDKIM += n.SourceDKIM
				res.Classes += n.Classes
				if res.Expect != nil {
					res.Expect.Days[i], res.Expect.Unidentified[i], res.Expect.Sources[i] = g.days, g.unidentified, g.sources
				}
				mu.Unlock()
			}
		})
	}
	for i := range ds {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return res, nil
}

func monthOf(day time.Time) time.Time {
	return time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// source is an address of a domain and what it sends as.
type source struct {
	ip       netip.Addr
	sender   Sender
	services Service // for a service
	fwd      int     // for a forwarder: which one
}

// domainGen generates one domain's data.
type domainGen struct {
	cfg    Config
	idx    int
	dom    Domain
	perDay float64
	rng    *rand.Rand
	// The domain's sources by category.
	internal, forwarders, recurring []source
	services                        [][]source // per service the domain uses
	svcShare                        []float64

	expect       bool
	days         map[time.Time]map[Sender]*authreport.Stats
	unidentified map[netip.Addr]int64
	sources      map[Sender]map[netip.Addr]bool
}

func newDomainGen(cfg Config, i int, d Domain, perDay float64, expect bool) *domainGen {
	g := &domainGen{cfg: cfg, idx: i, dom: d, perDay: perDay, expect: expect,
		rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)+2))} //nolint:gosec // G404: synthetic data, reproducible by seed
	if expect {
		g.days = map[time.Time]map[Sender]*authreport.Stats{}
		g.unidentified = map[netip.Addr]int64{}
		g.sources = map[Sender]map[netip.Addr]bool{}
	}
	// Bigger domains send from more addresses.
	scale := 1 + int(math.Sqrt(perDay))
	nb := netblock(i).Addr().As4()
	for k := range 1 + g.rng.IntN(4) {
		a := nb
		a[3] = byte(10 + k)
		g.internal = append(g.internal, source{ip: netip.AddrFrom4(a), sender: Sender{Category: authreport.Internal}})
	}
	all := Services()
	nsvc := 1 + g.rng.IntN(5)
	for _, k := range g.rng.Perm(len(all))[:nsvc] {
		s := all[k]
		var pool []source
		for range 2 + g.rng.IntN(2*scale) {
			var ip netip.Addr
			if s.Range.IsValid() {
				ip = netip.AddrFrom4([4]byte{100, byte(64 + k), byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))}) //nolint:gosec // G115: k < 10, and the rest below 256
			} else {
				ip = netip.AddrFrom4([4]byte{185, 200, byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))}) //nolint:gosec // G115: below 256
			}
			pool = append(pool, source{ip: ip, sender: Sender{Category: authreport.Service, Service: s.Slug}, services: s})
		}
		g.services = append(g.services, pool)
		g.svcShare = append(g.svcShare, 1/float64(len(g.services)))
	}
	for range 1 + g.rng.IntN(3) {
		f := g.rng.IntN(20)
		g.forwarders = append(g.forwarders, source{ip: netip.AddrFrom4([4]byte{172, 16, byte(f), byte(1 + g.rng.IntN(20))}), //nolint:gosec // G115: below 256
			sender: Sender{Category: authreport.Forwarded}, fwd: f})
	}
	for range 1 + g.rng.IntN(1+scale/2) {
		g.recurring = append(g.recurring, source{ip: g.randomIP(), sender: Sender{Category: authreport.Unidentified}})
	}
	return g
}

// randomIP is an address outside every range, netblock and forwarder:
// 45.0.0.0/8, or 2001:db8::/32 now and then.
func (g *domainGen) randomIP() netip.Addr {
	if g.rng.IntN(10) == 0 {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], 0x20010db8_00000000|uint64(g.rng.Uint32()))
		binary.BigEndian.PutUint64(b[8:], g.rng.Uint64())
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{45, byte(g.rng.IntN(256)), byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))}) //nolint:gosec // G115: below 256
}

// pick chooses a day's source: services send most of the mail.
func (g *domainGen) pick() source {
	switch x := g.rng.Float64(); {
	case x < 0.55:
		pool := g.services[zipf(g.rng, len(g.services))]
		return pool[g.rng.IntN(len(pool))]
	case x < 0.70:
		return g.internal[g.rng.IntN(len(g.internal))]
	case x < 0.80:
		return g.forwarders[g.rng.IntN(len(g.forwarders))]
	case x < 0.86:
		return g.recurring[g.rng.IntN(len(g.recurring))]
	}
	return source{ip: g.randomIP(), sender: Sender{Category: authreport.Unidentified}}
}

// zipf picks 0..n-1, the first most often.
func zipf(rng *rand.Rand, n int) int {
	total := 0.0
	for i := range n {
		total += 1 / float64(i+1)
	}
	x := rng.Float64() * total
	for i := range n {
		x -= 1 / float64(i+1)
		if x < 0 {
			return i
		}
	}
	return n - 1
}

// record is one raw record and what ingest derives from it.
type record struct {
	ip                           netip.Addr
	count                        int64
	disposition, dkim, spf       string
	reasons                      *string
	headerFrom, envFrom          string
	dkimResults, spfResults      *string
	spfDomain                    string
	spfPass, dkimPass, forwarded bool
	sigs                         []string
	spfAligned, dkimAligned      bool
	sigParts                     [][3]string
}

// outcome makes a record for a source.
func (g *domainGen) outcome(s source) record {
	d := g.dom.Name
	r := record{ip: s.ip, headerFrom: d, disposition: "none"}
	if g.rng.IntN(20) == 0 {
		r.headerFrom = "mail." + d
	}
	var spfResult string
	switch s.sender.Category {
	case authreport.Internal:
		r.count = 1 + int64(g.rng.ExpFloat64()*40)
		r.spfDomain, spfResult = d, "pass"
		r.sigParts = [][3]string{{d, "k1", "pass"}}
		if g.rng.IntN(25) == 0 {
			r.sigParts[0][2] = "fail"
		}
	case authreport.Service:
		r.count = 1 + int64(g.rng.ExpFloat64()*120)
		r.spfDomain, spfResult = "bounces."+s.services.DKIMDomain, "pass"
		r.sigParts = [][3]string{{s.services.DKIMDomain, "s1", "pass"}}
		if g.rng.IntN(5) != 0 { // set up: signs aligned too
			r.sigParts = append(r.sigParts, [3]string{d, "s1", "pass"})
		} else if g.rng.IntN(3) == 0 {
			r.disposition = "quarantine"
		}
	case authreport.Forwarded:
		r.count = 1 + int64(g.rng.ExpFloat64()*8)
		fd := fmt.Sprintf("lists%d.forward.example", s.fwd)
		r.spfDomain, spfResult = fd, "pass"
		if g.rng.IntN(3) == 0 {
			r.reasons = ptr(`[{"type":"forwarded"}]`)
			r.forwarded = true
			r.sigParts = [][3]string{{d, "k1", "fail"}}
			spfResult = "fail"
		} else {
			r.sigParts = [][3]string{{d, "k1", "fail"}, {fd, "fw", "pass"}}
		}
	default:
		r.count = 1 + int64(g.rng.ExpFloat64()*3)
		r.spfDomain, spfResult = "spoof.example", []string{"fail", "softfail", "none"}[g.rng.IntN(3)]
		if g.rng.IntN(3) == 0 {
			r.sigParts = [][3]string{{"spoof.example", "x", "fail"}}
		}
		r.disposition = []string{"none", "quarantine", "reject"}[g.rng.IntN(3)]
	}
	r.envFrom = r.spfDomain
	r.spfPass = spfResult == "pass"
	// Aligned (relaxed): the SPF domain or d= is the From domain's
	// organisational domain or below it.
	r.spfAligned = r.spfPass && (r.spfDomain == d)
	for _, p := range r.sigParts {
		if p[2] == "pass" {
			r.dkimPass = true
			if p[0] == d {
				r.dkimAligned = true
			}
		}
	}
	r.spf, r.dkim = pf(r.spfAligned), pf(r.dkimAligned)
	if r.dkimAligned || r.spfAligned {
		r.disposition = "none"
	}
	spf := fmt.Sprintf(`[{"domain":%q,"scope":"mfrom","result":%q}]`, r.spfDomain, spfResult)
	r.spfResults = &spf
	if len(r.sigParts) > 0 {
		b := []byte{'['}
		for k, p := range r.sigParts {
			if k > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, `{"domain":%q,"selector":%q,"result":%q}`, p[0], p[1], p[2])
			r.sigs = append(r.sigs, p[0]+" "+p[1]+" "+p[2])
		}
		b = append(b, ']')
		s := string(b)
		r.dkimResults = &s
	}
	return r
}

func pf(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

func ptr[T any](v T) *T { return &v }

// Row counts of a load.
type counts struct{ Records, Reports, Sources, SourceDKIM, Classes int64 }

type sourceKey struct {
	day                                                   time.Time
	ip                                                    netip.Addr
	reporter, headerFrom, spfDomain, disposition          string
	spfPass, dkimPass, spfAligned, dkimAligned, forwarded bool
}

type dkimKey struct {
	day                      time.Time
	ip                       netip.Addr
	domain, selector, result string
}

type classKey struct {
	day time.Time
	ip  netip.Addr
}

// agg sums a rollup row: reports counts the reports that added to it.
type agg struct {
	messages int64
	reports  int32
	last     *rep
}

func (a *agg) add(rp *rep, n int64) {
	a.messages += n
	if a.last != rp {
		a.reports++
		a.last = rp
	}
}

// rep is a report being written.
type rep struct {
	id       uuid.UUID
	day      time.Time
	reporter string
	records  int32
	messages int64
}

// load writes the domain's days: its raw records by COPY as they are made,
// then its rollups and classes.
func (g *domainGen) load(ctx context.Context, pool *pgxpool.Pool) (counts, error) {
	var n counts
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return n, err
	}
	defer conn.Release()
	srcs := map[sourceKey]*agg{}
	sigs := map[dkimKey]*agg{}
	classes := map[classKey]source{}
	var reports []*rep

	// One day's reports at a time, their records streamed to COPY as
	// they are made.
	type item struct {
		r  record
		rp *rep
		s  source
	}
	var todo []item
	dayIdx := 0
	nextDay := func() bool {
		for ; dayIdx < g.cfg.Days; dayIdx++ {
			day := g.cfg.End.AddDate(0, 0, -dayIdx)
			// The day's volume varies by a fifth either way, and
			// weekends have 60% of a weekday's (the mean stays perDay).
			want := g.perDay * (0.8 + 0.4*g.rng.Float64()) * 7 / 6.2
			if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
				want *= 0.6
			}
			recs := int(want)
			if g.rng.Float64() < want-float64(recs) {
				recs++
			}
			if recs == 0 {
				continue
			}
			// Each source is reported by some of the reporters, each
			// in its report of the day.
			byReporter := make([][]item, len(reporters))
			for emitted := 0; emitted < recs; {
				s := g.pick()
				reported := false
				for k, rp := range reporters {
					if g.rng.Float64() >= rp.p && (reported || k < len(reporters)-1) {
						continue
					}
					reported = true
					byReporter[k] = append(byReporter[k], item{r: g.outcome(s), s: s})
					emitted++
				}
			}
			todo = todo[:0]
			for k := range reporters {
				if len(byReporter[k]) == 0 {
					continue
				}
				rp := &rep{id: uuid.New(), day: day, reporter: reporters[k].name}
				reports = append(reports, rp)
				for _, it := range byReporter[k] {
					it.rp = rp
					todo = append(todo, it)
				}
			}
			dayIdx++
			return true
		}
		return false
	}
	pos := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		for pos >= len(todo) {
			pos = 0
			if !nextDay() {
				return nil, nil
			}
		}
		it := todo[pos]
		pos++
		r, rp := it.r, it.rp
		rp.records++
		rp.messages += r.count
		n.Records++
		classes[classKey{rp.day, r.ip}] = it.s
		g.account(rp, r, it.s, srcs, sigs)
		var sigsVal any
		if len(r.sigs) > 0 {
			sigsVal = r.sigs
		}
		return []any{rp.id, rp.records, g.dom.ID, rp.day, r.ip, r.count, r.disposition, r.dkim, r.spf, r.reasons,
			r.headerFrom, r.envFrom, "", r.dkimResults, r.spfResults, r.spfDomain, r.spfPass, r.dkimPass, r.forwarded, sigsVal}, nil
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"report_records"}, []string{
		"report_id", "seq", "domain_id", "day", "source_ip", "count",
		"disposition", "dkim", "spf", "reasons",
		"header_from", "envelope_from", "envelope_to", "dkim_results", "spf_results",
		"spf_domain", "spf_pass", "dkim_pass", "forwarded", "dkim_sigs",
	}, src); err != nil {
		return n, fmt.Errorf("copy records: %w", err)
	}

	// Reports, then the rollups and classes.
	rows := make([][]any, 0, len(reports))
	for _, rp := range reports {
		begin := rp.day
		rows = append(rows, []any{rp.id, g.dom.ID, rp.reporter, rp.reporter, "report-" + rp.id.String()[:8] + "-" + strconv.Itoa(g.idx),
			g.dom.Name, begin, begin.Add(24*time.Hour - time.Second), rp.day, "reject", rp.records, rp.messages, begin.Add(26 * time.Hour)})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"reports"}, []string{"id", "domain_id", "org_name", "reporter", "report_id",
		"policy_domain", "begin_at", "end_at", "day", "policy_p", "record_count", "message_count", "received_at"}, pgx.CopyFromRows(rows)); err != nil {
		return n, fmt.Errorf("copy reports: %w", err)
	}
	n.Reports = int64(len(rows))
	rows = rows[:0]
	for k, a := range srcs {
		rows = append(rows, []any{g.dom.ID, k.day, k.ip, k.reporter, k.headerFrom, k.spfDomain, k.disposition,
			k.spfPass, k.dkimPass, k.spfAligned, k.dkimAligned, k.forwarded, a.messages, a.reports})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"report_sources"}, []string{"domain_id", "day", "source_ip", "reporter", "header_from",
		"spf_domain", "disposition", "spf_pass", "dkim_pass", "spf_aligned", "dkim_aligned", "forwarded", "messages", "reports"},
		pgx.CopyFromRows(rows)); err != nil {
		return n, fmt.Errorf("copy report_sources: %w", err)
	}
	n.Sources = int64(len(rows))
	rows = rows[:0]
	for k, a := range sigs {
		rows = append(rows, []any{g.dom.ID, k.day, k.ip, k.domain, k.selector, k.result, a.messages, a.reports})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"report_source_dkim"}, []string{"domain_id", "day", "source_ip", "dkim_domain",
		"selector", "result", "messages", "reports"}, pgx.CopyFromRows(rows)); err != nil {
		return n, fmt.Errorf("copy report_source_dkim: %w", err)
	}
	n.SourceDKIM = int64(len(rows))
	rows = rows[:0]
	for k, s := range classes {
		rows = append(rows, []any{g.dom.ID, k.day, k.ip, string(s.sender.Category), s.sender.Service, evidence(s)})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"source_classes"}, []string{"domain_id", "day", "source_ip", "class", "service", "evidence"},
		pgx.CopyFromRows(rows)); err != nil {
		return n, fmt.Errorf("copy source_classes: %w", err)
	}
	n.Classes = int64(len(rows))
	return n, nil
}

func evidence(s source) string {
	switch s.sender.Category {
	case authreport.Internal:
		return "in the domain's netblock"
	case authreport.Service:
		return "in " + s.sender.Service + "'s range"
	case authreport.Forwarded:
		return "mail passed through another party"
	}
	return "in no netblock or known range, with no known DKIM domain or host name"
}

// account adds a record to the rollups and, when asked, to the sums
// expected.
func (g *domainGen) account(rp *rep, r record, s source, srcs map[sourceKey]*agg, sigs map[dkimKey]*agg) {
	day, reporter := rp.day, rp.reporter
	k := sourceKey{day: day, ip: r.ip, reporter: reporter, headerFrom: r.headerFrom, spfDomain: r.spfDomain, disposition: r.disposition,
		spfPass: r.spfPass, dkimPass: r.dkimPass, spfAligned: r.spfAligned, dkimAligned: r.dkimAligned, forwarded: r.forwarded}
	a := srcs[k]
	if a == nil {
		a = &agg{}
		srcs[k] = a
	}
	a.add(rp, r.count)
	for _, p := range r.sigParts {
		dk := dkimKey{day: day, ip: r.ip, domain: p[0], selector: p[1], result: p[2]}
		a := sigs[dk]
		if a == nil {
			a = &agg{}
			sigs[dk] = a
		}
		a.add(rp, r.count)
	}
	if !g.expect {
		return
	}
	byS := g.days[day]
	if byS == nil {
		byS = map[Sender]*authreport.Stats{}
		g.days[day] = byS
	}
	st := byS[s.sender]
	if st == nil {
		st = &authreport.Stats{Reporters: []string{}}
		byS[s.sender] = st
	}
	st.Messages += r.count
	if r.spfAligned || r.dkimAligned {
		st.DMARCPass += r.count
	}
	if r.spfPass {
		st.SPFPass += r.count
	}
	if r.spfAligned {
		st.SPFAligned += r.count
	}
	if r.dkimPass {
		st.DKIMPass += r.count
	}
	if r.dkimAligned {
		st.DKIMAligned += r.count
	}
	switch r.disposition {
	case "none":
		st.None += r.count
	case "quarantine":
		st.Quarantine += r.count
	case "reject":
		st.Reject += r.count
	}
	if i, found := slices.BinarySearch(st.Reporters, reporter); !found {
		st.Reporters = slices.Insert(st.Reporters, i, reporter)
	}
	if s.sender.Category == authreport.Unidentified {
		g.unidentified[r.ip] += r.count
	}
	if g.sources[s.sender] == nil {
		g.sources[s.sender] = map[netip.Addr]bool{}
	}
	g.sources[s.sender][r.ip] = true
}

// Summarize builds the report's summaries of every day loaded, as the
// classifier leaves them once it has classified the days: the domains'
// (report_daily) with their sketches of addresses, then the accounts'
// (account_daily). The caller has emptied the classification queues.
func Summarize(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `SELECT report_summarize((SELECT array_agg(id) FROM domains), '-infinity', 'infinity')`); err != nil {
		return fmt.Errorf("summarise: %w", err)
	}
	if _, err := sources.FillSketches(ctx, pool); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO account_days (account_id, day)
		SELECT DISTINCT d.account_id, r.day FROM report_daily r JOIN domains d ON d.id = r.domain_id
		ON CONFLICT (account_id, day) DO UPDATE SET queued_at = clock_timestamp()`); err != nil {
		return fmt.Errorf("queue the account days: %w", err)
	}
	run, err := sources.NewClassifier(pool, false, slog.New(slog.DiscardHandler)).Run(ctx, time.Time{})
	if err != nil {
		return fmt.Errorf("summarise accounts: %w", err)
	}
	if run.Days > 0 {
		return fmt.Errorf("summarise accounts: %d days were still queued for classification", run.Days)
	}
	return nil
}
