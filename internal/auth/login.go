package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/auth/authdb"
)

// maxEmailLen bounds the e-mail addresses stored in login_failures; nothing
// longer can be a user (RFC 5321 allows 254 octets in a path).
const maxEmailLen = 320

// Tokens are what a login or a refresh hands to the client.
type Tokens struct {
	// AccessToken is a short-lived JWT for the Authorization header.
	AccessToken     string
	AccessExpiresAt time.Time
	// RefreshToken ("rrt_…") buys new Tokens once, through
	// [Service.Refresh]; keep it out of reach of scripts (an HttpOnly
	// cookie) and never log it.
	RefreshToken     string
	RefreshExpiresAt time.Time
	// KnownClient is set by [Service.Login] only: a token that marks this
	// client as known to the user's account. The client keeps it and
	// presents it with its next logins ([LoginClient].KnownClient), so
	// that failures elsewhere do not throttle it.
	KnownClient          string
	KnownClientExpiresAt time.Time
}

// LoginClient is who attempts a login.
type LoginClient struct {
	// Addr is the client's address (an IP address, or IP:port), as the
	// HTTP layer determined it from the peer and trusted proxies.
	Addr string
	// KnownClient is the known-client token the client was given at an
	// earlier successful login ([Tokens].KnownClient), or "".
	KnownClient string
	// UserAgent is the client's User-Agent header, shown in the list of
	// sessions; it proves nothing.
	UserAgent string
}

