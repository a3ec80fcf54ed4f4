package account

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account/accountdb"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/mailout"
)

// Roles of a member; they are defined, with what they allow, in package
// access.
const (
	RoleOwner  = access.RoleOwner
	RoleMember = access.RoleMember
)

// DefaultInvitationTTL is how long an invitation can be accepted.
const DefaultInvitationTTL = 7 * 24 * time.Hour

// invitationPrefix marks an invitation token ("rinv_" and 256 bits).
const invitationPrefix = "rinv_"

// Config configures the people side of a [Service].
type Config struct {
	// SignUp lets anyone create a user and an account of their own
	// ([Service.SignUp]); off by default.
	SignUp bool
	// Mail sends invitations; nil refuses to invite. LinkBase starts the
	// links in mail ("https://rampart.example").
	Mail     mailout.Sender
	LinkBase string
	// InvitationTTL is how long an invitation is valid (default 7 days).
	InvitationTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// NewServiceWith returns a Service with the people settings cfg.
func NewServiceWith(pool accountPool, cfg Config) *Service {
	s := NewService(pool)
	if cfg.InvitationTTL <= 0 {
		cfg.InvitationTTL = DefaultInvitationTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s.cfg = cfg
	return s
}

func (s *Service) now() time.Time {
	if s.cfg.Now == nil {
		return time.Now().UTC().Truncate(time.Microsecond)
	}
	return s.cfg.Now().UTC().Truncate(time.Microsecond)
}

// Invitation is an invitation to join an account.
type Invitation struct {
	ID        uuid.UUID
	AccountID uuid.UUID
	Email     string
	Role      string
	InvitedBy *uuid.UUID
	CreatedAt time.Time
	// SentAt is when the newest token was mailed; ExpiresAt when it stops
	// working.
	SentAt     time.Time
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	RevokedAt  *time.Time
}

func fromInvitation(r accountdb.CreateInvitationRow) Invitation {
	return Invitation{ID: r.ID, AccountID: r.AccountID, Email: r.Email, Role: r.Role, InvitedBy: r.InvitedBy,
		CreatedAt: r.CreatedAt, SentAt: r.SentAt, ExpiresAt: r.ExpiresAt, AcceptedAt: r.AcceptedAt, RevokedAt: r.RevokedAt}
}

var errNoMail = &apperr.Error{Code: apperr.Forbidden, Message: "this server sends no mail, so it cannot invite (its operator sets a mail relay with RAMPART_SMTP_RELAY)"}

// normalizeAddress checks an e-mail address given for a person and returns
// it bare and in lower case.
func normalizeAddress(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 || !strings.Contains(s, "@") {
		return "", apperr.Invalid(field, "%q is not an e-mail address", s)
	}
	return strings.ToLower(s), nil
}

func checkRole(role string) error {
	if role != RoleOwner && role != RoleMember {
		return apperr.Invalid("role", "role must be owner or member")
	}
	return nil
}

func checkName(field, name string, required bool) (string, error) {
	name = strings.TrimSpace(name)
	if (required && name == "") || utf8.RuneCountInString(name) > 200 || !utf8.ValidString(name) ||
		strings.ContainsFunc(name, unicode.IsControl) {
		return "", apperr.Invalid(field, "%s must be 1 to 200 characters, without control characters", field)
	}
	return name, nil
}

// Invite invites the address into the account with the role and mails it
// the invitation's token; it needs the manage-users permission. An address
// already a member, or with an open invitation, is a CONFLICT (resend or
// revoke that one). The token is stored only as its hash, and the mail
// goes out before the invitation is stored: when the relay refuses it,
// nothing is stored and the error says so.
func (s *Service) Invite(ctx context.Context, accountID uuid.UUID, email, role string) (Invitation, error) {
	if err := s.authz.Authorize(ctx, access.InAccount(accountID), access.ManageUsers); err != nil {
		return Invitation{}, err
	}
	email, err := normalizeAddress("email", email)
	if err != nil {
		return Invitation{}, err
	}
	if err := checkRole(role); err != nil {
		return Invitation{}, err
	}
	if s.cfg.Mail == nil {
		return Invitation{}, errNoMail
	}
	p, _ := access.FromContext(ctx)
	var inviter *uuid.UUID
	if !p.IsAPIToken() {
		inviter = &p.UserID
	}
	var inv Invitation
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := accountdb.New(tx)
		if _, err := q.MemberByEmail(ctx, accountdb.MemberByEmailParams{AccountID: accountID, Email: email}); err == nil {
			return apperr.Conflictf("%s is a member of this account already", email)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("look up member: %w", err)
		}
		now := s.now()
		if err := q.RevokeExpiredInvitations(ctx, accountdb.RevokeExpiredInvitationsParams{AccountID: accountID, Email: email, Now: &now}); err != nil {
			return fmt.Errorf("end expired invitations: %w", err)
		}
		secret, hash := auth.NewSecret(invitationPrefix)
		r, err := q.CreateInvitation(ctx, accountdb.CreateInvitationParams{AccountID: accountID, Email: email, Role: role,
			TokenHash: hash, InvitedBy: inviter, Now: now, ExpiresAt: now.Add(s.cfg.InvitationTTL)})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return apperr.Conflictf("%s has an open invitation to this account already: resend or revoke it", email)
		}
		if err != nil {
			return fmt.Errorf("store invitation: %w", err)
		}
		inv = fromInvitation(r)
		return s.mailInvitation(ctx, q, inv, secret)
	})
	return inv, err
}

