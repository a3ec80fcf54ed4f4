package account

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account/accountdb"
	"github.com/rampartmail/rampart/internal/apperr"
)

// MSP customer accounts. A customer account is an account with a parent;
// the owners (and owner-level tokens) of the accounts above it act in it as
// owners (package access). Creating, suspending, resuming and removing a
// customer needs the manage-users permission in its parent, which only the
// accounts above hold: a customer's own owners cannot suspend, resume or
// remove their own account.

// CreateCustomer creates a customer account below parentID. It needs the
// manage-users permission in the parent (its owners, the owners above, and
// owner-level tokens); a parent that would nest the new account deeper than
// the operator allows ([access.MaxDepth]) is BAD_USER_INPUT. With
// ownerEmail, the address is invited as the account's owner ([Service.Invite]);
// when that fails (no mail relay, a refused mail) nothing is created.
func (s *Service) CreateCustomer(ctx context.Context, parentID uuid.UUID, name, ownerEmail string) (Account, *Invitation, error) {
	if err := s.authz.Authorize(ctx, access.InAccount(parentID), access.ManageUsers); err != nil {
		return Account{}, nil, err
	}
	name, err := checkName("name", name, true)
	if err != nil {
		return Account{}, nil, err
	}
	if strings.TrimSpace(ownerEmail) != "" {
		if _, err := normalizeAddress("ownerEmail", ownerEmail); err != nil {
			return Account{}, nil, err
		}
		if s.cfg.Mail == nil {
			return Account{}, nil, errNoMail
		}
	}
	var acct Account
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := access.CheckParent(ctx, tx, &parentID); err != nil {
			return err
		}
		a, err := accountdb.New(tx).CreateAccount(ctx, accountdb.CreateAccountParams{Name: name, ParentID: &parentID})
		if err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		acct = fromRow(a)
		return nil
	})
	if err != nil {
		return Account{}, nil, err
	}
	if strings.TrimSpace(ownerEmail) == "" {
		return acct, nil, nil
	}
	inv, err := s.Invite(ctx, acct.ID, ownerEmail, RoleOwner)
	if err != nil {
		// Nothing is left behind: the account is new and empty.
		if _, derr := accountdb.New(s.pool).DeleteAccount(context.WithoutCancel(ctx), acct.ID); derr != nil {
			return Account{}, nil, errors.Join(err, fmt.Errorf("remove the new account again: %w", derr))
		}
		return Account{}, nil, err
	}
	return acct, &inv, nil
}

// CustomerFilter narrows a listing of customer accounts.
type CustomerFilter struct {
	// Prefix keeps the accounts whose name starts with it (any case).
	Prefix string
	// Suspended, when set, keeps the suspended (true) or active accounts.
	Suspended *bool
	// All lists every account below the parent, not only its direct
	// customers.
	All bool
}

// CustomerPage is a page of customer accounts, by name.
type CustomerPage struct {
	Accounts   []Account
	HasNext    bool
	TotalCount int
}

// MaxCustomerPage bounds a page of customer accounts.
const MaxCustomerPage = 200

// CustomerCursor is the cursor of an account in a listing of customers.
func CustomerCursor(a Account) string {
	return base64.RawURLEncoding.EncodeToString([]byte("c:" + a.ID.String() + ":" + a.Name))
}

func decodeCustomerCursor(c string) (name string, id uuid.UUID, err error) {
	bad := apperr.Invalid("after", "not a cursor of this listing")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", uuid.Nil, bad
	}
	rest, ok := strings.CutPrefix(string(b), "c:")
	if !ok || len(rest) < 37 || rest[36] != ':' {
		return "", uuid.Nil, bad
	}
	id, err = uuid.Parse(rest[:36])
	if err != nil {
		return "", uuid.Nil, bad
	}
	return rest[37:], id, nil
}

