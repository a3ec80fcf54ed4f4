package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/ingest/ingestdb"
	"github.com/rampartmail/rampart/internal/report"
)

// Source says how a raw input arrived.
type Source string

// The sources.
const (
	// SourceSMTP is a mail to a domain's rua address; Incoming.DomainID is
	// the recipient domain.
	SourceSMTP Source = "smtp"
	// SourceUpload is a file uploaded through the API; Incoming.AccountID
	// is the account it was uploaded to.
	SourceUpload Source = "upload"
	// SourceIMAP is a message pulled from an account's mailbox;
	// Incoming.AccountID is the account.
	SourceIMAP Source = "imap"
	// SourceImport is a file given to rampart import by an operator; its
	// reports may be for any hosted domain.
	SourceImport Source = "import"
)

// DefaultMaxSize is the largest raw input Accept takes by default, the same
// as the unwrapping limit of [report.Limits.MaxCompressed].
const DefaultMaxSize = report.DefaultMaxCompressed

// ErrTooLarge and ErrEmpty are in the chain of Accept's errors for inputs
// it refuses outright; the error itself is an [apperr.Error] whose message
// a caller may see.
var (
	ErrTooLarge = errors.New("report input too large")
	ErrEmpty    = errors.New("report input empty")
)

// Incoming is one raw input: a whole e-mail message, or an XML, gzip or zip
// file.
type Incoming struct {
	Source Source
	Raw    []byte
	// AccountID is the uploader's account (upload, imap).
	AccountID *uuid.UUID
	// DomainID is the domain whose rua address received the mail (smtp).
	DomainID *uuid.UUID
	// ReceivedAt defaults to now.
	ReceivedAt time.Time
	// Remote is the client's address (SMTP peer, HTTP client); Filename
	// the uploaded file's name. Both are kept for the owner to read.
	Remote, Filename string
}

// Accepted says what became of an Incoming.
type Accepted struct {
	BlobID uuid.UUID
	// JobID is the report.ingest job enqueued for the blob; 0 for a
	// duplicate.
	JobID int64
	// Duplicate is true when the same bytes were already stored in the
	// same scope and are stored, or waiting to be: BlobID is then the
	// earlier blob and no job is enqueued.
	Duplicate bool
	// Retried is true when the same bytes were stored before and refused
	// (say, for a domain not yet hosted then) or failed: the earlier blob
	// is pending again, with a new job.
	Retried bool
}

// Store takes raw inputs in.
type Store struct {
	pool    *pgxpool.Pool
	client  *river.Client[pgx.Tx]
	log     *slog.Logger
	maxSize int64
}

// NewStore returns a Store that enqueues ingest jobs with client, which may
// be an insert-only client (no workers in this process).
func NewStore(pool *pgxpool.Pool, client *river.Client[pgx.Tx], log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{pool: pool, client: client, log: log, maxSize: DefaultMaxSize}
}

// SetMaxSize changes the largest raw input Accept takes. It should not be
// above the workers' [report.Limits.MaxCompressed], which would refuse the
// blob later.
func (s *Store) SetMaxSize(n int64) {
	if n > 0 {
		s.maxSize = n
	}
}

// Accept stores a raw input and enqueues its report.ingest job, in one
// transaction. It does not authorise: the intake that calls it has checked
// the recipient (smtp) or is configured by the operator (imap, import).
// The job checks that each report's domain lies within the scope; for an
// account, that is the account and every account below it. Uploads for a
// principal go through [Store.BeginUpload] instead, whose scope is what the
// principal may manage.
func (s *Store) Accept(ctx context.Context, in Incoming) (Accepted, error) {
	return s.accept(ctx, in, nil)
}