// mailInvitation sends the invitation's token to its address.
func (s *Service) mailInvitation(ctx context.Context, q *accountdb.Queries, inv Invitation, secret string) error {
	acct, err := q.AccountByID(ctx, inv.AccountID)
	if err != nil {
		return fmt.Errorf("load account: %w", err)
	}
	by := "An owner"
	if inv.InvitedBy != nil {
		if u, err := q.UserNameEmail(ctx, *inv.InvitedBy); err == nil {
			by = u.Email
			if u.Name != "" {
				by = u.Name + " (" + u.Email + ")"
			}
		}
	}
	link := s.cfg.LinkBase + "/accept-invitation?token=" + url.QueryEscape(secret)
	body := fmt.Sprintf(`%s invited you to join the account %q on Rampart as %s.

To accept, open this link before %s:

  %s

or call the API's acceptInvitation mutation with the token:

  %s

If you have a Rampart user with this address (%s), sign in first and
accept as that user; otherwise choose your name and password as you
accept. The invitation works once and only for this address.
`, by, acct.Name, inv.Role, inv.ExpiresAt.UTC().Format(time.RFC1123), link, secret, inv.Email)
	err = s.cfg.Mail.Send(ctx, mailout.Message{To: inv.Email, Subject: "Join " + sanitizeSubject(acct.Name) + " on Rampart", Body: body})
	if err != nil {
		return &apperr.Error{Code: apperr.Internal, Message: "the invitation mail could not be sent; nothing was saved", Err: err}
	}
	return nil
}

func sanitizeSubject(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// Invitations lists the account's open invitations (not accepted or
// revoked; expired ones included, with their expiry), newest first; it
// needs the manage-users permission.
func (s *Service) Invitations(ctx context.Context, accountID uuid.UUID) ([]Invitation, error) {
	if err := s.authz.Authorize(ctx, access.InAccount(accountID), access.ManageUsers); err != nil {
		return nil, err
	}
	rows, err := accountdb.New(s.pool).OpenInvitations(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list invitations: %w", err)
	}
	out := make([]Invitation, len(rows))
	for i, r := range rows {
		out[i] = fromInvitation(accountdb.CreateInvitationRow(r))
	}
	return out, nil
}

// ResendInvitation mails an open invitation again with a new token and a
// new lifetime; the old token stops working. It needs the manage-users
// permission; an invitation accepted, revoked or of another account is
// NOT_FOUND.
func (s *Service) ResendInvitation(ctx context.Context, accountID, id uuid.UUID) (Invitation, error) {
	if err := s.authz.Authorize(ctx, access.InAccount(accountID), access.ManageUsers); err != nil {
		return Invitation{}, err
	}
	if s.cfg.Mail == nil {
		return Invitation{}, errNoMail
	}
	var inv Invitation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := accountdb.New(tx)
		secret, hash := auth.NewSecret(invitationPrefix)
		now := s.now()
		r, err := q.ResendInvitation(ctx, accountdb.ResendInvitationParams{ID: id, AccountID: accountID, TokenHash: hash, Now: now, ExpiresAt: now.Add(s.cfg.InvitationTTL)})
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.NotFoundf("no open invitation with this id in this account")
		}
		if err != nil {
			return fmt.Errorf("renew invitation: %w", err)
		}
		inv = fromInvitation(accountdb.CreateInvitationRow(r))
		return s.mailInvitation(ctx, q, inv, secret)
	})
	return inv, err
}

