package ingest

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rampartmail/rampart/internal/ingest/ingestdb"
)

// The source rollups (report_sources, report_source_dkim; migration 00018)
// of a report are summed in the worker while its records are copied, and
// written once the records are in:
//
//   - a report whose rows can meet no existing row (the first of its
//     reporter for the domain's day in report_sources; the first of anyone
//     for the day in report_source_dkim) COPYs them: no conflict check, no
//     executor per row, the cheapest way in;
//   - otherwise, and for small reports, they are upserted from arrays
//     (INSERT ... SELECT unnest ... ON CONFLICT DO UPDATE).
//
// Finding a row missing and copying it is only safe while no one else can
// add it: each transaction that writes a domain's day of rollups first
// takes a transaction-scoped advisory lock on the day (LockSourceDay),
// held until it commits. Concurrent reports for one day wait for each
// other there; they held the same rows' locks until commit before, so the
// contended case loses nothing.

// sourceDayLockSpace is the first key of the two-key advisory locks on a
// domain's day of rollups ("rsrc").
const sourceDayLockSpace = 0x72737263

// inlineRollup is the most rollup rows a report upserts in the closing
// round trip, without first asking whether any of them exist.
const inlineRollup = 512

// sourceKey is a report_sources row's key within one report (whose domain,
// day and reporter are the same for every row); the strings are indexes
// into the rollup's strs, which keeps the maps of a large report small.
type sourceKey struct {
	ip                                    netip.Addr
	headerFrom, spfDomain, disposition    uint32
	spfPass, dkimPass, spfAligned, dkimAl bool
	forwarded                             bool
}

// dkimKey is a report_source_dkim row's key within one report; sig is a
// dkim_sigs entry ("<d=> <s=> <result>").
type dkimKey struct {
	ip  netip.Addr
	sig uint32
}

// rollup is one report's records summed by the rollups' keys.
type rollup struct {
	sources map[sourceKey]int64
	dkim    map[dkimKey]int64
	strs    []string
	index   map[string]uint32
}

func newRollup() *rollup {
	return &rollup{sources: map[sourceKey]int64{}, dkim: map[dkimKey]int64{}, index: map[string]uint32{}}
}

// str returns the index of s in strs, adding it if new.
func (r *rollup) str(s string) uint32 {
	if i, ok := r.index[s]; ok {
		return i
	}
	i := uint32(len(r.strs)) //nolint:gosec // G115: at most a few per record, and records are bounded far below 2^32
	r.strs = append(r.strs, s)
	r.index[s] = i
	return i
}

// add counts one record: the values as copied into report_records.
func (r *rollup) add(ip netip.Addr, headerFrom, disposition, spf, dkim string, d *derived, count int64) {
	r.sources[sourceKey{ip: ip, headerFrom: r.str(headerFrom), spfDomain: r.str(d.spfDomain), disposition: r.str(disposition),
		spfPass: d.spfPass, dkimPass: d.dkimPass, spfAligned: spf == "pass", dkimAl: dkim == "pass", forwarded: d.forwarded}] += count
	for _, s := range d.sigs {
		r.dkim[dkimKey{ip: ip, sig: r.str(s)}] += count
	}
}

func (r *rollup) rows() int { return len(r.sources) + len(r.dkim) }

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// sourceRow and dkimRow are a rollup row: its key and its messages.
type (
	sourceRow struct {
		sourceKey
		messages int64
	}
	dkimRow struct {
		dkimKey
		messages int64
	}
)

// sourceRows returns the report_sources rows in key order, so that they
// go into the primary key's index in order (which halved PostgreSQL's
// work copying them).
func (r *rollup) sourceRows() []sourceRow {
	keys := make([]sourceRow, 0, len(r.sources))
	for k, n := range r.sources {
		keys = append(keys, sourceRow{k, n})
	}
	str := r.strs
	// Most keys differ in the address: the rest is compared only when it
	// is the same.
	slices.SortFunc(keys, func(a, b sourceRow) int {
		if c := a.ip.Compare(b.ip); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(str[a.headerFrom], str[b.headerFrom]), strings.Compare(str[a.spfDomain], str[b.spfDomain]),
			strings.Compare(str[a.disposition], str[b.disposition]), compareBool(a.spfPass, b.spfPass), compareBool(a.dkimPass, b.dkimPass),
			compareBool(a.spfAligned, b.spfAligned), compareBool(a.dkimAl, b.dkimAl), compareBool(a.forwarded, b.forwarded))
	})
	return keys
}

