// Package reporting reads what report ingestion stored, for the API: a
// domain's aggregate reports, and the inputs that were refused or stored
// with warnings, with their reasons. Callers pass domains and accounts
// they have already authorised.
package reporting

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/reporting/reportingdb"
)

// Report is one stored aggregate report.
type Report = reportingdb.DomainReportsRow

// Problem is an input that was not stored (refused, failed, its job
// cancelled or discarded) or was stored with warnings.
type Problem struct {
	BlobID     uuid.UUID
	Source     string
	Filename   string
	Remote     string
	ReceivedAt time.Time
	// Status is pending, stored, duplicate, refused, failed, cancelled or
	// discarded.
	Status string
	// Reason is a stable code (report.Reason or ingest's); Detail a
	// sentence for the owner. Both empty for a stored input with warnings.
	Reason, Detail string
	Warnings       []Warning
	// Size is the input's size in bytes.
	Size int64
	// PurgedAt is when the bytes of an input that was not stored were
	// deleted (30 days after, ingest.RefusedBytesRetention); the rest is
	// kept. Nil while the bytes are kept.
	PurgedAt *time.Time
	// Message names a mail input (smtp, imap), which has no file name;
	// nil for files.
	Message *Message
}

// Message is what names a mail message: its From, Subject and Message-ID
// headers, as ingest cleaned them (valid UTF-8, no control characters, at
// most 255 bytes each; "" when missing).
type Message struct {
	From, Subject, MessageID string
}

// Warning is a quirk accepted while decoding.
type Warning struct {
	Code    string `json:"code"`
	Element string `json:"element"`
	Detail  string `json:"detail"`
	Count   int64  `json:"count"`
}

// Reader reads stored reports.
type Reader struct {
	pool  *pgxpool.Pool
	authz *access.Authorizer
}

// NewReader returns a Reader.
func NewReader(pool *pgxpool.Pool) *Reader { return &Reader{pool: pool, authz: access.New(pool)} }

// authorizeDomain decides reading a domain's reports: the principal must
// hold [access.ViewReports] on the domain, named with its account.
func (r *Reader) authorizeDomain(ctx context.Context, accountID, domainID uuid.UUID) error {
	if domainID == uuid.Nil {
		return apperr.NotFoundf("domain not found")
	}
	return r.authz.Authorize(ctx, access.OnDomain(accountID, domainID), access.ViewReports)
}

// Page is one page of reports.
type Page struct {
	Reports    []Report
	HasNext    bool
	TotalCount int64
}

// MaxPage is the largest page.
const MaxPage = 100

// Cursor is the opaque cursor of a report.
func Cursor(r Report) string {
	return base64.RawURLEncoding.EncodeToString([]byte("r:" + r.BeginAt.UTC().Format(time.RFC3339Nano) + "|" + r.ID.String()))
}

func decodeCursor(c string) (time.Time, uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	s := string(b)
	if err != nil || !strings.HasPrefix(s, "r:") {
		return time.Time{}, uuid.Nil, apperr.Invalid("after", "invalid cursor")
	}
	ts, id, ok := strings.Cut(s[2:], "|")
	t, terr := time.Parse(time.RFC3339Nano, ts)
	u, uerr := uuid.Parse(id)
	if !ok || terr != nil || uerr != nil {
		return time.Time{}, uuid.Nil, apperr.Invalid("after", "invalid cursor")
	}
	return t, u, nil
}

// Reports lists a domain's reports (the domain of the account), newest
// reporting period first. The principal must hold [access.ViewReports] on
// it.
func (r *Reader) Reports(ctx context.Context, accountID, domainID uuid.UUID, first int, after string) (Page, error) {
	if err := r.authorizeDomain(ctx, accountID, domainID); err != nil {
		return Page{}, err
	}
	if first < 0 || first > MaxPage {
		return Page{}, apperr.Invalid("first", "first must be between 0 and %d", MaxPage)
	}
	p := reportingdb.DomainReportsParams{DomainID: domainID, Lim: int32(first + 1)}
	if after != "" {
		t, id, err := decodeCursor(after)
		if err != nil {
			return Page{}, err
		}
		p.AfterBegin, p.AfterID = &t, &id
	}
	// The page and the count read one snapshot, so that a report stored
	// between them cannot be counted and missing.
	var rows []reportingdb.DomainReportsRow
	var total int64
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		q := reportingdb.New(tx)
		var err error
		if rows, err = q.DomainReports(ctx, p); err != nil {
			return fmt.Errorf("list reports: %w", err)
		}
		if total, err = q.CountDomainReports(ctx, domainID); err != nil {
			return fmt.Errorf("count reports: %w", err)
		}
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	page := Page{TotalCount: total, HasNext: len(rows) > first}
	if page.HasNext {
		rows = rows[:first]
	}
	page.Reports = rows
	return page, nil
}

