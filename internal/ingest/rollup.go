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
	"github.com/rampartmail/rampart/internal/pgcopy"
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
// into the rollup's strs, which keeps the rows of a large report small.
type sourceKey struct {
	ip                                    netip.Addr
	headerFrom, spfDomain, disposition    uint32
	spfPass, dkimPass, spfAligned, dkimAl bool
	forwarded                             bool
}

// dkimKey is a report_source_dkim row's key within one report: a
// signature's d=, s= and result, as in dkim_sigs.
type dkimKey struct {
	ip                       netip.Addr
	domain, selector, result uint32
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

// rollup is one report's records summed by the rollups' keys. Each record
// appends its rows; every so often (merge) the rows appended since the last
// time are sorted by key and merged into the sorted rows before, rows of
// the same key summed, and finish does it for the last. That costs less
// than a map of a large report's keys, the rows come out in the order they
// are copied in (see mergeSources), and most of the sorting is done while
// PostgreSQL is still busy with the records.
type rollup struct {
	sources []sourceRow
	dkim    []dkimRow
	// sourcesMerged and dkimMerged are how many rows the last merge left:
	// those before are sorted and summed.
	sourcesMerged, dkimMerged int
	sourcesTmp                []sourceRow
	dkimTmp                   []dkimRow
	strs                      []string
	index                     map[string]uint32
}

// minMerge is the fewest new rows a merge takes; a merge also waits for a
// quarter as many as were merged, which bounds the work of merging to a
// few passes over the rows.
const minMerge = 1 << 14

func due(rows, merged int) bool { return rows-merged >= max(merged/4, minMerge) }

func newRollup() *rollup {
	return &rollup{index: map[string]uint32{}}
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
	r.sources = append(r.sources, sourceRow{sourceKey{ip: ip, headerFrom: r.str(headerFrom), spfDomain: r.str(d.spfDomain), disposition: r.str(disposition),
		spfPass: d.spfPass, dkimPass: d.dkimPass, spfAligned: spf == "pass", dkimAl: dkim == "pass", forwarded: d.forwarded}, count})
	if due(len(r.sources), r.sourcesMerged) {
		r.mergeSources()
	}
	for _, s := range d.sigs {
		r.dkim = append(r.dkim, dkimRow{dkimKey{ip: ip, domain: r.str(s.domain), selector: r.str(s.selector), result: r.str(s.result)}, count})
	}
	if due(len(r.dkim), r.dkimMerged) {
		r.mergeDKIM()
	}
}

// finish sorts and sums the last rows: rows, sourceRows and dkimRows are
// then the report's.
func (r *rollup) finish() {
	if len(r.sources) > r.sourcesMerged {
		r.mergeSources()
	}
	if len(r.dkim) > r.dkimMerged {
		r.mergeDKIM()
	}
	// The merges' spare buffers, as large as the rows, are done with.
	r.sourcesTmp, r.dkimTmp = nil, nil
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

// mergeSources merges the new report_sources rows, in key order so that
// they go into the primary key's index in order (which halved
// PostgreSQL's work copying them).
func (r *rollup) mergeSources() {
	str := r.strs
	r.sources, r.sourcesTmp = sortMerge(r.sources, r.sourcesMerged, r.sourcesTmp, func(a, b sourceRow) int {
		// Most keys differ in the address: the rest is compared only
		// when it is the same.
		if c := a.ip.Compare(b.ip); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(str[a.headerFrom], str[b.headerFrom]), strings.Compare(str[a.spfDomain], str[b.spfDomain]),
			strings.Compare(str[a.disposition], str[b.disposition]), compareBool(a.spfPass, b.spfPass), compareBool(a.dkimPass, b.dkimPass),
			compareBool(a.spfAligned, b.spfAligned), compareBool(a.dkimAl, b.dkimAl), compareBool(a.forwarded, b.forwarded))
	}, func(a, b *sourceRow) { a.messages += b.messages })
	r.sourcesMerged = len(r.sources)
}

func (r *rollup) mergeDKIM() {
	str := r.strs
	r.dkim, r.dkimTmp = sortMerge(r.dkim, r.dkimMerged, r.dkimTmp, func(a, b dkimRow) int {
		if c := a.ip.Compare(b.ip); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(str[a.domain], str[b.domain]), strings.Compare(str[a.selector], str[b.selector]),
			strings.Compare(str[a.result], str[b.result]))
	}, func(a, b *dkimRow) { a.messages += b.messages })
	r.dkimMerged = len(r.dkim)
}

