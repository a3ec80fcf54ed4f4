package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/ingest/ingestdb"
	"github.com/rampartmail/rampart/internal/report"
	"github.com/rampartmail/rampart/internal/sources"
)

// Refusal reasons of this package, stored like [report.Reason] values.
const (
	// NotHosted: the report's policy domain is not a hosted domain (or
	// under one) within the blob's scope.
	NotHosted report.Reason = "not_hosted"
	// StoreFailed: the blob could not be stored (status failed).
	StoreFailed report.Reason = "store_failed"
)

// Blob statuses, as in report_blobs.status.
const (
	statusPending   = "pending"
	statusStored    = "stored"
	statusDuplicate = "duplicate"
	statusRefused   = "refused"
	statusFailed    = "failed"
	// cancelled and discarded are set by a trigger on River's job table
	// (migration 00005) when a blob's job ends without the worker deciding:
	// cancelled or deleted (from the job dashboard), or given up by River.
	statusCancelled = "cancelled"
	statusDiscarded = "discarded"
)

// notStored reports whether a blob's status says its report was not stored,
// so that the same bytes arriving again put it back in line.
func notStored(status string) bool {
	switch status {
	case statusRefused, statusFailed, statusCancelled, statusDiscarded:
		return true
	}
	return false
}

// Bounds on values that end up in index keys (a btree entry must stay
// under about 2.7 kB) or that no real report comes near.
const (
	maxKeyField   = 1000 // the reporter and report_id, in the dedupe key
	maxDomainLen  = 253
	maxIdentifier = 255 // header_from, envelope_from, envelope_to
	maxEnumLen    = 32  // disposition, dkim, spf (policy_evaluated)
	maxTextField  = 1000
	// maxMessages bounds a report's total message count, far above any
	// real report, so that sums cannot overflow bigint.
	maxMessages = 1_000_000_000_000_000
	// futureSlack is how far into the future a date range may begin,
	// for reporters whose clocks run ahead.
	futureSlack = 48 * time.Hour
)

type ingester struct {
	pool   *pgxpool.Pool
	limits report.Limits
	months int
	log    *slog.Logger

	// parts holds the names of report_records partitions known to exist.
	parts sync.Map
	// classifier classifies a large report's new day in its transaction
	// (nil: the day is left to the sources.classify job).
	classifier *sources.Classifier

	beforeCommit func(ctx context.Context, blobID uuid.UUID) error
	now          func() time.Time
}

func newIngester(pool *pgxpool.Pool, opts Options, log *slog.Logger) *ingester {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := &ingester{pool: pool, limits: opts.Limits, months: opts.RetentionMonths, log: log,
		classifier: opts.Classifier, beforeCommit: opts.beforeCommit, now: opts.now}
	if in.months <= 0 {
		in.months = DefaultRetentionMonths
	}
	if in.now == nil {
		in.now = time.Now
	}
	return in
}

// outcome sums up one blob's ingest, for the log.
type outcome struct {
	status                       string
	reports, duplicates, records int
	// kept counts reports this blob stored in an earlier round.
	kept int
	// round is the blob's round, once it was read.
	round *int32
}

// candidate is one attachment of a blob that may be a report.
type candidate struct {
	att     report.Attachment
	meta    *report.Metadata
	domain  uuid.UUID
	day     time.Time // UTC midnight of the report's begin
	refusal *report.Refusal
}

// ingest stores the reports of one blob, or records why it cannot. A
// *report.Refusal means the blob was refused (and marked so); any other
// error is transient and leaves the blob pending.
func (in *ingester) ingest(ctx context.Context, blobID uuid.UUID) (outcome, error) {
	b, err := ingestdb.New(in.pool).BlobForIngest(ctx, blobID)
	if errors.Is(err, pgx.ErrNoRows) {
		// Deleted (its domain or account was removed) before it was worked.
		return outcome{status: "gone"}, nil
	}
	if err != nil {
		return outcome{}, fmt.Errorf("load blob: %w", err)
	}
	round := &b.Round
	if b.Status != statusPending {
		return outcome{status: b.Status, round: round}, nil
	}
	var warns warningList
	cands, err := in.prepare(ctx, &b, &warns)
	if err != nil {
		return outcome{round: round}, in.refuseIf(ctx, &b, err, &warns)
	}
	out, err := in.store(ctx, &b, cands, &warns)
	out.round = round
	if err != nil {
		return out, in.refuseIf(ctx, &b, err, &warns)
	}
	return out, nil
}