// MaxProblems bounds a problem listing.
const MaxProblems = 200

// DomainProblems lists a domain's (of the account) problem inputs, newest
// first. The principal must hold [access.ViewReports] on it.
func (r *Reader) DomainProblems(ctx context.Context, accountID, domainID uuid.UUID, limit int) ([]Problem, error) {
	if err := r.authorizeDomain(ctx, accountID, domainID); err != nil {
		return nil, err
	}
	rows, err := reportingdb.New(r.pool).DomainProblems(ctx, reportingdb.DomainProblemsParams{DomainID: domainID, Lim: clampLimit(limit)})
	if err != nil {
		return nil, fmt.Errorf("list problems: %w", err)
	}
	return problems(rows, func(p reportingdb.DomainProblemsRow) problemRow { return problemRow(p) }), nil
}

// AccountProblems lists an account's uploaded or pulled problem inputs.
// The principal must hold [access.ViewReports] in the account.
func (r *Reader) AccountProblems(ctx context.Context, accountID uuid.UUID, limit int) ([]Problem, error) {
	if err := r.authz.Authorize(ctx, access.InAccount(accountID), access.ViewReports); err != nil {
		return nil, err
	}
	rows, err := reportingdb.New(r.pool).AccountProblems(ctx, reportingdb.AccountProblemsParams{AccountID: &accountID, Lim: clampLimit(limit)})
	if err != nil {
		return nil, fmt.Errorf("list problems: %w", err)
	}
	return problems(rows, func(p reportingdb.AccountProblemsRow) problemRow { return problemRow(p) }), nil
}

// UnmatchedProblems lists inputs from any source, of any tenant or none,
// refused because a report in them matches no hosted domain within their
// scope (reason not_hosted), newest first: reports for a domain nobody
// hosts (yet), mail to a rua address of a domain the report is not about,
// imports for unknown domains. Only the instance operator
// ([access.Authorizer.Operator]) may list them: they cross tenants, and an
// unmatched report belongs to none.
func (r *Reader) UnmatchedProblems(ctx context.Context, limit int) ([]Problem, error) {
	if err := r.authz.AuthorizeOperator(ctx, "list unmatched reports"); err != nil {
		return nil, err
	}
	rows, err := reportingdb.New(r.pool).UnmatchedProblems(ctx, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list unmatched reports: %w", err)
	}
	return problems(rows, func(p reportingdb.UnmatchedProblemsRow) problemRow { return problemRow(p) }), nil
}

// problemRow is the row every problem listing returns (sqlc gives each
// query its own, identical, row type).
type problemRow reportingdb.DomainProblemsRow

// problems turns a listing's rows into Problems, in one place.
func problems[R any](rows []R, row func(R) problemRow) []Problem {
	out := make([]Problem, len(rows))
	for i, r := range rows {
		p := row(r)
		out[i] = problem(p.ID, p.Source, p.Filename, p.Remote, p.ReceivedAt, p.Status, p.RefusalReason, p.RefusalDetail, p.Warnings)
		out[i].Size, out[i].PurgedAt = int64(p.Size), p.PurgedAt
		out[i].Message = message(p.Source, p.MailFrom, p.MailSubject, p.MailMessageID)
	}
	return out
}

// message is a mail input's Message; nil for other sources.
func message(source, from, subject, id string) *Message {
	if source != "smtp" && source != "imap" {
		return nil
	}
	return &Message{From: from, Subject: subject, MessageID: id}
}

func clampLimit(n int) int32 {
	if n <= 0 || n > MaxProblems {
		return MaxProblems
	}
	return int32(n)
}

func problem(id uuid.UUID, source, filename, remote string, at time.Time, status string, reason, detail *string, warnings []byte) Problem {
	p := Problem{BlobID: id, Source: source, Filename: filename, Remote: remote, ReceivedAt: at, Status: status}
	if reason != nil {
		p.Reason = *reason
	}
	if detail != nil {
		p.Detail = *detail
	}
	_ = json.Unmarshal(warnings, &p.Warnings) // written by ingest as this shape
	if p.Warnings == nil {
		p.Warnings = []Warning{}
	}
	return p
}
