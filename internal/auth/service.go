package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/auth/authdb"
	"github.com/rampartmail/rampart/internal/mailout"
)

// Defaults for the zero fields of [Config].
const (
	DefaultIssuer            = "rampart"
	DefaultAudience          = "rampart-api"
	DefaultRefreshTTL        = 30 * 24 * time.Hour
	DefaultSessionLifetime   = 90 * 24 * time.Hour
	DefaultResetTTL          = time.Hour
	DefaultLoginWindow       = 24 * time.Hour
	DefaultLoginBackoff      = time.Second
	DefaultLoginBackoffMax   = 15 * time.Minute
	DefaultMaxPairFailures   = 5
	DefaultMaxEmailFailures  = 10
	DefaultMaxClientFailures = 50
)

// Config configures a [Service]. The zero value of every field means its
// default.
type Config struct {
	// Issuer and Audience are the iss and aud of access tokens, checked on
	// every request. Defaults "rampart" and "rampart-api".
	Issuer   string
	Audience string

	// AccessTTL is the lifetime of an access token: default 10 minutes, at
	// most [MaxAccessTTL].
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token: default 30 days. Each
	// refresh issues a new token with a new lifetime, so a session ends after
	// RefreshTTL without use.
	RefreshTTL time.Duration
	// SessionLifetime is the absolute lifetime of a session: however often
	// it is refreshed, its refresh tokens and access tokens stop working
	// this long after the login (default 90 days; RefreshTTL is the
	// idle limit within it).
	SessionLifetime time.Duration
	// ResetTTL is the lifetime of a password reset token (default 1 hour).
	ResetTTL time.Duration
	// Mail sends password reset mail; nil refuses requests for it.
	// LinkBase is the start of the link in it ("https://rampart.example").
	Mail     mailout.Sender
	LinkBase string

	// Params are the argon2id parameters for the dummy hash that unknown
	// e-mail addresses are checked against; they should equal those the
	// stored hashes were made with. Default [DefaultParams]. Tests use
	// cheaper ones.
	Params Params

	// Login throttling (see [Service.Login]). LoginWindow is how long a
	// failed login counts (default a day). Each throttling bucket allows
	// some failures freely; after that, the next attempt must wait
	// LoginBackoff (default 1 s) after the bucket's newest failure, twice
	// as long for each further failure, up to LoginBackoffMax (default 15
	// minutes; at most LoginWindow). The free failures: MaxPairFailures
	// per e-mail address and client (and per known client; default 5),
	// MaxEmailFailures per e-mail address from all unknown clients
	// (default 10) and MaxClientFailures per client address over all
	// e-mail addresses (default 50).
	LoginWindow       time.Duration
	LoginBackoff      time.Duration
	LoginBackoffMax   time.Duration
	MaxPairFailures   int
	MaxEmailFailures  int
	MaxClientFailures int
	// KnownClientTTL is the lifetime of a known-client token (default 180
	// days); each login with it issues a new one.
	KnownClientTTL time.Duration

	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.AccessTTL == 0 {
		c.AccessTTL = DefaultAccessTTL
	}
	if c.RefreshTTL == 0 {
		c.RefreshTTL = DefaultRefreshTTL
	}
	if c.SessionLifetime == 0 {
		c.SessionLifetime = DefaultSessionLifetime
	}
	if c.ResetTTL == 0 {
		c.ResetTTL = DefaultResetTTL
	}
	if c.Params == (Params{}) {
		c.Params = DefaultParams()
	}
	if c.LoginWindow == 0 {
		c.LoginWindow = DefaultLoginWindow
	}
	if c.LoginBackoff == 0 {
		c.LoginBackoff = DefaultLoginBackoff
	}
	if c.LoginBackoffMax == 0 {
		c.LoginBackoffMax = max(DefaultLoginBackoffMax, c.LoginBackoff)
	}
	if c.MaxPairFailures == 0 {
		c.MaxPairFailures = DefaultMaxPairFailures
	}
	if c.KnownClientTTL == 0 {
		c.KnownClientTTL = DefaultKnownClientTTL
	}
	if c.MaxEmailFailures == 0 {
		c.MaxEmailFailures = DefaultMaxEmailFailures
	}
	if c.MaxClientFailures == 0 {
		c.MaxClientFailures = DefaultMaxClientFailures
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.AccessTTL < 0 || c.AccessTTL > MaxAccessTTL:
		return fmt.Errorf("access token lifetime %v outside (0, %v]", c.AccessTTL, MaxAccessTTL)
	case c.SessionLifetime < 0 || c.ResetTTL < 0:
		return errors.New("session lifetime and reset token lifetime must be positive")
	case c.RefreshTTL <= c.AccessTTL:
		return fmt.Errorf("refresh token lifetime %v must exceed the access token lifetime %v", c.RefreshTTL, c.AccessTTL)
	case c.LoginWindow < 0 || c.LoginBackoff < 0 || c.MaxPairFailures < 0 || c.MaxEmailFailures < 0 || c.MaxClientFailures < 0 || c.KnownClientTTL < 0:
		return errors.New("login throttling settings must not be negative")
	case c.LoginBackoffMax < c.LoginBackoff:
		return fmt.Errorf("login backoff ceiling %v is below the first backoff %v", c.LoginBackoffMax, c.LoginBackoff)
	case c.LoginBackoffMax > c.LoginWindow:
		// A failure older than the window no longer counts, so a longer
		// ceiling could never be reached.
		return fmt.Errorf("login backoff ceiling %v exceeds the window failures count in, %v", c.LoginBackoffMax, c.LoginWindow)
	}
	if err := c.Params.validate(); err != nil {
		return err
	}
	return nil
}