// Customers lists the customer accounts of parentID that the caller may
// see, by name: its direct customers, or with f.All every account below
// it. The caller needs standing in the parent (NOT_FOUND otherwise); a
// customer's own owners do not see the account above theirs, nor its other
// customers.
func (s *Service) Customers(ctx context.Context, parentID uuid.UUID, f CustomerFilter, first int, after string) (CustomerPage, error) {
	if err := s.authz.See(ctx, parentID); err != nil {
		return CustomerPage{}, err
	}
	if first < 0 || first > MaxCustomerPage {
		return CustomerPage{}, apperr.Invalid("first", "first must be 0 to %d", MaxCustomerPage)
	}
	var afterName string
	afterID := uuid.Nil
	if after != "" {
		var err error
		if afterName, afterID, err = decodeCustomerCursor(after); err != nil {
			return CustomerPage{}, err
		}
	}
	visible, err := s.authz.Visible(ctx)
	if err != nil {
		return CustomerPage{}, err
	}
	q := accountdb.New(s.pool)
	depth := int32(min(access.MaxDepth(), math.MaxInt32)) //nolint:gosec // G115: bounded by the min
	rows, err := q.Customers(ctx, accountdb.CustomersParams{
		Visible: visible, NamePrefix: f.Prefix, Suspended: f.Suspended, AfterName: afterName, AfterID: afterID,
		Lim: int32(first) + 1, ParentID: parentID, AllBelow: f.All, MaxDepth: depth,
	})
	if err != nil {
		return CustomerPage{}, fmt.Errorf("list customers: %w", err)
	}
	total, err := q.CountCustomers(ctx, accountdb.CountCustomersParams{
		Visible: visible, NamePrefix: f.Prefix, Suspended: f.Suspended, ParentID: parentID, AllBelow: f.All, MaxDepth: depth,
	})
	if err != nil {
		return CustomerPage{}, fmt.Errorf("count customers: %w", err)
	}
	p := CustomerPage{Accounts: []Account{}, TotalCount: int(total), HasNext: len(rows) > first}
	for i, r := range rows {
		if i == first {
			break
		}
		p.Accounts = append(p.Accounts, fromRow(r))
	}
	return p, nil
}

// SuspendCustomer suspends a customer account: its own members and tokens
// (and those of the accounts below it) are refused everything in it, while
// the accounts above keep their access. Its domains stay served by the DNS
// edge, unchanged. It needs the manage-users permission in the account's
// parent. Suspending a suspended account changes nothing.
func (s *Service) SuspendCustomer(ctx context.Context, id uuid.UUID) (Account, error) {
	return s.setSuspended(ctx, id, true)
}

// ResumeCustomer ends a customer account's suspension; as SuspendCustomer.
func (s *Service) ResumeCustomer(ctx context.Context, id uuid.UUID) (Account, error) {
	return s.setSuspended(ctx, id, false)
}

func (s *Service) setSuspended(ctx context.Context, id uuid.UUID, suspend bool) (Account, error) {
	cur, err := s.authorizeAbove(ctx, id, "suspend or resume")
	if err != nil {
		return Account{}, err
	}
	if (cur.SuspendedAt != nil) == suspend {
		return cur, nil
	}
	var at *time.Time
	if suspend {
		now := s.now()
		at = &now
	}
	row, err := accountdb.New(s.pool).SetSuspended(ctx, accountdb.SetSuspendedParams{ID: id, SuspendedAt: at})
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, apperr.NotFoundf("account not found")
	}
	if err != nil {
		return Account{}, fmt.Errorf("suspend account: %w", err)
	}
	return fromRow(row), nil
}

// RemoveCustomer deletes a customer account with its memberships, teams,
// API tokens, invitations and account services, and returns it as it was.
// It needs the manage-users permission in the account's parent. While the
// account holds domains (any claim) or customer accounts of its own it is
// a CONFLICT that says how many, so that no hosted domain disappears as a
// side effect: remove or move them first.
func (s *Service) RemoveCustomer(ctx context.Context, id uuid.UUID) (Account, error) {
	if _, err := s.authorizeAbove(ctx, id, "remove"); err != nil {
		return Account{}, err
	}
	var gone Account
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := accountdb.New(tx)
		row, err := q.AccountForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.NotFoundf("account not found")
		}
		if err != nil {
			return fmt.Errorf("lock account: %w", err)
		}
		c, err := q.AccountContents(ctx, id)
		if err != nil {
			return fmt.Errorf("count the account's contents: %w", err)
		}
		if c.Domains > 0 || c.Customers > 0 {
			return apperr.Conflictf("the account still has %d domain(s) and %d customer account(s): remove or move them first (removing an account never takes hosted domains with it)", c.Domains, c.Customers)
		}
		if _, err := q.DeleteAccount(ctx, id); err != nil {
			return fmt.Errorf("remove account: %w", err)
		}
		gone = fromRow(row)
		return nil
	})
	if err != nil {
		return Account{}, err
	}
	return gone, nil
}