// RevokeInvitation withdraws an invitation that is not accepted; its token
// stops working. It needs the manage-users permission; revoking twice is
// not an error.
func (s *Service) RevokeInvitation(ctx context.Context, accountID, id uuid.UUID) (Invitation, error) {
	if err := s.authz.Authorize(ctx, access.InAccount(accountID), access.ManageUsers); err != nil {
		return Invitation{}, err
	}
	now := s.now()
	r, err := accountdb.New(s.pool).RevokeInvitation(ctx, accountdb.RevokeInvitationParams{ID: id, AccountID: accountID, Now: &now})
	if errors.Is(err, pgx.ErrNoRows) {
		return Invitation{}, apperr.NotFoundf("no open invitation with this id in this account")
	}
	if err != nil {
		return Invitation{}, fmt.Errorf("revoke invitation: %w", err)
	}
	return fromInvitation(accountdb.CreateInvitationRow(r)), nil
}

// NewUser is who accepts an invitation (or signs up) without a user yet.
type NewUser struct {
	Name string
	// Hash checks and hashes the chosen password; it is called only once
	// everything else has been checked.
	Hash func() (string, error)
}

// Accepted is the outcome of [Service.AcceptInvitation].
type Accepted struct {
	AccountID   uuid.UUID
	AccountName string
	Role        string
	UserID      uuid.UUID
	// NewUser reports that the user was created by the acceptance.
	NewUser bool
}

func badInvitation(msg string) error { return apperr.Invalid("token", "%s", msg) }

// AcceptInvitation accepts an invitation by its token. A signed-in user
// accepts for themself, and only an invitation sent to their own address
// (FORBIDDEN otherwise; an API token cannot accept). Without a principal,
// newUser creates the user for the invited address, unless the address has
// a user already (CONFLICT: sign in and accept). The token works once,
// before it expires; a used, revoked, expired or unknown token is
// BAD_USER_INPUT saying which.
func (s *Service) AcceptInvitation(ctx context.Context, token string, newUser *NewUser) (Accepted, error) {
	hash, ok := auth.ParseSecret(token, invitationPrefix)
	if !ok {
		return Accepted{}, badInvitation("this is not an invitation token")
	}
	p, signedIn := access.FromContext(ctx)
	switch {
	case signedIn && p.IsAPIToken():
		return Accepted{}, &apperr.Error{Code: apperr.Forbidden, Message: "an API token cannot accept an invitation; the invited person does"}
	case !signedIn && newUser == nil:
		return Accepted{}, apperr.Invalid("password", "sign in to accept as an existing user, or give a name and password to create one")
	}
	var name string
	if !signedIn {
		var err error
		if name, err = checkName("name", newUser.Name, true); err != nil {
			return Accepted{}, err
		}
	}
	var out Accepted
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := accountdb.New(tx)
		inv, err := q.InvitationByHashForUpdate(ctx, hash)
		now := s.now()
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return badInvitation("this invitation does not exist (a resent invitation's old token is dead; use the newest mail)")
		case err != nil:
			return fmt.Errorf("load invitation: %w", err)
		case subtle.ConstantTimeCompare(inv.TokenHash, hash) != 1:
			return badInvitation("this invitation does not exist")
		case inv.AcceptedAt != nil:
			return badInvitation("this invitation has been used already")
		case inv.RevokedAt != nil:
			return badInvitation("this invitation has been revoked")
		case !now.Before(inv.ExpiresAt):
			return badInvitation("this invitation has expired; ask for a new one")
		}
		out = Accepted{AccountID: inv.AccountID, AccountName: inv.AccountName, Role: inv.Role}
		if signedIn {
			u, err := q.UserByID(ctx, p.UserID)
			if err != nil {
				return fmt.Errorf("load user: %w", err)
			}
			if u.Email != inv.Email {
				return &apperr.Error{Code: apperr.Forbidden, Message: "this invitation was sent to another e-mail address than yours; sign in as the invited user"}
			}
			out.UserID = u.ID
		} else {
			if _, err := q.UserByEmail(ctx, inv.Email); err == nil {
				return apperr.Conflictf("a user with the address %s exists: sign in as that user and accept the invitation", inv.Email)
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("look up user: %w", err)
			}
			pw, err := newUser.Hash()
			if err != nil {
				return err
			}
			u, err := q.CreateUser(ctx, accountdb.CreateUserParams{Email: inv.Email, Name: name, PasswordHash: pw})
			if errors.Is(err, pgx.ErrNoRows) {
				return apperr.Conflictf("a user with the address %s exists: sign in as that user and accept the invitation", inv.Email)
			}
			if err != nil {
				return fmt.Errorf("create user: %w", err)
			}
			out.UserID, out.NewUser = u.ID, true
		}
		if err := q.JoinAccount(ctx, accountdb.JoinAccountParams{AccountID: inv.AccountID, UserID: out.UserID, Role: inv.Role}); err != nil {
			return fmt.Errorf("join account: %w", err)
		}
		role, err := q.MemberRole(ctx, accountdb.MemberRoleParams{AccountID: inv.AccountID, UserID: out.UserID})
		if err != nil {
			return fmt.Errorf("read role: %w", err)
		}
		out.Role = role
		return q.MarkInvitationAccepted(ctx, accountdb.MarkInvitationAcceptedParams{ID: inv.ID, UserID: &out.UserID, Now: &now})
	})
	return out, err
}

