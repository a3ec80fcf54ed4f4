package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

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
}

// Login checks an e-mail address and password and starts a session.
//
// client is the address of the client (an IP address, or IP:port); failures
// are counted per e-mail address and per client address (the /64 for IPv6,
// as one host usually holds a whole /64). If more than Config.MaxEmailFailures
// or Config.MaxClientFailures logins failed within Config.LoginWindow, Login
// returns a [*RateLimitError] without looking at the password. A wrong
// password, an unknown address and a disabled user all return
// [ErrInvalidCredentials] after the same amount of hashing, so neither the
// answer nor its timing tells which addresses have accounts.
//
// Each attempt is recorded as a failure before the password is checked, and
// the record is removed if the attempt is throttled or succeeds (with all
// other failures for the address). Counting the attempt first means that a
// burst of parallel attempts cannot all pass the check before any failure is
// recorded; attempts in flight count against each other, so a burst beyond
// the limit may be refused entirely. An attempt abandoned halfway (a
// cancelled context) counts as a failure.
func (s *Service) Login(ctx context.Context, email, password, client string) (Tokens, error) {
	email, valid := normalizeEmail(email)
	client = clientKey(client)
	now := s.now()

	attempt, err := s.q.InsertLoginFailure(ctx, authdb.InsertLoginFailureParams{Email: email, Client: client, CreatedAt: now})
	if err != nil {
		return Tokens{}, fmt.Errorf("login: record attempt: %w", err)
	}
	retry, err := s.throttle(ctx, email, client, now)
	if err != nil {
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	if retry > 0 {
		// Refused, not failed: it must not extend the lockout.
		if err := s.q.DeleteLoginFailure(ctx, attempt); err != nil {
			return Tokens{}, fmt.Errorf("login: forget throttled attempt: %w", err)
		}
		s.log.InfoContext(ctx, "login throttled", "client", client, "retry_after", retry)
		return Tokens{}, &RateLimitError{RetryAfter: retry}
	}

	var user authdb.GetUserForLoginRow
	found := false
	if valid {
		user, err = s.q.GetUserForLogin(ctx, email)
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, pgx.ErrNoRows):
			return Tokens{}, fmt.Errorf("login: load user: %w", err)
		}
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

	tokens, err := s.startSession(ctx, user.ID)
	if err != nil {
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	if err := s.q.DeleteLoginFailuresForEmail(ctx, email); err != nil {
		// The session exists; leftover failures only make throttling stricter.
		s.log.WarnContext(ctx, "login: clear failures", "user_id", user.ID, "err", err)
	}
	return tokens, nil
}

// throttle returns how long the client must wait, or 0 if the attempt may
// proceed. The attempt itself is already recorded, so the limit is exceeded
// when a failure exists at 0-based position limit among the newest; the
// attempt may proceed once that one leaves the window.
func (s *Service) throttle(ctx context.Context, email, client string, now time.Time) (time.Duration, error) {
	since := now.Add(-s.cfg.LoginWindow)
	var until time.Time
	t, err := s.q.NthRecentEmailFailure(ctx, authdb.NthRecentEmailFailureParams{Email: email, Since: since, Skip: int32(s.cfg.MaxEmailFailures)})
	switch {
	case err == nil:
		until = t.Add(s.cfg.LoginWindow)
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("count failures for e-mail address: %w", err)
	}
	t, err = s.q.NthRecentClientFailure(ctx, authdb.NthRecentClientFailureParams{Client: client, Since: since, Skip: int32(s.cfg.MaxClientFailures)})
	switch {
	case err == nil:
		until = later(until, t.Add(s.cfg.LoginWindow))
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("count failures for client: %w", err)
	}
	if until.IsZero() {
		return 0, nil
	}
	// Whole seconds, at least one: it becomes an HTTP Retry-After.
	wait := until.Sub(now)
	return max(time.Second, (wait+time.Second-1)/time.Second*time.Second), nil
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