// sortMerge sorts rows[merged:], then merges them into rows[:merged]
// (sorted, no key twice), summing the rows whose keys compare equal. It
// returns the merged rows and a buffer for the next call (tmp's, reused).
func sortMerge[T any](rows []T, merged int, tmp []T, compare func(a, b T) int, sum func(into, from *T)) (out, spare []T) {
	tail := rows[merged:]
	slices.SortFunc(tail, compare)
	// Sum the new rows of a key.
	w := 0
	for i := 1; i < len(tail); i++ {
		if compare(tail[w], tail[i]) == 0 {
			sum(&tail[w], &tail[i])
			continue
		}
		w++
		tail[w] = tail[i]
	}
	if len(tail) > 0 {
		tail = tail[:w+1]
	}
	if merged == 0 {
		return rows[:len(tail)], tmp
	}
	head := rows[:merged]
	out = slices.Grow(tmp[:0], len(head)+len(tail))
	i, j := 0, 0
	for i < len(head) && j < len(tail) {
		switch c := compare(head[i], tail[j]); {
		case c < 0:
			out = append(out, head[i])
			i++
		case c > 0:
			out = append(out, tail[j])
			j++
		default:
			out = append(out, head[i])
			sum(&out[len(out)-1], &tail[j])
			i++
			j++
		}
	}
	out = append(out, head[i:]...)
	out = append(out, tail[j:]...)
	return out, rows[:0]
}

// sourceRows returns the report_sources rows in key order; finish must
// have been called.
func (r *rollup) sourceRows() []sourceRow { return r.sources }

// dkimRows returns the report_source_dkim rows in key order; finish must
// have been called.
func (r *rollup) dkimRows() []dkimRow { return r.dkim }

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
			dp.DkimDomains[i], dp.Selectors[i], dp.Results[i] = r.rollup.strs[k.domain], r.rollup.strs[k.selector], r.rollup.strs[k.result]
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
// a table where none of its rows can exist yet, an upsert otherwise. When
// the day had no rollups in either table, and a classifier is set, the
// report's are the day's: its sources are classified meanwhile
// (classify.go), and the classification returned is to be finished once
// tx has committed or failed.
func (in *ingester) writeRollups(ctx context.Context, tx pgx.Tx, r result) (c *newDayClassification, err error) {
	if r.rollup.rows() == 0 {
		return nil, nil
	}
	day := pgtype.Date{Time: r.day, Valid: true}
	exist, err := ingestdb.New(tx).SourceRollupsExist(ctx, ingestdb.SourceRollupsExistParams{DomainID: r.domain, Day: day, Reporter: r.reporter})
	if err != nil {
		return nil, fmt.Errorf("look for source rollups: %w", err)
	}
	if in.classifier != nil && !exist.DaySources && !exist.Dkim {
		c = in.classifyNewDay(ctx, tx, r)
		defer func() {
			if err == nil {
				err = c.afterRollups(ctx, tx)
			}
		}()
	}
	var bt batch
	qb := ingestdb.New(&bt)
	str := r.rollup.strs
	if rows := r.rollup.sourceRows(); exist.Sources {
		if sp := sourceParams(r, rows); sp != nil {
			_ = qb.AddSources(ctx, *sp)
			bt.label("add source rollups")
		}
	} else if len(rows) > 0 {
		i := 0
		if _, err := pgcopy.Rows(ctx, tx, "report_sources", sourceColumns, func(b []byte) ([]byte, bool, error) {
			if i == len(rows) {
				return b, false, nil
			}
			k := &rows[i]
			i++
			b = pgcopy.Row(b, len(sourceColumns))
			b = pgcopy.UUID(b, r.domain)
			b = pgcopy.Date(b, r.day)
			b = pgcopy.Inet(b, k.ip)
			b = pgcopy.Text(b, r.reporter)
			b = pgcopy.Text(b, str[k.headerFrom])
			b = pgcopy.Text(b, str[k.spfDomain])
			b = pgcopy.Text(b, str[k.disposition])
			b = pgcopy.Bool(b, k.spfPass)
			b = pgcopy.Bool(b, k.dkimPass)
			b = pgcopy.Bool(b, k.spfAligned)
			b = pgcopy.Bool(b, k.dkimAl)
			b = pgcopy.Bool(b, k.forwarded)
			b = pgcopy.Int8(b, k.messages)
			return pgcopy.Int4(b, 1), true, nil
		}); err != nil {
			return c, fmt.Errorf("copy source rollups: %w", err)
		}
	}
	if rows := r.rollup.dkimRows(); exist.Dkim {
		if dp := dkimParams(r, rows); dp != nil {
			_ = qb.AddSourceDKIM(ctx, *dp)
			bt.label("add DKIM rollups")
		}
	} else if len(rows) > 0 {
		i := 0
		if _, err := pgcopy.Rows(ctx, tx, "report_source_dkim", dkimColumns, func(b []byte) ([]byte, bool, error) {
			if i == len(rows) {
				return b, false, nil
			}
			k := &rows[i]
			i++
			b = pgcopy.Row(b, len(dkimColumns))
			b = pgcopy.UUID(b, r.domain)
			b = pgcopy.Date(b, r.day)
			b = pgcopy.Inet(b, k.ip)
			b = pgcopy.Text(b, str[k.domain])
			b = pgcopy.Text(b, str[k.selector])
			b = pgcopy.Text(b, str[k.result])
			b = pgcopy.Int8(b, k.messages)
			return pgcopy.Int4(b, 1), true, nil
		}); err != nil {
			return c, fmt.Errorf("copy DKIM rollups: %w", err)
		}
	}
	if bt.b.Len() > 0 {
		if _, err := bt.send(ctx, tx); err != nil {
			return c, err
		}
	}
	return c, nil
}