// SignUp creates a user and a new account with them as its owner, when
// the operator allows sign-up (FORBIDDEN otherwise, before anything else).
// admit, the caller's throttling (auth.Admit), runs next; then an address
// that has a user already is a CONFLICT.
func (s *Service) SignUp(ctx context.Context, email, accountName string, u NewUser, admit func() error) (Account, User, error) {
	if !s.cfg.SignUp {
		return Account{}, User{}, &apperr.Error{Code: apperr.Forbidden, Message: "sign-up is off on this server: ask an account owner for an invitation"}
	}
	if err := admit(); err != nil {
		return Account{}, User{}, err
	}
	email, err := normalizeAddress("email", email)
	if err != nil {
		return Account{}, User{}, err
	}
	name, err := checkName("name", u.Name, true)
	if err != nil {
		return Account{}, User{}, err
	}
	if _, err := checkName("accountName", accountName, true); err != nil {
		return Account{}, User{}, err
	}
	exists, err := s.UserExists(ctx, email)
	if err != nil {
		return Account{}, User{}, err
	}
	if exists {
		return Account{}, User{}, &apperr.Error{Code: apperr.Conflict, Field: "email", Message: "a user with this address exists: sign in, or reset the password"}
	}
	hash, err := u.Hash()
	if err != nil {
		return Account{}, User{}, err
	}
	return s.CreateOwner(ctx, NewOwner{Email: email, Name: name, PasswordHash: hash, AccountName: accountName})
}

// RemoveMember removes a user from the account. Owners (the manage-users
// permission) remove anyone; any member may remove themself (leave). The
// last owner can neither leave nor be removed (CONFLICT): transfer
// ownership first. The check runs under row locks on the account's owners,
// so two concurrent removals cannot leave the account without one.
func (s *Service) RemoveMember(ctx context.Context, accountID, userID uuid.UUID) error {
	if err := s.authorizePeople(ctx, accountID, userID); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := accountdb.New(tx)
		owners, err := q.LockOwners(ctx, accountID)
		if err != nil {
			return fmt.Errorf("lock owners: %w", err)
		}
		role, err := q.MemberRole(ctx, accountdb.MemberRoleParams{AccountID: accountID, UserID: userID})
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.NotFoundf("this user is not a member of the account")
		}
		if err != nil {
			return fmt.Errorf("read role: %w", err)
		}
		if role == RoleOwner && len(owners) <= 1 {
			return apperr.Conflictf("the last owner cannot leave or be removed: make another member owner first (transferOwnership)")
		}
		if _, err := q.RemoveMember(ctx, accountdb.RemoveMemberParams{AccountID: accountID, UserID: userID}); err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
		return nil
	})
}