func (r *rollup) dkimRows() []dkimRow {
	keys := make([]dkimRow, 0, len(r.dkim))
	for k, n := range r.dkim {
		keys = append(keys, dkimRow{k, n})
	}
	slices.SortFunc(keys, func(a, b dkimRow) int {
		return cmp.Or(a.ip.Compare(b.ip), strings.Compare(r.strs[a.sig], r.strs[b.sig]))
	})
	return keys
}

// splitSig splits a dkim_sigs entry into d=, s= and the result.
func splitSig(sig string) (domain, selector, result string) {
	domain, rest, _ := strings.Cut(sig, " ")
	selector, result, _ = strings.Cut(rest, " ")
	return domain, selector, result
}

// sourceDayLock is the second key of the advisory lock on a domain's day.
func sourceDayLock(domain uuid.UUID, day pgtype.Date) int32 {
	h := fnv.New32a()
	_, _ = h.Write(domain[:])
	_, _ = h.Write(binary.BigEndian.AppendUint32(nil, uint32(day.Time.Unix()/86400))) //nolint:gosec // G115: days since 1970 fit
	return int32(h.Sum32())                                                           //nolint:gosec // G115: a hash, any bits will do
}

// lockSourceDays queues the advisory locks on the stored reports' days,
// in key order.
func lockSourceDays(ctx context.Context, q *ingestdb.Queries, stored []result) {
	var keys []int32
	for _, r := range stored {
		if r.rollup != nil && r.rollup.rows() > 0 {
			keys = append(keys, sourceDayLock(r.domain, pgtype.Date{Time: r.day, Valid: true}))
		}
	}
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		_ = q.LockSourceDay(ctx, ingestdb.LockSourceDayParams{Space: sourceDayLockSpace, Key: k})
	}
}

// sourceParams are a report's report_sources rows as AddSources takes
// them (nil when there are none).
func sourceParams(r result, rows []sourceRow) *ingestdb.AddSourcesParams {
	day := pgtype.Date{Time: r.day, Valid: true}
	var sp *ingestdb.AddSourcesParams
	str := r.rollup.strs
	if len(rows) > 0 {
		n := len(rows)
		sp = &ingestdb.AddSourcesParams{DomainID: r.domain, Day: day, Reporter: r.reporter,
			SourceIps: make([]netip.Addr, n), HeaderFroms: make([]string, n), SpfDomains: make([]string, n),
			Dispositions: make([]string, n), SpfPasses: make([]bool, n), DkimPasses: make([]bool, n),
			SpfAligneds: make([]bool, n), DkimAligneds: make([]bool, n), Forwardeds: make([]bool, n), Messages: make([]int64, n)}
		for i, k := range rows {
			sp.SourceIps[i], sp.HeaderFroms[i], sp.SpfDomains[i], sp.Dispositions[i] = k.ip, str[k.headerFrom], str[k.spfDomain], str[k.disposition]
			sp.SpfPasses[i], sp.DkimPasses[i], sp.SpfAligneds[i], sp.DkimAligneds[i] = k.spfPass, k.dkimPass, k.spfAligned, k.dkimAl
			sp.Forwardeds[i], sp.Messages[i] = k.forwarded, k.messages
		}
	}
	return sp
}