// Service authenticates users and API tokens and manages their sessions. It
// is safe for concurrent use.
type Service struct {
	pool   *pgxpool.Pool
	q      *authdb.Queries
	access *accessTokens
	known  *knownClients
	cfg    Config
	log    *slog.Logger

	// dummyHash is what a login for an unknown e-mail address is verified
	// against, so that it costs as much time as a known one.
	dummyHash string
	// hashSlots bounds concurrent argon2id computations: each takes
	// Params.Memory, and a burst of logins must not exhaust the host's
	// memory. Logins beyond the bound wait their turn.
	hashSlots chan struct{}
}

// NewService returns a Service storing its state in pool and signing access
// tokens with keys. cfg is checked and its zero fields set to defaults; log
// receives security events (refresh token reuse, throttled logins). It
// computes one password hash, so it takes as long as a login.
func NewService(pool *pgxpool.Pool, keys *KeySet, cfg Config, log *slog.Logger) (*Service, error) {
	if pool == nil || keys == nil {
		return nil, errors.New("new auth service: pool and key set are required")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("new auth service: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dummy, err := cfg.Params.Hash(rand.Text() + rand.Text())
	if err != nil {
		return nil, fmt.Errorf("new auth service: dummy hash: %w", err)
	}
	access := newAccessTokens(keys, cfg.Issuer, cfg.Audience, cfg.AccessTTL, cfg.Now)
	return &Service{
		pool:      pool,
		q:         authdb.New(pool),
		access:    access,
		known:     newKnownClients(keys, cfg.Issuer, cfg.KnownClientTTL, cfg.Now, access.key),
		cfg:       cfg,
		log:       log,
		dummyHash: dummy,
		hashSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
	}, nil
}

// now is the service clock at the precision PostgreSQL stores.
func (s *Service) now() time.Time {
	return s.cfg.Now().UTC().Truncate(time.Microsecond)
}

// verifyPassword is VerifyPassword within the bound on concurrent hashing.
func (s *Service) verifyPassword(ctx context.Context, encoded, pw string) (bool, error) {
	select {
	case s.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-s.hashSlots }()
	return VerifyPassword(encoded, pw)
}

// Identity is who presented a bearer token. It is one of two kinds:
//
//   - A user session (an access token from [Service.Login] or
//     [Service.Refresh]): UserID and SessionID are set; APITokenID and
//     AccountID are nil. What the user may do in which account is decided
//     by the authorisation package from UserID.
//   - An API token: APITokenID and AccountID are set; UserID and SessionID
//     are uuid.Nil. The token acts as the account it is scoped to, not as
//     the user who created it: it keeps working when that user leaves or is
//     disabled, and it gains nothing from that user's other memberships.
//     What acting as the account covers is for the authorisation package.
type Identity struct {
	UserID     uuid.UUID  // the signed-in user; uuid.Nil for an API token
	SessionID  uuid.UUID  // the refresh-token family; uuid.Nil for an API token
	APITokenID *uuid.UUID // set for an API token
	AccountID  *uuid.UUID // set for an API token: the one account it acts in
	ReadOnly   bool       // a read-only API token
}

// IsAPIToken reports whether the identity is an API token.
func (id Identity) IsAPIToken() bool { return id.APITokenID != nil }

// Authenticate returns the identity a bearer token (the value after
// "Bearer " in the Authorization header) proves.
//
// A token starting with "rmp_" is an API token: it must exist and not be
// revoked. Anything else is taken as an access token: it must be an EdDSA
// JWT signed by a key in the key set, within its lifetime, for this issuer
// and audience; and its session must not be revoked (logout, refresh token
// reuse) nor its user disabled, which costs one indexed query.
//
// A token that proves nothing yields an error matching [ErrUnauthenticated];
// any other error is a failure of the service (the database), not of the
// client.
func (s *Service) Authenticate(ctx context.Context, bearer string) (Identity, error) {
	if strings.HasPrefix(bearer, apiTokenPrefix) {
		return s.authenticateAPIToken(ctx, bearer)
	}
	at, err := s.access.verify(bearer)
	if err != nil {
		return Identity{}, err
	}
	row, err := s.q.GetSession(ctx, at.TokenID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Identity{}, unauthenticatedf("session not found")
	case err != nil:
		return Identity{}, fmt.Errorf("authenticate: load session: %w", err)
	case row.UserID != at.UserID || row.FamilyID != at.SessionID:
		return Identity{}, unauthenticatedf("session does not match the token")
	case row.RevokedAt != nil:
		return Identity{}, unauthenticatedf("session revoked")
	case row.UserDisabledAt != nil:
		return Identity{}, unauthenticatedf("user disabled")
	case !s.now().Before(row.SessionStartedAt.Add(s.cfg.SessionLifetime)):
		return Identity{}, unauthenticatedf("session lifetime over")
	}
	return Identity{UserID: at.UserID, SessionID: at.SessionID}, nil
}

// Principal is the identity as the authorisation layer sees it.
func (id Identity) Principal() access.Principal {
	if id.IsAPIToken() {
		return access.Principal{APITokenID: *id.APITokenID, TokenAccountID: *id.AccountID, ReadOnly: id.ReadOnly}
	}
	return access.Principal{UserID: id.UserID, SessionID: id.SessionID}
}
