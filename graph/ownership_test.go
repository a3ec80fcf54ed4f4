package graph_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
)

// edgeRow reports whether the edge contract serves a name, and whose DMARC
// record it carries.
func edgeRow(t *testing.T, env *apitest.Env, name string) (served bool, dmarc string) {
	t.Helper()
	err := env.Pool.QueryRow(context.Background(), `SELECT NOT deleted, dmarc FROM edge_domain WHERE name = $1`, name).Scan(&served, &dmarc)
	if err != nil {
		return false, ""
	}
	return served, dmarc
}

// TestDomainChangesAccount: the owner of a domain moves it to another
// account by publishing that account's proof. The new account's
// verifyDomain takes the name: the old claim is displaced (unverified, with
// an expiry), the edge serves the new account's record, and the periodic
// check does not hand the name back although the old proof is still in DNS.
func TestDomainChangesAccount(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	a, b := env.NewOwner(t, "Old owner"), env.NewOwner(t, "New owner")
	const d = "moving-example.com"
	env.AddVerifiedDomain(t, a, d)
	served, rec := edgeRow(t, env, d)
	require.True(t, served)
	require.Contains(t, rec, reportAddress(t, env, a.Token, d))

	env.Do(t, b.Token, `mutation { addDomain(name: "`+d+`") { name } }`, nil).NoErrors(t)
	env.Do(t, b.Token, `mutation { updateDmarcPolicy(name: "`+d+`", policy: {p: QUARANTINE}, force: true) { name } }`, nil).NoErrors(t)
	_, rec = edgeRow(t, env, d)
	require.Contains(t, rec, reportAddress(t, env, a.Token, d), "an unverified claim never reaches the edge")

	env.Prove(t, b.Token, "", d)
	r := env.Do(t, b.Token, `mutation { verifyDomain(name: "`+d+`") { verified ownership { method lastCheckResult } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"verified":true,"ownership":{"method":"DNS","lastCheckResult":"found rampart-verify=`)
	served, rec = edgeRow(t, env, d)
	require.True(t, served)
	require.Contains(t, rec, "p=quarantine")
	require.Contains(t, rec, reportAddress(t, env, b.Token, d))

	r = env.Do(t, a.Token, `{ domain(name: "`+d+`") { verified ownership { displacedAt expiresAt } } }`, nil)
	r.NoErrors(t)
	var old struct {
		Domain struct {
			Verified  bool
			Ownership struct{ DisplacedAt, ExpiresAt *time.Time }
		}
	}
	r.Decode(t, &old)
	require.False(t, old.Domain.Verified)
	require.NotNil(t, old.Domain.Ownership.DisplacedAt)
	require.WithinDuration(t, time.Now().Add(7*24*time.Hour), *old.Domain.Ownership.ExpiresAt, time.Minute)

	// A's proof is still published; the job must not take the name back.
	ctx := context.Background()
	_, err := env.Pool.Exec(ctx, `UPDATE domains SET check_next_at = now() - interval '1 second' WHERE name = $1`, d)
	require.NoError(t, err)
	run, err := env.Services(t).Domains.CheckClaims(ctx)
	require.NoError(t, err)
	require.Zero(t, run.Verified)
	_, rec = edgeRow(t, env, d)
	require.Contains(t, rec, reportAddress(t, env, b.Token, d))

	// A removing its displaced claim leaves B's domain on the edge.
	env.Do(t, a.Token, `mutation { removeDomain(name: "`+d+`") { name } }`, nil).NoErrors(t)
	served, _ = edgeRow(t, env, d)
	require.True(t, served)
}