// accept is Accept with the accounts the reports may be stored for (nil:
// the account's tree).
func (s *Store) accept(ctx context.Context, in Incoming, scope []uuid.UUID) (Accepted, error) {
	if err := s.validate(in); err != nil {
		return Accepted{}, err
	}
	if in.ReceivedAt.IsZero() {
		in.ReceivedAt = time.Now()
	}
	sum := sha256.Sum256(in.Raw)
	var acc Accepted
	// A blob found by hash may vanish (retention) before it is read back;
	// then the insert is tried again.
	for range 3 {
		acc = Accepted{}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			q := ingestdb.New(tx)
			id, err := q.InsertBlob(ctx, ingestdb.InsertBlobParams{
				Sha256: sum[:], Raw: in.Raw, Size: int32(len(in.Raw)), Source: string(in.Source),
				AccountID: in.AccountID, DomainID: in.DomainID, ScopeAccounts: scope,
				Remote: clip(in.Remote, 200), Filename: clip(in.Filename, 255), ReceivedAt: in.ReceivedAt,
			})
			if errors.Is(err, pgx.ErrNoRows) {
				old, err := q.BlobInScope(ctx, ingestdb.BlobInScopeParams{Sha256: sum[:], AccountID: in.AccountID, DomainID: in.DomainID})
				if errors.Is(err, pgx.ErrNoRows) {
					return errVanished
				}
				if err != nil {
					return fmt.Errorf("find stored blob: %w", err)
				}
				id = old.ID
				acc = Accepted{BlobID: id, Duplicate: true}
				if !notStored(old.Status) {
					return nil
				}
				n, err := q.RetryBlob(ctx, ingestdb.RetryBlobParams{ID: id, ScopeAccounts: scope})
				if err != nil {
					return fmt.Errorf("retry blob: %w", err)
				}
				if n == 0 {
					return nil // retried by a concurrent Accept
				}
				acc = Accepted{BlobID: id, Retried: true}
			} else if err != nil {
				return fmt.Errorf("store blob: %w", err)
			}
			// The blob's earlier job, if any, was cancelled or discarded,
			// states that do not count for uniqueness.
			res, err := s.client.InsertTx(ctx, tx, IngestArgs{BlobID: id}, nil)
			if err != nil {
				return fmt.Errorf("enqueue ingest job: %w", err)
			}
			acc.BlobID, acc.JobID = id, res.Job.ID
			return nil
		})
		if errors.Is(err, errVanished) {
			continue
		}
		if err != nil {
			return Accepted{}, fmt.Errorf("accept report: %w", err)
		}
		s.log.DebugContext(ctx, "report accepted", "blob", acc.BlobID, "source", in.Source, "size", len(in.Raw),
			"duplicate", acc.Duplicate, "retried", acc.Retried)
		return acc, nil
	}
	return Accepted{}, fmt.Errorf("accept report: %w", errVanished)
}

var errVanished = errors.New("stored blob vanished while being read back")

func (s *Store) validate(in Incoming) error {
	switch in.Source {
	case SourceSMTP:
		if in.DomainID == nil {
			return errors.New("accept report: smtp input without a recipient domain")
		}
	case SourceUpload, SourceIMAP:
		if in.AccountID == nil {
			return fmt.Errorf("accept report: %s input without an account", in.Source)
		}
	case SourceImport:
	default:
		return fmt.Errorf("accept report: unknown source %q", in.Source)
	}
	if err := CheckFilename("filename", in.Filename); err != nil {
		return err
	}
	if len(in.Raw) == 0 {
		return &apperr.Error{Code: apperr.BadUserInput, Field: "file", Message: "the report is empty", Err: ErrEmpty}
	}
	if int64(len(in.Raw)) > s.maxSize {
		return &apperr.Error{Code: apperr.BadUserInput, Field: "file",
			Message: fmt.Sprintf("the report is %s; the limit is %s", byteSize(int64(len(in.Raw))), byteSize(s.maxSize)),
			Err:     ErrTooLarge}
	}
	return nil
}

// RecipientDomain finds the hosted domain whose rua address has localPart,
// its report token. A "+tag" suffix is ignored and case does not matter.
// ok is false when no domain has the token.
func (s *Store) RecipientDomain(ctx context.Context, localPart string) (domainID uuid.UUID, name string, ok bool, err error) {
	token, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(localPart)), "+")
	if !validToken(token) {
		return uuid.Nil, "", false, nil
	}
	row, err := ingestdb.New(s.pool).DomainByReportToken(ctx, token)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, "", false, nil
	}
	if err != nil {
		return uuid.Nil, "", false, fmt.Errorf("find domain by report token: %w", err)
	}
	return row.ID, row.Name, true, nil
}

// validToken matches the report_token column's check.
func validToken(t string) bool {
	if len(t) < 8 || len(t) > 64 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