// prepare unwraps the blob, reads each attachment's metadata, maps it to a
// hosted domain and makes sure its month's partition exists. Attachments
// refused here carry their refusal; if all are, the first refusal is
// returned.
func (in *ingester) prepare(ctx context.Context, b *ingestdb.BlobForIngestRow, warns *warningList) ([]*candidate, error) {
	sc, err := in.scopeOf(ctx, b)
	if err != nil {
		return nil, err
	}
	atts, err := report.Extract(b.Raw, in.limits)
	if err != nil {
		return nil, err
	}
	now := in.now()
	var cands []*candidate
	var first *report.Refusal
	for _, att := range atts {
		c := &candidate{att: att}
		cands = append(cands, c)
		c.meta, err = in.peek(att)
		if err == nil {
			err = checkMetadata(c.meta, now)
		}
		if err == nil {
			c.domain, err = in.hostedDomain(ctx, sc, c.meta.Policy.Domain)
		}
		if err != nil {
			if !errors.As(err, &c.refusal) {
				return nil, err
			}
			if first == nil {
				first = c.refusal
			}
			continue
		}
		c.day = dayOf(c.meta.Begin)
		if err := in.ensurePartition(ctx, c.day); err != nil {
			return nil, err
		}
	}
	if len(cands) > 1 {
		for _, c := range cands {
			if c.refusal != nil {
				warns.refused(c.att.Name, c.refusal)
			}
		}
	}
	for _, c := range cands {
		if c.refusal == nil {
			return cands, nil
		}
	}
	return nil, first
}

// errPeeked stops the metadata pre-pass at the first record.
var errPeeked = errors.New("metadata read")

// peek reads an attachment up to its first record and returns its metadata.
func (in *ingester) peek(att report.Attachment) (*report.Metadata, error) {
	r, err := att.Open()
	if err != nil {
		return nil, err
	}
	var meta *report.Metadata
	_, err = report.DecodeStream(r, in.limits, func(m *report.Metadata) error {
		c := *m
		meta = &c
		return errPeeked
	}, nil)
	if errors.Is(err, errPeeked) {
		return meta, nil
	}
	if err == nil {
		return nil, &report.Refusal{Reason: report.NoReport, Detail: "no report metadata"}
	}
	return nil, err
}

// checkMetadata refuses what the decoder accepts but the database cannot
// index, or that cannot be a real report.
func checkMetadata(m *report.Metadata, now time.Time) error {
	switch {
	case len(m.OrgName) > maxKeyField:
		return &report.Refusal{Reason: report.Invalid, Element: "feedback/report_metadata/org_name", Detail: fmt.Sprintf("longer than %d bytes", maxKeyField)}
	case m.Reporter() == "":
		// The decoder refuses such a report already; an empty reporter in
		// the dedupe key would make unnamed reporters collide.
		return &report.Refusal{Reason: report.Invalid, Element: "feedback/report_metadata/org_name", Detail: "nothing names the reporter"}
	case len(m.Reporter()) > maxKeyField:
		return &report.Refusal{Reason: report.Invalid, Element: "feedback/report_metadata/email", Detail: fmt.Sprintf("the reporter it names is longer than %d bytes", maxKeyField)}
	case len(m.ReportID) > maxKeyField:
		return &report.Refusal{Reason: report.Invalid, Element: "feedback/report_metadata/report_id", Detail: fmt.Sprintf("longer than %d bytes", maxKeyField)}
	case len(m.Policy.Domain) > maxDomainLen:
		return &report.Refusal{Reason: report.Invalid, Element: "feedback/policy_published/domain", Detail: fmt.Sprintf("longer than %d bytes", maxDomainLen)}
	case m.Begin.After(now.Add(futureSlack)):
		return &report.Refusal{Reason: report.Invalid, Element: "feedback/report_metadata/date_range/begin",
			Detail: fmt.Sprintf("the date range begins in the future (%s)", m.Begin.UTC().Format(time.RFC3339))}
	}
	return nil
}

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// result is what storing one report came to.
type result struct {
	id        uuid.UUID
	domain    uuid.UUID
	day       time.Time
	reporter  string
	duplicate bool
	// kept is set when the report was stored from this very blob in an
	// earlier round: nothing is written again.
	kept     bool
	records  int
	messages int64
	rollup   *rollup
	warnings []report.Warning
}

