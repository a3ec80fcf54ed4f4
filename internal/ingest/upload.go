package ingest

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/ingest/ingestdb"
)

// UploadPermission is what a principal must hold in an account to upload
// reports to it: an upload adds reports and changes the figures every
// viewer of the account's domains sees, so it is a change to the domains'
// data rather than a read, and the same permission governs what the
// account's domains are.
const UploadPermission = access.ManageDomains

// Upload is an upload authorised for the context's principal: files added
// to it are stored for the account, and their reports may be stored only
// for the domains of accounts in which that principal may manage domains.
// Every intake that acts for a principal (POST /upload, the uploadReports
// mutation) stores through an Upload, never through [Store.Accept] with a
// scope of its own making.
type Upload struct {
	store *Store
	// Account is the account uploaded to.
	Account uuid.UUID
	scope   []uuid.UUID
}

// BeginUpload authorises the context's principal to upload to accountID
// with the decision every other operation on the account goes through
// ([access.Authorizer.Authorize] with [UploadPermission]: no standing is
// NOT_FOUND, a member without the permission FORBIDDEN) and fixes the
// scope of what it uploads: the account and the accounts below it in which
// the principal holds the same permission account-wide. An MSP's owner
// uploading to its own account may so store reports for the domains of
// every customer account below it, as it acts there as an owner; a
// principal cannot upload into an account above its own or beside it.
//
// Call it before reading any file, so that an unauthorised caller costs no
// more than the request's headers.
func (s *Store) BeginUpload(ctx context.Context, accountID uuid.UUID) (*Upload, error) {
	if err := access.AuthorizeWrite(ctx); err != nil {
		return nil, err
	}
	authz := access.New(s.pool)
	if err := authz.Authorize(ctx, access.InAccount(accountID), UploadPermission); err != nil {
		return nil, err
	}
	allowed, err := authz.Accounts(ctx, UploadPermission)
	if err != nil {
		return nil, err
	}
	tree, err := ingestdb.New(s.pool).AccountTree(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("begin upload: list accounts below %s: %w", accountID, err)
	}
	held := make(map[uuid.UUID]bool, len(allowed))
	for _, id := range allowed {
		held[id] = true
	}
	scope := []uuid.UUID{accountID}
	for _, id := range tree {
		if id != accountID && held[id] {
			scope = append(scope, id)
		}
	}
	return &Upload{store: s, Account: accountID, scope: scope}, nil
}

// UploadedFile is one file of an [Upload].
type UploadedFile struct {
	// Filename is the name the client gave, kept for the owner to read.
	Filename string
	Raw      []byte
	// Remote is the client's address.
	Remote string
}

// Add stores one file of the upload, as [Store.Accept] does, after checking
// its name ([CheckFilename]).
func (u *Upload) Add(ctx context.Context, f UploadedFile) (Accepted, error) {
	if err := CheckFilename("filename", f.Filename); err != nil {
		return Accepted{}, err
	}
	return u.store.accept(ctx, Incoming{
		Source: SourceUpload, Raw: f.Raw, AccountID: &u.Account, Remote: f.Remote, Filename: f.Filename,
	}, u.scope)
}

// CheckFilename refuses a client's file name that is not text: one that is
// not valid UTF-8 or holds a NUL byte (PostgreSQL's text could store
// neither). The error is BAD_USER_INPUT naming field. Other characters are
// kept as they are.
func CheckFilename(field, name string) error {
	if p := apperr.TextProblem(name); p != "" {
		return apperr.Invalid(field, "the file name %s", p)
	}
	return nil
}