// dkimParams are a report's report_source_dkim rows as AddSourceDKIM
// takes them (nil when there are none).
func dkimParams(r result, rows []dkimRow) *ingestdb.AddSourceDKIMParams {
	day := pgtype.Date{Time: r.day, Valid: true}
	var dp *ingestdb.AddSourceDKIMParams
	if len(rows) > 0 {
		n := len(rows)
		dp = &ingestdb.AddSourceDKIMParams{DomainID: r.domain, Day: day, SourceIps: make([]netip.Addr, n),
			DkimDomains: make([]string, n), Selectors: make([]string, n), Results: make([]string, n), Messages: make([]int64, n)}
		for i, k := range rows {
			dp.SourceIps[i] = k.ip
			dp.DkimDomains[i], dp.Selectors[i], dp.Results[i] = splitSig(r.rollup.strs[k.sig])
			dp.Messages[i] = k.messages
		}
	}
	return dp
}

// queueUpserts queues a report's rollups as upserts.
func queueUpserts(ctx context.Context, bt *batch, r result) {
	sp, dp := sourceParams(r, r.rollup.sourceRows()), dkimParams(r, r.rollup.dkimRows())
	qb := ingestdb.New(bt)
	if sp != nil {
		_ = qb.AddSources(ctx, *sp)
		bt.label("add source rollups")
	}
	if dp != nil {
		_ = qb.AddSourceDKIM(ctx, *dp)
		bt.label("add DKIM rollups")
	}
}

var (
	sourceColumns = []string{"domain_id", "day", "source_ip", "reporter", "header_from", "spf_domain", "disposition",
		"spf_pass", "dkim_pass", "spf_aligned", "dkim_aligned", "forwarded", "messages", "reports"}
	dkimColumns = []string{"domain_id", "day", "source_ip", "dkim_domain", "selector", "result", "messages", "reports"}
)

// writeRollups writes a large report's rollups, its day locked: COPY for
// a table where none of its rows can exist yet, an upsert otherwise.
func writeRollups(ctx context.Context, tx pgx.Tx, r result) error {
	if r.rollup.rows() == 0 {
		return nil
	}
	day := pgtype.Date{Time: r.day, Valid: true}
	exist, err := ingestdb.New(tx).SourceRollupsExist(ctx, ingestdb.SourceRollupsExistParams{DomainID: r.domain, Day: day, Reporter: r.reporter})
	if err != nil {
		return fmt.Errorf("look for source rollups: %w", err)
	}
	var bt batch
	qb := ingestdb.New(&bt)
	str := r.rollup.strs
	domainPG := pgtype.UUID{Bytes: r.domain, Valid: true}
	if rows := r.rollup.sourceRows(); exist.Sources {
		if sp := sourceParams(r, rows); sp != nil {
			_ = qb.AddSources(ctx, *sp)
			bt.label("add source rollups")
		}
	} else if len(rows) > 0 {
		row := make([]any, len(sourceColumns))
		row[0], row[1], row[3], row[13] = domainPG, day, r.reporter, int32(1)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"report_sources"}, sourceColumns, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			k := &rows[i]
			row[2], row[4], row[5], row[6] = k.ip, str[k.headerFrom], str[k.spfDomain], str[k.disposition]
			row[7], row[8], row[9], row[10], row[11] = k.spfPass, k.dkimPass, k.spfAligned, k.dkimAl, k.forwarded
			row[12] = k.messages
			return row, nil
		})); err != nil {
			return fmt.Errorf("copy source rollups: %w", err)
		}
	}
	if rows := r.rollup.dkimRows(); exist.Dkim {
		if dp := dkimParams(r, rows); dp != nil {
			_ = qb.AddSourceDKIM(ctx, *dp)
			bt.label("add DKIM rollups")
		}
	} else if len(rows) > 0 {
		row := make([]any, len(dkimColumns))
		row[0], row[1], row[7] = domainPG, day, int32(1)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"report_source_dkim"}, dkimColumns, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			k := &rows[i]
			d, sel, res := splitSig(str[k.sig])
			row[2], row[3], row[4], row[5], row[6] = k.ip, d, sel, res, k.messages
			return row, nil
		})); err != nil {
			return fmt.Errorf("copy DKIM rollups: %w", err)
		}
	}
	if bt.b.Len() > 0 {
		if _, err := bt.send(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}