// authorizePeople lets a user act on their own membership, and needs the
// manage-users permission for anyone else's.
func (s *Service) authorizePeople(ctx context.Context, accountID, userID uuid.UUID) error {
	p, err := access.Require(ctx)
	if err != nil {
		return err
	}
	if !p.IsAPIToken() && p.UserID == userID {
		return s.authz.See(ctx, accountID)
	}
	return s.authz.Authorize(ctx, access.InAccount(accountID), access.ManageUsers)
}

// ChangeMemberRole sets a member's role; it needs the manage-users
// permission. Demoting the last owner is a CONFLICT, checked under row
// locks as in [Service.RemoveMember].
func (s *Service) ChangeMemberRole(ctx context.Context, accountID, userID uuid.UUID, role string) (Member, error) {
	if err := s.authz.Authorize(ctx, access.InAccount(accountID), access.ManageUsers); err != nil {
		return Member{}, err
	}
	if err := checkRole(role); err != nil {
		return Member{}, err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := accountdb.New(tx)
		owners, err := q.LockOwners(ctx, accountID)
		if err != nil {
			return fmt.Errorf("lock owners: %w", err)
		}
		cur, err := q.MemberRole(ctx, accountdb.MemberRoleParams{AccountID: accountID, UserID: userID})
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.NotFoundf("this user is not a member of the account")
		}
		if err != nil {
			return fmt.Errorf("read role: %w", err)
		}
		if cur == RoleOwner && role != RoleOwner && len(owners) <= 1 {
			return apperr.Conflictf("the last owner cannot be demoted: make another member owner first (transferOwnership)")
		}
		_, err = q.SetMemberRole(ctx, accountdb.SetMemberRoleParams{AccountID: accountID, UserID: userID, Role: role})
		return err
	})
	if err != nil {
		return Member{}, err
	}
	return s.member(ctx, accountID, userID)
}

// TransferOwnership makes a member the owner and the signed-in owner a
// member, in one transaction. Only an owner of the account itself may
// (not an MSP's owner, not an API token: FORBIDDEN).
func (s *Service) TransferOwnership(ctx context.Context, accountID, userID uuid.UUID) error {
	if err := s.authz.Authorize(ctx, access.InAccount(accountID), access.ManageUsers); err != nil {
		return err
	}
	p, _ := access.FromContext(ctx)
	notOwner := &apperr.Error{Code: apperr.Forbidden, Message: "only an owner of this account can transfer its ownership"}
	if p.IsAPIToken() {
		return notOwner
	}
	if p.UserID == userID {
		return apperr.Invalid("userId", "you cannot transfer ownership to yourself")
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := accountdb.New(tx)
		if _, err := q.LockOwners(ctx, accountID); err != nil {
			return fmt.Errorf("lock owners: %w", err)
		}
		mine, err := q.MemberRole(ctx, accountdb.MemberRoleParams{AccountID: accountID, UserID: p.UserID})
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && mine != RoleOwner) {
			return notOwner
		}
		if err != nil {
			return fmt.Errorf("read role: %w", err)
		}
		n, err := q.SetMemberRole(ctx, accountdb.SetMemberRoleParams{AccountID: accountID, UserID: userID, Role: RoleOwner})
		if err != nil {
			return fmt.Errorf("set role: %w", err)
		}
		if n == 0 {
			return apperr.NotFoundf("this user is not a member of the account; invite them first")
		}
		_, err = q.SetMemberRole(ctx, accountdb.SetMemberRoleParams{AccountID: accountID, UserID: p.UserID, Role: RoleMember})
		return err
	})
}

// member reads one membership (no authorisation: callers have checked).
func (s *Service) member(ctx context.Context, accountID, userID uuid.UUID) (Member, error) {
	q := accountdb.New(s.pool)
	role, err := q.MemberRole(ctx, accountdb.MemberRoleParams{AccountID: accountID, UserID: userID})
	if err != nil {
		return Member{}, fmt.Errorf("read role: %w", err)
	}
	u, err := q.UserByID(ctx, userID)
	if err != nil {
		return Member{}, fmt.Errorf("load user: %w", err)
	}
	return Member{User: User{ID: u.ID, Email: u.Email, Name: u.Name, CreatedAt: u.CreatedAt}, Role: role}, nil
}

// Expired reports whether the invitation's token has expired by the
// service's clock.
func (s *Service) Expired(inv Invitation) bool { return !s.now().Before(inv.ExpiresAt) }