// Login checks an e-mail address and password and starts a session.
//
// A wrong password, an unknown address and a disabled user all return
// [ErrInvalidCredentials] after the same amount of hashing, so neither the
// answer nor its timing tells which addresses have accounts. A successful
// login returns, besides the session's tokens, a known-client token for the
// client to keep (a fresh one, with the same client id, when it presented a
// valid one).
//
// # Throttling
//
// Failed logins are recorded in PostgreSQL, so every replica sees them,
// and counted in buckets. Each bucket lets some failures pass freely
// (within [Config].LoginWindow); after that an attempt must wait
// [Config].LoginBackoff after the bucket's newest failure, doubled with
// each further failure up to [Config].LoginBackoffMax. Until then Login
// returns a [*RateLimitError] without looking at the password. Nothing is
// ever locked for longer than the ceiling: an attacker keeps one guess per
// ceiling and bucket, no more, and no one is shut out for good.
//
// Which buckets an attempt must pass depends on who makes it:
//
//   - A known client (it presents a valid known-client token issued to the
//     user, by this or any replica) passes only its own bucket: its own
//     failures at this account, MaxPairFailures free. Failures of any
//     other client, however many, do not slow it: an attacker cannot lock
//     the owner out of a device the owner has logged in from.
//   - Any other client passes three: its failures at this e-mail address
//     (MaxPairFailures free), the e-mail address's failures from all
//     unknown clients (MaxEmailFailures: guessing one password from many
//     addresses), and its failures at any address (MaxClientFailures: one
//     host spraying many accounts). A client is an IPv4 address or an IPv6
//     /64.
//
// The owner on a new device is thus slowed while an attack on the account
// goes on, by at most the ceiling per attempt; their known devices are not.
// A client address is not taken as proof of having logged in before:
// addresses are shared (NAT, carrier-grade NAT, proxies) and change
// (mobile networks), and anyone behind the owner's address would share the
// exemption. The token names one client, survives address changes, cannot
// be forged without the signing key, and is bound to the user, so a token
// of the attacker's own account does not help against another.
//
// Second factor: once MFA exists, an attempt with a valid second factor
// should be admitted on its own path (see [path]) that keeps the pair and
// client buckets but skips the e-mail bucket, so that an owner with the
// factor gets in during an attack even from a new device; a wrong factor is
// a failure in the pair bucket.
//
// Each attempt is recorded as a failure before the buckets are read, and
// the record is removed if the attempt is throttled, or, with the other
// failures of its own bucket (pair or known client), if it succeeds.
// Counting the attempt first means that a burst of parallel attempts
// cannot all pass the check before any failure is recorded; attempts in
// flight count against each other, so a burst beyond the free failures may
// be refused entirely. An attempt abandoned halfway (a cancelled context)
// counts as a failure.
func (s *Service) Login(ctx context.Context, email, password string, from LoginClient) (Tokens, error) {
	email, valid := normalizeEmail(email)
	client := clientKey(from.Addr)
	now := s.now()

	var user authdb.GetUserForLoginRow
	found := false
	if valid {
		u, err := s.q.GetUserForLogin(ctx, email)
		switch {
		case err == nil:
			user, found = u, true
		case !errors.Is(err, pgx.ErrNoRows):
			return Tokens{}, fmt.Errorf("login: load user: %w", err)
		}
	}
	a := attempt{purpose: PurposeLogin, email: email, client: client, path: pathUnknown}
	if found && from.KnownClient != "" {
		id, err := s.known.verify(from.KnownClient, user.ID)
		if err == nil {
			a.path, a.knownClient = pathKnown, id
		} else {
			s.log.DebugContext(ctx, "login: known-client token not accepted", "client", client, "err", err)
		}
	}

	var err error
	if a.id, err = s.q.InsertLoginFailure(ctx, authdb.InsertLoginFailureParams{
		Email: email, Client: client, KnownClient: a.knownClientPtr(), CreatedAt: now, Purpose: string(a.purpose),
	}); err != nil {
		return Tokens{}, fmt.Errorf("login: record attempt: %w", err)
	}
	retry, err := s.throttle(ctx, a, now)
	if err != nil {
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	if retry > 0 {
		// Refused, not failed: it must not extend the backoff.
		if err := s.q.DeleteLoginFailure(ctx, a.id); err != nil {
			return Tokens{}, fmt.Errorf("login: forget throttled attempt: %w", err)
		}
		s.log.InfoContext(ctx, "login throttled", "client", client, "known_client", a.path == pathKnown, "retry_after", retry)
		return Tokens{}, &RateLimitError{RetryAfter: retry}
	}

	ok := false
	if len(password) <= MaxPasswordLen { // no stored hash is of a longer one
		hash := s.dummyHash
		if found {
			hash = user.PasswordHash
		}
		if ok, err = s.verifyPassword(ctx, hash, password); err != nil {
			return Tokens{}, fmt.Errorf("login: verify password: %w", err)
		}
	}
	if !found || !ok || user.DisabledAt != nil {
		if found && ok {
			s.log.InfoContext(ctx, "login refused: user disabled", "user_id", user.ID)
		}
		return Tokens{}, ErrInvalidCredentials
	}

	tokens, err := s.startSession(ctx, user.ID, from)
	if err != nil {
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	if err := s.forget(ctx, a); err != nil {
		// The session exists; leftover failures only make throttling stricter.
		s.log.WarnContext(ctx, "login: clear failures", "user_id", user.ID, "err", err)
	}
	if a.path != pathKnown {
		a.knownClient = uuid.New()
	}
	if tokens.KnownClient, tokens.KnownClientExpiresAt, err = s.known.sign(user.ID, a.knownClient); err != nil {
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	return tokens, nil
}

// path is the way an attempt is admitted: which buckets it must pass.
type path int

const (
	// pathUnknown: a client without a valid known-client token. Buckets:
	// pair, e-mail, client.
	pathUnknown path = iota
	// pathKnown: a client with a valid known-client token. Bucket: its own.
	pathKnown
	// A valid second factor, once MFA exists, would add a path with the
	// pair and client buckets only; see [Service.Login].
)

// bucket is a set of failures counted together.
type bucket int

const (
	bucketPair        bucket = iota // one unknown client at one e-mail address
	bucketEmail                     // one e-mail address, all unknown clients
	bucketClient                    // one unknown client, all e-mail addresses
	bucketKnownClient               // one known client at its user's address
)

// buckets are the buckets an attempt on path must pass.
func (p path) buckets() []bucket {
	if p == pathKnown {
		return []bucket{bucketKnownClient}
	}
	return []bucket{bucketPair, bucketEmail, bucketClient}
}

// attempt is one login attempt being decided.
type attempt struct {
	id          int64 // its login_failures row
	purpose     Purpose
	email       string
	client      string // clientKey of the address
	path        path
	knownClient uuid.UUID // set on pathKnown
}

func (a attempt) knownClientPtr() *uuid.UUID {
	if a.path != pathKnown {
		return nil
	}
	return &a.knownClient
}

// free is how many failures a bucket allows before backoff.
func (s *Service) free(b bucket) int {
	switch b {
	case bucketEmail:
		return s.cfg.MaxEmailFailures
	case bucketClient:
		return s.cfg.MaxClientFailures
	default:
		return s.cfg.MaxPairFailures
	}
}

// backoff is how long after its newest failure a bucket holding failures
// (free of them allowed) admits the next attempt: 0 while failures < free,
// then LoginBackoff doubled for each failure beyond, up to LoginBackoffMax.
func (s *Service) backoff(failures, free int) time.Duration {
	if failures < free {
		return 0
	}
	d := s.cfg.LoginBackoff
	for i := free; i < failures && d < s.cfg.LoginBackoffMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.LoginBackoffMax)
}

// throttle returns how long the client must wait, or 0 if the attempt may
// proceed: the longest wait any of its buckets imposes. The attempt itself
// is already recorded and not counted; other attempts in flight are.
func (s *Service) throttle(ctx context.Context, a attempt, now time.Time) (time.Duration, error) {
	since := now.Add(-s.cfg.LoginWindow)
	var until time.Time
	for _, b := range a.path.buckets() {
		failures, newest, err := s.failures(ctx, b, a, since)
		if err != nil {
			return 0, err
		}
		if wait := s.backoff(int(failures), s.free(b)); wait > 0 {
			until = later(until, newest.Add(wait))
		}
	}
	if !until.After(now) {
		return 0, nil
	}
	// Whole seconds, at least one: it becomes an HTTP Retry-After.
	wait := until.Sub(now)
	return max(time.Second, (wait+time.Second-1)/time.Second*time.Second), nil
}

// failures counts a bucket's failures in the window, other than the
// attempt's own, and returns the newest.
func (s *Service) failures(ctx context.Context, b bucket, a attempt, since time.Time) (int32, time.Time, error) {
	var (
		r   authdb.PairFailuresRow
		err error
	)
	switch b {
	case bucketPair:
		r, err = s.q.PairFailures(ctx, authdb.PairFailuresParams{Email: a.email, Client: a.client, Purpose: string(a.purpose), Since: since, Attempt: a.id})
	case bucketEmail:
		var e authdb.AccountFailuresRow
		e, err = s.q.AccountFailures(ctx, authdb.AccountFailuresParams{Email: a.email, Purpose: string(a.purpose), Since: since, Attempt: a.id})
		r = authdb.PairFailuresRow(e)
	case bucketClient:
		var c authdb.ClientFailuresRow
		c, err = s.q.ClientFailures(ctx, authdb.ClientFailuresParams{Client: a.client, Purpose: string(a.purpose), Since: since, Attempt: a.id})
		r = authdb.PairFailuresRow(c)
	case bucketKnownClient:
		var k authdb.KnownClientFailuresRow
		k, err = s.q.KnownClientFailures(ctx, authdb.KnownClientFailuresParams{Email: a.email, KnownClient: a.knownClientPtr(), Since: since, Attempt: a.id})
		r = authdb.PairFailuresRow(k)
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count failures (bucket %d): %w", b, err)
	}
	return r.Failures, r.Newest, nil
}

// forget clears the failures of the successful attempt's own bucket, its
// own row included. The e-mail and client buckets keep theirs except the
// pair's: an owner's success must not hand an attacker elsewhere a fresh
// allowance, and a sprayer must not clear its record by logging in to an
// account of its own.
func (s *Service) forget(ctx context.Context, a attempt) error {
	if a.path == pathKnown {
		return s.q.DeleteKnownClientLoginFailures(ctx, authdb.DeleteKnownClientLoginFailuresParams{Email: a.email, KnownClient: a.knownClientPtr()})
	}
	return s.q.DeleteClientLoginFailures(ctx, authdb.DeleteClientLoginFailuresParams{Email: a.email, Client: a.client})
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// PruneLoginFailures deletes records of failed logins older than olderThan,
// for a periodic cleanup job, and returns how many it deleted. Records still
// inside the throttling window are kept whatever olderThan says.
func (s *Service) PruneLoginFailures(ctx context.Context, olderThan time.Duration) (int64, error) {
	n, err := s.q.PruneLoginFailures(ctx, s.now().Add(-max(olderThan, s.cfg.LoginWindow)))
	if err != nil {
		return 0, fmt.Errorf("prune login failures: %w", err)
	}
	return n, nil
}

// normalizeEmail trims and lower-cases an address. It reports false for
// strings that cannot be a stored address (too long, not UTF-8, NUL), which
// then share one throttling key and are never looked up.
func normalizeEmail(email string) (string, bool) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > maxEmailLen || !utf8.ValidString(email) || strings.IndexByte(email, 0) >= 0 {
		return "", false
	}
	return email, true
}

// clientKey returns the key failed logins of a client address are counted
// under: the address itself for IPv4 (also when IPv4-mapped), the /64 prefix
// for IPv6, without zone. client may carry a port ("192.0.2.1:5000",
// "[2001:db8::1]:5000"). Anything unparsable maps to "unknown", one shared
// key: the caller must pass the real client address.
func clientKey(client string) string {
	addr, err := netip.ParseAddr(client)
	if err != nil {
		ap, err := netip.ParseAddrPort(client)
		if err != nil {
			return "unknown"
		}
		addr = ap.Addr()
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	p, err := addr.Prefix(64)
	if err != nil {
		return "unknown"
	}
	return p.String()
}

// Purpose is what a throttled attempt is for. Each purpose counts its
// attempts in buckets of its own, with the same rules as logins: asking
// for password resets does not slow logins down, nor the reverse.
type Purpose string

// The throttled purposes.
const (
	// PurposeLogin: a password check ([Service.Login], and the current
	// password of [Service.ChangePassword]). A success forgets the
	// client's failures.
	PurposeLogin Purpose = "login"
	// PurposeReset: a request for a password reset mail. Every request
	// counts, whether or not the address has a user, so that neither the
	// answer nor the throttling tells which addresses do.
	PurposeReset Purpose = "reset"
	// PurposeSignUp: a sign-up. Every attempt counts.
	PurposeSignUp Purpose = "signup"
)

// Admit counts an attempt at purpose (PurposeReset or PurposeSignUp) for
// the e-mail address from the client and returns a [*RateLimitError] when
// the attempt must wait, as [Service.Login] does for logins: past the free
// attempts of a bucket (per address and client, per address, per client)
// each one waits a backoff doubling up to the ceiling. An admitted attempt
// stays counted.
func (s *Service) Admit(ctx context.Context, purpose Purpose, email, client string) error {
	if purpose == PurposeLogin {
		return errors.New("admit: logins are throttled by Login")
	}
	email, _ = normalizeEmail(email)
	now := s.now()
	a := attempt{purpose: purpose, email: email, client: clientKey(client), path: pathUnknown}
	var err error
	if a.id, err = s.q.InsertLoginFailure(ctx, authdb.InsertLoginFailureParams{
		Email: a.email, Client: a.client, CreatedAt: now, Purpose: string(purpose),
	}); err != nil {
		return fmt.Errorf("admit: record attempt: %w", err)
	}
	retry, err := s.throttle(ctx, a, now)
	if err != nil {
		return fmt.Errorf("admit: %w", err)
	}
	if retry > 0 {
		if err := s.q.DeleteLoginFailure(ctx, a.id); err != nil {
			return fmt.Errorf("admit: forget throttled attempt: %w", err)
		}
		s.log.InfoContext(ctx, "attempt throttled", "purpose", purpose, "client", a.client, "retry_after", retry)
		return &RateLimitError{RetryAfter: retry}
	}
	return nil
}

// maxClientDescLen bounds the description of a session's client.
const maxClientDescLen = 300

// describe is how a session's client is shown in the list of sessions:
// its address and user agent, printable and bounded.
func (c LoginClient) describe() string {
	d := strings.TrimSpace(c.Addr + " " + c.UserAgent)
	d = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, d)
	if len(d) > maxClientDescLen {
		d = d[:maxClientDescLen]
		for !utf8.ValidString(d) {
			d = d[:len(d)-1]
		}
	}
	return d
}