// authorizeAbove authorises a change of a customer account that only the
// accounts above it may make: the manage-users permission in the account
// (NOT_FOUND for a stranger), and in its parent.
func (s *Service) authorizeAbove(ctx context.Context, id uuid.UUID, what string) (Account, error) {
	if err := s.authz.Authorize(ctx, access.InAccount(id), access.ManageUsers); err != nil {
		return Account{}, err
	}
	row, err := accountdb.New(s.pool).AccountByID(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, apperr.NotFoundf("account not found")
	}
	if err != nil {
		return Account{}, fmt.Errorf("load account: %w", err)
	}
	if row.ParentID == nil {
		return Account{}, apperr.Invalid("id", "this is not a customer account (it has no account above it)")
	}
	if err := s.authz.Authorize(ctx, access.InAccount(*row.ParentID), access.ManageUsers); err != nil {
		if errors.Is(err, apperr.ErrNotFound) || errors.Is(err, apperr.ErrForbidden) {
			return Account{}, &apperr.Error{Code: apperr.Forbidden,
				Message: "only the owners of an account above a customer account may " + what + " it"}
		}
		return Account{}, err
	}
	return fromRow(row), nil
}

// Overview is the dashboard figures of one account.
type Overview struct {
	// Account is the account the figures are of, as the caller's page of
	// customers read it.
	Account Account
	// Domains counts the account's domains; Blocked those in blocked mode,
	// and PolicyNone, PolicyQuarantine, PolicyReject the others by their
	// DMARC p.
	Domains, Blocked                           int64
	PolicyNone, PolicyQuarantine, PolicyReject int64
	Verified, Unverified                       int64
	// LastReportAt is when the newest aggregate report arrived; nil: none.
	LastReportAt *time.Time
	// IngestProblems counts the report mails and uploads refused or failed
	// in the last ProblemWindow.
	IngestProblems int64
	// FailingServices counts the sender services the account's domains use
	// (and its own services) whose SPF include last failed to resolve.
	FailingServices int64
}

// ProblemWindow is how far back an overview counts ingest problems.
const ProblemWindow = 7 * 24 * time.Hour

// Overviews returns the dashboard figures of the accounts given (at most a
// page, [MaxCustomerPage]), in one query, keyed by account; each carries
// only the account's id. An account
// where the caller holds the view-reports permission on nothing is left
// out; the figures count only the domains the caller may see.
func (s *Service) Overviews(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]Overview, error) {
	if len(ids) > MaxCustomerPage {
		return nil, apperr.Invalid("ids", "at most %d accounts at once", MaxCustomerPage)
	}
	reach, err := s.authz.Reach(ctx, access.ViewReports)
	if err != nil {
		return nil, err
	}
	in := reach.In(ids...)
	rows, err := accountdb.New(s.pool).CustomerOverview(ctx, accountdb.CustomerOverviewParams{
		ProblemsSince: s.now().Add(-ProblemWindow), ReachAccounts: in.Accounts, ReachDomains: in.Domains, Ids: ids,
	})
	if err != nil {
		return nil, fmt.Errorf("overview: %w", err)
	}
	reached := map[uuid.UUID]bool{}
	for _, a := range in.Accounts {
		reached[a] = true
	}
	for _, d := range in.Domains {
		for _, id := range ids {
			if in.Covers(id, d) {
				reached[id] = true
			}
		}
	}
	out := make(map[uuid.UUID]Overview, len(rows))
	for _, r := range rows {
		if !reached[r.ID] {
			continue
		}
		o := Overview{Account: Account{ID: r.ID}, Domains: r.Domains, Blocked: r.Blocked,
			PolicyNone: r.PolicyNone, PolicyQuarantine: r.PolicyQuarantine, PolicyReject: r.PolicyReject,
			Verified: r.Verified, Unverified: r.Unverified,
			IngestProblems: r.IngestProblems, FailingServices: r.FailingServices}
		if t, ok := r.LastReportAt.(time.Time); ok {
			o.LastReportAt = &t
		}
		out[r.ID] = o
	}
	return out, nil
}