// TestClaimChecksAndExpiry drives the periodic job's work: a due claim
// whose proof appeared is verified (and displaces the other unverified
// claims), a failing one backs off, an expired one is deleted.
func TestClaimChecksAndExpiry(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	domains := env.Services(t).Domains
	a, b := env.NewOwner(t, "A"), env.NewOwner(t, "B")
	env.Do(t, a.Token, `mutation { addDomain(name: "later-example.com") { name } }`, nil).NoErrors(t)
	env.Do(t, b.Token, `mutation { addDomain(name: "later-example.com") { name } }`, nil).NoErrors(t)
	env.Do(t, b.Token, `mutation { addDomain(name: "never-example.com") { name } }`, nil).NoErrors(t)
	env.Prove(t, a.Token, "", "later-example.com")

	// Not due yet: the check made when adding scheduled the next a minute on.
	run, err := domains.CheckClaims(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, run.Checked)

	_, err = env.Pool.Exec(ctx, `UPDATE domains SET check_next_at = now() - interval '1 second'`)
	require.NoError(t, err)
	run, err = domains.CheckClaims(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, run.Checked)
	require.Equal(t, 1, run.Verified)
	served, _ := edgeRow(t, env, "later-example.com")
	require.True(t, served)
	env.Do(t, b.Token, `{ domain(name: "later-example.com") { name } }`, nil).RequireCode(t, "NOT_FOUND")

	// never-example.com failed twice (at add, and now): the next check is
	// two minutes on, and the owner reads why.
	var attempts int
	var next time.Time
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT check_attempts, check_next_at FROM domains WHERE name = 'never-example.com'`).Scan(&attempts, &next))
	require.Equal(t, 2, attempts)
	require.WithinDuration(t, time.Now().Add(2*time.Minute), next, 10*time.Second)
	r := env.Do(t, b.Token, `{ domain(name: "never-example.com") { ownership { lastCheckResult } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"ownership": {"lastCheckResult": "no TXT record at _rampart.never-example.com (the name does not exist)"}}}`, string(r.Data))
	served, _ = edgeRow(t, env, "never-example.com")
	require.False(t, served)

	_, err = env.Pool.Exec(ctx, `UPDATE domains SET claim_expires_at = now() - interval '1 second' WHERE name = 'never-example.com'`)
	require.NoError(t, err)
	run, err = domains.CheckClaims(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, run.Expired)
	env.Do(t, b.Token, `{ domain(name: "never-example.com") { name } }`, nil).RequireCode(t, "NOT_FOUND")
	served, _ = edgeRow(t, env, "later-example.com")
	require.True(t, served, "expiry removes unverified claims only")
}

// TestVerifyWithoutDNSChecks: with the resolver off, verifyDomain says
// that only the operator can verify, and the operator's override does,
// displacing the other claims on the name.
func TestVerifyWithoutDNSChecks(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.DNSResolver = "off" })
	a, b := env.NewOwner(t, "A"), env.NewOwner(t, "B")
	const d = "offline-example.com"
	r := env.Do(t, a.Token, `mutation { addDomain(name: "`+d+`") { verified ownership { lastCheckedAt lastCheckResult } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"addDomain": {"verified": false, "ownership": {"lastCheckedAt": null, "lastCheckResult": null}}}`, string(r.Data))
	env.Do(t, b.Token, `mutation { addDomain(name: "`+d+`") { name } }`, nil).NoErrors(t)
	r = env.Do(t, a.Token, `mutation { verifyDomain(name: "`+d+`") { verified } }`, nil)
	r.RequireCode(t, "CONFLICT")
	require.Contains(t, r.Errors[0].Message, "rampart admin verify-domain")

	svc := env.Services(t).Domains
	_, err := svc.VerifyAsOperator(context.Background(), d, nil)
	require.ErrorContains(t, err, "2 accounts claim "+d)
	got, err := svc.VerifyAsOperator(context.Background(), d, &a.AccountID)
	require.NoError(t, err)
	require.True(t, got.Verified())
	served, _ := edgeRow(t, env, d)
	require.True(t, served)
	r = env.Do(t, a.Token, `{ domain(name: "`+d+`") { ownership { method } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"ownership": {"method": "OPERATOR"}}}`, string(r.Data))
	env.Do(t, b.Token, `{ domain(name: "`+d+`") { name } }`, nil).RequireCode(t, "NOT_FOUND")
}

// TestOwnNamesRefused: names in Rampart's own zones cannot be claimed.
func TestOwnNamesRefused(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) {
		c.EdgeZone, c.ReportsDomain = "edge.rampart.example.com", "reports.rampart.example.com"
	})
	o := env.NewOwner(t, "A")
	for _, name := range []string{"edge.rampart.example.com", "x.edge.rampart.example.com", "victim-example.com.edge.rampart.example.com", "reports.rampart.example.com"} {
		r := env.Do(t, o.Token, `mutation($n: String!) { addDomain(name: $n) { name } }`, map[string]any{"n": name})
		r.RequireCode(t, "BAD_USER_INPUT")
		require.Contains(t, r.Errors[0].Message, "Rampart's own zone", name)
	}
	env.Do(t, o.Token, `mutation { addDomain(name: "rampart.example.com") { name } }`, nil).NoErrors(t)
}