// store writes the blob's reports in one transaction.
func (in *ingester) store(ctx context.Context, b *ingestdb.BlobForIngestRow, cands []*candidate, warns *warningList) (outcome, error) {
	tx, err := in.pool.Begin(ctx)
	if err != nil {
		return outcome{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	var todo []*candidate
	for _, c := range cands {
		if c.refusal == nil {
			todo = append(todo, c)
		}
	}
	// With several reports in one blob, each is written under a savepoint
	// so that a refused one leaves the others.
	multi := len(todo) > 1
	var out outcome
	var storedID, dupID *uuid.UUID
	var stored []result
	var firstRefusal *report.Refusal
	for _, c := range todo {
		w := tx
		if multi {
			if w, err = tx.Begin(ctx); err != nil {
				return outcome{}, fmt.Errorf("savepoint: %w", err)
			}
		}
		res, err := in.storeReport(ctx, w, b, c, stored)
		var ref *report.Refusal
		if errors.As(err, &ref) && multi {
			if err := w.Rollback(ctx); err != nil {
				return outcome{}, fmt.Errorf("roll back to savepoint: %w", err)
			}
			warns.refused(c.att.Name, ref)
			if firstRefusal == nil {
				firstRefusal = ref
			}
			continue
		}
		if err != nil {
			return outcome{}, err
		}
		if multi {
			if err := w.Commit(ctx); err != nil {
				return outcome{}, fmt.Errorf("release savepoint: %w", err)
			}
		}
		name := ""
		if multi {
			name = c.att.Name
		}
		warns.add(name, res.warnings)
		id := res.id
		if res.kept {
			out.kept++
			if storedID == nil {
				storedID = &id
			}
			continue
		}
		if res.duplicate {
			out.duplicates++
			if dupID == nil {
				dupID = &id
			}
		} else {
			out.reports++
			out.records += res.records
			stored = append(stored, res)
			if storedID == nil {
				storedID = &id
			}
		}
	}
	if out.reports+out.kept+out.duplicates == 0 {
		if firstRefusal == nil {
			return outcome{}, errors.New("no report stored and none refused")
		}
		return outcome{}, firstRefusal
	}
	out.status = statusStored
	reportID := storedID
	if out.reports+out.kept == 0 {
		out.status, reportID = statusDuplicate, dupID
	}

	// The closing statements go in one round trip, the rollups last (see
	// rollup.go): the locks on their days are held until commit. A large
	// report's rollups follow in statements of their own.
	var bt batch
	qb := ingestdb.New(&bt)
	for _, r := range stored {
		_ = qb.SetReportCounts(ctx, ingestdb.SetReportCountsParams{ID: r.id, RecordCount: int32(r.records), MessageCount: r.messages}) //nolint:gosec // G115: at most Limits.MaxRecords (default 5,000,000) records
		bt.label("set report counts")
	}
	finished := bt.b.Len()
	_ = qb.FinishBlob(ctx, ingestdb.FinishBlobParams{ID: b.ID, Round: b.Round, Status: out.status, ReportID: reportID, Warnings: warns.json()})
	bt.label("mark blob " + out.status)
	lockSourceDays(ctx, qb, stored)
	bt.label("lock the source rollups' day")
	large := slices.ContainsFunc(stored, func(r result) bool { return r.rollup.rows() > inlineRollup })
	if !large {
		for _, r := range stored {
			queueUpserts(ctx, &bt, r)
		}
	}
	tags, err := bt.send(ctx, tx)
	if err != nil {
		return outcome{}, err
	}
	if tags[finished].RowsAffected() == 0 {
		// Another worker finished the blob (or retention deleted it, or
		// it was put back in line in a new round with more recipients)
		// while this one worked: what this one wrote is rolled back. Two
		// workers on one blob cannot both store its reports: the second
		// waits on the first's dedupe keys and finds them taken.
		return outcome{status: "finished elsewhere"}, nil
	}
	// The classifications of new days the rollups start (classify.go) end
	// with the transaction.
	var classifying []*newDayClassification
	defer func() {
		if len(classifying) > 0 {
			// Rolled back first (a no-op after Commit), so that a
			// classification never waits on this transaction's locks
			// while this waits for it.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
		for _, c := range classifying {
			c.finish(false)
		}
	}()
	if large {
		for _, r := range stored {
			c, err := in.writeRollups(ctx, tx, r)
			if c != nil {
				classifying = append(classifying, c)
			}
			if err != nil {
				return outcome{}, err
			}
		}
	}
	if in.beforeCommit != nil {
		if err := in.beforeCommit(ctx, b.ID); err != nil {
			return outcome{}, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return outcome{}, fmt.Errorf("commit: %w", err)
	}
	for _, c := range classifying {
		c.finish(true)
	}
	return out, nil
}

// storeReport writes one report, or records it as a duplicate. stored are
// the reports this run wrote so far: a report stored from the same blob but
// not among them was stored in an earlier round, and is kept as it is.
func (in *ingester) storeReport(ctx context.Context, tx pgx.Tx, b *ingestdb.BlobForIngestRow, c *candidate, stored []result) (result, error) {
	q := ingestdb.New(tx)
	m := c.meta
	p := m.Policy
	var pct *int32
	if p.Pct != nil {
		v := int32(*p.Pct) //nolint:gosec // G115: the decoder sets Pct only for 0..100
		pct = &v
	}
	errs := make([]string, len(m.Errors))
	for i, e := range m.Errors {
		errs[i] = clip(e, maxTextField)
	}
	day := pgtype.Date{Time: c.day, Valid: true}
	id, err := q.InsertReport(ctx, ingestdb.InsertReportParams{
		DomainID: c.domain, BlobID: &b.ID, Reporter: m.Reporter(),
		OrgName: m.OrgName, Email: clip(m.Email, maxTextField), ExtraContactInfo: clip(m.ExtraContactInfo, maxTextField),
		ReportID: m.ReportID, PolicyDomain: m.Policy.Domain, BeginAt: m.Begin, EndAt: m.End, Day: day,
		Version: clip(m.Version, maxEnumLen), Namespace: clip(m.Namespace, maxTextField), Generator: clip(m.Generator, maxTextField),
		Errors:      errs,
		PolicyAdkim: clip(string(p.ADKIM), maxEnumLen), PolicyAspf: clip(string(p.ASPF), maxEnumLen),
		PolicyP: clip(string(p.P), maxEnumLen), PolicySp: clip(string(p.SP), maxEnumLen), PolicyNp: clip(string(p.NP), maxEnumLen),
		PolicyPct: pct, PolicyFo: clip(p.FO, maxEnumLen), PolicyTesting: clip(p.Testing, maxEnumLen),
		PolicyDiscovery: clip(p.DiscoveryMethod, maxEnumLen), ReceivedAt: b.ReceivedAt,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		existing, err := q.ReportByKey(ctx, ingestdb.ReportByKeyParams{
			DomainID: c.domain, Reporter: m.Reporter(), ReportID: m.ReportID, PolicyDomain: m.Policy.Domain, BeginAt: m.Begin, EndAt: m.End,
		})
		if err != nil {
			return result{}, fmt.Errorf("find stored report: %w", err)
		}
		if existing.BlobID != nil && *existing.BlobID == b.ID &&
			!slices.ContainsFunc(stored, func(r result) bool { return r.id == existing.ID }) {
			return result{id: existing.ID, kept: true}, nil
		}
		if err := q.InsertDuplicate(ctx, ingestdb.InsertDuplicateParams{BlobID: b.ID, ReportID: existing.ID, ReceivedAt: b.ReceivedAt}); err != nil {
			return result{}, fmt.Errorf("record duplicate: %w", err)
		}
		return result{id: existing.ID, duplicate: true}, nil
	}
	if err != nil {
		return result{}, fmt.Errorf("insert report: %w", err)
	}
	st, warnings, err := in.copyRecords(ctx, tx, id, c)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			// The partition was dropped (retention) since it was seen.
			in.parts.Delete(partitionName(c.day))
		}
		return result{}, err
	}
	return result{id: id, domain: c.domain, day: c.day, reporter: m.Reporter(), records: st.records, messages: st.messages,
		rollup: st.rollup, warnings: warnings}, nil
}

// refuseIf records a refusal on the blob and returns it; other errors are
// returned as they are. If the refusal cannot be recorded, that error is
// returned instead, so that the job is retried rather than cancelled.
func (in *ingester) refuseIf(ctx context.Context, b *ingestdb.BlobForIngestRow, err error, warns *warningList) error {
	var ref *report.Refusal
	if !errors.As(err, &ref) {
		return err
	}
	detail := ref.Detail
	if ref.Element != "" {
		detail = ref.Element + ": " + detail
	}
	reason := string(ref.Reason)
	detail = clip(detail, maxTextField)
	if _, dbErr := ingestdb.New(in.pool).RefuseBlob(ctx, ingestdb.RefuseBlobParams{
		ID: b.ID, Round: &b.Round, Status: statusRefused, RefusalReason: &reason, RefusalDetail: &detail, Warnings: warns.json(),
	}); dbErr != nil {
		return fmt.Errorf("record refusal (%v): %w", err, dbErr) //nolint:errorlint // the cause is dbErr; err is the refusal being recorded, shown for context
	}
	return err
}

// fail marks a blob failed after its last attempt or a permanent fault,
// unless it was put back in line after round (nil: not known).
func (in *ingester) fail(ctx context.Context, blobID uuid.UUID, round *int32, detail string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	reason := string(StoreFailed)
	if _, err := ingestdb.New(in.pool).RefuseBlob(ctx, ingestdb.RefuseBlobParams{
		ID: blobID, Round: round, Status: statusFailed, RefusalReason: &reason, RefusalDetail: &detail, Warnings: []byte("[]"),
	}); err != nil {
		in.log.ErrorContext(ctx, "mark report blob failed", "blob", blobID, "error", err)
	}
}

// permanent tells database errors that a retry would meet again: data
// exceptions and exceeded limits.
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "54":
		return true
	}
	return false
}
