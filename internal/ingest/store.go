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
	// SourceSMTP is a mail to one or more domains' rua addresses;
	// Incoming.Recipients are the recipient domains.
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
// as the unwrapping limit of [report.Limits.MaxCompressed]. A bare XML file,
// not compressed, may be as large as [report.Limits.MaxInflated] allows
// (see [MaxSizeFor]).
const DefaultMaxSize = report.DefaultMaxCompressed

// MaxSizeFor returns the largest raw input that begins with head which
// Accept takes, and the workers unwrap, with maxSize the limit for
// compressed input and messages (0: DefaultMaxSize).
func MaxSizeFor(head []byte, maxSize int64) int64 {
	return report.Limits{MaxCompressed: maxSize}.MaxInput(head)
}

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
	// Recipients are the domains whose rua addresses the mail named
	// (smtp). The message is one blob however many they are; they bound
	// which domains its reports may be filed under.
	Recipients []uuid.UUID
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
	// Retried is true when the same bytes came before and were not stored
	// (refused, say for a domain not yet hosted then, or failed, or their
	// job cancelled or discarded), or when mail with the same bytes
	// arrives for a recipient domain the blob did not have: the earlier
	// blob is pending again, with a new job.
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

// SetMaxSize changes the largest raw input Accept takes, but for a bare XML
// file (see [MaxSizeFor]). It should not be above the workers'
// [report.Limits.MaxCompressed], which would refuse the blob later.
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
	mail := in.Source == SourceSMTP
	// A mail has no file name: its From, Subject and Message-ID name it
	// for whoever reads why it was not stored.
	var hdr MailHeaders
	if mail || in.Source == SourceIMAP {
		hdr = ParseMailHeaders(in.Raw)
	}
	var acc Accepted
	// A blob found by hash may vanish (retention) before it is read back;
	// then the insert is tried again.
	for range 3 {
		acc = Accepted{}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			q := ingestdb.New(tx)
			id, err := q.InsertBlob(ctx, ingestdb.InsertBlobParams{
				Sha256: sum[:], Raw: in.Raw, Size: int32(len(in.Raw)), Source: string(in.Source), //nolint:gosec // G115: a bytea holds at most 1 GiB, so a raw input that fits is below 2^31 bytes
				AccountID: in.AccountID, ScopeAccounts: scope,
				Remote: clip(in.Remote, 200), Filename: clip(in.Filename, 255), ReceivedAt: in.ReceivedAt,
				MailFrom: hdr.From, MailSubject: hdr.Subject, MailMessageID: hdr.MessageID,
			})
			var round int32
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				if acc, round, err = s.again(ctx, q, sum[:], in, scope); err != nil || !acc.Retried {
					return err
				}
				id = acc.BlobID
			case err != nil:
				return fmt.Errorf("store blob: %w", err)
			case mail:
				if _, err := s.addRecipients(ctx, q, id, in); err != nil {
					return err
				}
			}
			// The blob's earlier jobs, if any, were of earlier rounds, or
			// cancelled or discarded, which do not count for uniqueness.
			res, err := s.client.InsertTx(ctx, tx, IngestArgs{BlobID: id, Round: int(round)}, nil)
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
			"recipients", len(in.Recipients), "duplicate", acc.Duplicate, "retried", acc.Retried)
		return acc, nil
	}
	return Accepted{}, fmt.Errorf("accept report: %w", errVanished)
}

// again handles bytes already stored in the scope: a duplicate, unless the
// blob was not stored, or the mail names recipients it did not
// have; then the blob is put back in line in a new round (Retried).
func (s *Store) again(ctx context.Context, q *ingestdb.Queries, sum []byte, in Incoming, scope []uuid.UUID) (Accepted, int32, error) {
	old, err := q.BlobInScope(ctx, ingestdb.BlobInScopeParams{Sha256: sum, AccountID: in.AccountID, Mail: in.Source == SourceSMTP})
	if errors.Is(err, pgx.ErrNoRows) {
		return Accepted{}, 0, errVanished
	}
	if err != nil {
		return Accepted{}, 0, fmt.Errorf("find stored blob: %w", err)
	}
	grew := false
	if in.Source == SourceSMTP {
		if grew, err = s.addRecipients(ctx, q, old.ID, in); err != nil {
			return Accepted{}, 0, err
		}
	}
	if !grew && !notStored(old.Status) {
		return Accepted{BlobID: old.ID, Duplicate: true}, 0, nil
	}
	if old.Purged {
		if err := q.RestoreRaw(ctx, ingestdb.RestoreRawParams{ID: old.ID, Raw: in.Raw}); err != nil {
			return Accepted{}, 0, fmt.Errorf("restore purged blob: %w", err)
		}
	}
	round, err := q.RetryBlob(ctx, ingestdb.RetryBlobParams{ID: old.ID, ScopeAccounts: scope, ScopeGrew: grew})
	if err != nil {
		return Accepted{}, 0, fmt.Errorf("retry blob: %w", err)
	}
	return Accepted{BlobID: old.ID, Retried: true}, round, nil
}

// addRecipients links a mail blob to its recipient domains and says
// whether any was new to it.
func (s *Store) addRecipients(ctx context.Context, q *ingestdb.Queries, blobID uuid.UUID, in Incoming) (bool, error) {
	n, err := q.AddRecipients(ctx, ingestdb.AddRecipientsParams{
		BlobID: blobID, DomainIds: in.Recipients, Remote: clip(in.Remote, 200), ReceivedAt: in.ReceivedAt,
	})
	if err != nil {
		return false, fmt.Errorf("add blob recipients: %w", err)
	}
	return n > 0, nil
}

var errVanished = errors.New("stored blob vanished while being read back")

func (s *Store) validate(in Incoming) error {
	switch in.Source {
	case SourceSMTP:
		if len(in.Recipients) == 0 {
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
	if limit := MaxSizeFor(in.Raw, s.maxSize); int64(len(in.Raw)) > limit {
		return &apperr.Error{Code: apperr.BadUserInput, Field: "file",
			Message: fmt.Sprintf("the report is %s; the limit is %s", byteSize(int64(len(in.Raw))), byteSize(limit)),
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
