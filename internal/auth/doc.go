// Package auth establishes identity: who presents a request. It checks
// passwords, issues and verifies access tokens, rotates refresh tokens, and
// manages API tokens for automation. What an identity may do in which account
// is decided elsewhere (the authorisation package); this package never
// answers that question.
//
// # Callers
//
// The HTTP middleware passes the bearer token of each request to
// [Service.Authenticate] and puts the resulting [Identity] in the context.
// GraphQL mutations call [Service.Login], [Service.Refresh],
// [Service.Logout], [Service.CreateAPIToken], [Service.RevokeAPIToken] and
// [Service.ListAPITokens]. "rampart admin create-owner" calls
// [HashPassword]. The job dashboard calls [Service.StartDashboardSession]
// (for instance operators only, which the authorisation package decides)
// and [Service.AuthenticateDashboard] for its session cookie. A periodic job calls [Service.PruneLoginFailures].
// A signed-in user manages their own password and sessions:
// [Service.ChangePassword], [Service.ListSessions], [Service.RevokeSession],
// [Service.SignOutEverywhere]; anyone may [Service.RequestPasswordReset]
// and [Service.ResetPassword] with the mailed token. Sign-up and accepted
// invitations (package account) are throttled by [Service.Admit], hash the
// new password with [Service.HashNewPassword] and sign the new user in
// with [Service.StartSession].
//
// Sessions end at an absolute lifetime ([Config].SessionLifetime, 90 days
// from the login by default) however often they are refreshed: no refresh
// token outlives it and [Service.Authenticate] refuses the session's
// access tokens past it. Password reset tokens ("rpr_" and 256 bits) are
// stored as SHA-256 hashes, work once within [Config].ResetTTL (an hour),
// and are mailed only to an address with a user, while the answer and its
// throttling are the same for every address.
//
// Errors meant for clients are few and typed: [ErrUnauthenticated],
// [ErrInvalidCredentials], [ErrRateLimited] (a [*RateLimitError] with
// RetryAfter), [ErrWeakPassword], [ErrInvalidTokenName] and [ErrNotFound].
// Test them with errors.Is; anything else is a failure of the service.
// ErrUnauthenticated errors wrap the reason, which is for logs, not for the
// client.
//
// # Mechanisms and what each defends against
//
// Passwords are stored as argon2id hashes in the PHC string format
// ([HashPassword], [VerifyPassword]). A stolen users table then costs an
// attacker 64 MiB and tens of milliseconds of work per guess per user, which
// defeats GPU and ASIC cracking of all but the weakest passwords; the salt
// defeats precomputed tables. Comparison is constant-time. Parsing of stored
// hashes is strict and bounded, so a corrupt row is an error, not a panic or
// a gigabyte allocation. Concurrent hashing is bounded so that a burst of
// logins cannot exhaust memory.
//
// Online guessing is throttled in PostgreSQL (table login_failures), so the
// limit holds across every API replica. Failures are counted in buckets;
// past a bucket's free failures each attempt waits a backoff that doubles
// up to a ceiling (1 s to 15 minutes by default), so an attacker is slowed
// to one guess per ceiling and bucket but no one is locked out for good.
// Unknown clients are counted per e-mail address and client (5 free), per
// e-mail address (10: guessing from many addresses) and per client address
// (50: spraying many accounts; the /64 for IPv6). A client that logged in
// before proves it with the known-client token it was given ([Tokens],
// [LoginClient]) and is slowed only by its own failures, so an attack on
// the account does not keep the owner out of their devices. See
// [Service.Login] for the design, and for where a second factor fits.
// Attempts are recorded before the password is checked, so parallel
// requests cannot slip past the count.
//
// Account enumeration: a wrong password, an unknown address and a disabled
// user get the same error after the same hashing work (an unknown address is
// checked against a dummy hash made with [Config].Params).
//
// Access tokens are JWTs signed with Ed25519 ("EdDSA") and nothing else,
// valid for 10 minutes (at most 15). They carry iss, aud, sub (user id),
// iat, nbf, exp, jti (the id of the refresh token issued with them) and sid
// (the session). Verification fixes the algorithm (no "none", no HMAC keyed
// with the public key, no RSA or ECDSA), picks the key only by kid from the
// [KeySet], requires exp, iss and aud, and refuses any token over 4 KiB
// before decoding anything. Each request also checks, in one indexed query,
// that the session is not revoked and the user not disabled, so logout,
// refresh token reuse and disabling a user take effect at once rather than
// when the access token expires. Keys rotate by kid (see [KeySet]).
//
// Refresh tokens are opaque ("rrt_" and 256 random bits), stored only as
// SHA-256 hashes, valid 30 days from their issue, and usable once: each
// refresh replaces the token. Presenting a used token again means a copy
// exists in other hands, so the whole session (every token of the family and
// the access tokens issued with them) is revoked and a warning is logged.
// A database leak does not yield usable tokens.
//
// API tokens are opaque ("rmp_" and 256 random bits), stored only as SHA-256
// hashes with a short hint for display, scoped to one account and acting as
// that account rather than as the user who created them. Revocation is
// immediate. Another account's token is reported as not found, so token ids
// do not leak across accounts. last_used_at is written at most once a minute
// per token, so heavy automation does not turn every request into a write.
//
// All lookups by secret go through its hash; a malformed token never reaches
// the database, and no secret is ever logged.
package auth
