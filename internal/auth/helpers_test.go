package auth

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/dbtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testParams make hashing cheap so that the suite stays fast; the code paths
// are those of DefaultParams.
var testParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const testPassword = "correct horse battery staple"

// clock is a settable clock for Config.Now. It starts on a whole second so
// that JWT times (whole seconds) equal the clock's.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testKeySet(t testing.TB, kid string, old ...VerificationKey) *KeySet {
	t.Helper()
	seed, err := GenerateSeed()
	require.NoError(t, err)
	ks, err := NewKeySet(kid, seed, old...)
	require.NoError(t, err)
	return ks
}

type fixture struct {
	svc   *Service
	pool  *pgxpool.Pool
	clock *clock
	ctx   context.Context
}

// setup returns a service on a fresh database with cheap hashing and a
// settable clock; opts adjust its Config.
func setup(t testing.TB, opts ...func(*Config)) *fixture {
	t.Helper()
	pool := dbtest.NewPool(t)
	clk := newClock()
	cfg := Config{Params: testParams, Now: clk.Now}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := NewService(pool, testKeySet(t, "k1"), cfg, nil)
	require.NoError(t, err)
	return &fixture{svc: svc, pool: pool, clock: clk, ctx: context.Background()}
}

// newUser inserts a user with the password and an account it owns.
func (f *fixture) newUser(t testing.TB, email, password string) (userID, accountID uuid.UUID) {
	t.Helper()
	hash, err := testParams.Hash(password)
	require.NoError(t, err)
	err = f.pool.QueryRow(f.ctx, `INSERT INTO users (email, name, password_hash) VALUES ($1, $1, $2) RETURNING id`, email, hash).Scan(&userID)
	require.NoError(t, err)
	accountID = f.newAccount(t, "account of "+email)
	_, err = f.pool.Exec(f.ctx, `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'owner')`, accountID, userID)
	require.NoError(t, err)
	return userID, accountID
}

// as is the fixture's context with the user as the principal.
func (f *fixture) as(userID uuid.UUID) context.Context {
	return access.NewContext(f.ctx, access.Principal{UserID: userID})
}

func (f *fixture) newAccount(t testing.TB, name string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, f.pool.QueryRow(f.ctx, `INSERT INTO accounts (name) VALUES ($1) RETURNING id`, name).Scan(&id))
	return id
}

func (f *fixture) disableUser(t testing.TB, userID uuid.UUID) {
	t.Helper()
	_, err := f.pool.Exec(f.ctx, `UPDATE users SET disabled_at = now() WHERE id = $1`, userID)
	require.NoError(t, err)
}

func (f *fixture) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, f.pool.QueryRow(f.ctx, query, args...).Scan(&n))
	return n
}

// requireUnauthenticated asserts that err is ErrUnauthenticated.
func requireUnauthenticated(t testing.TB, err error) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, ErrUnauthenticated)
}
