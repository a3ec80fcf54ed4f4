package graph_test

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/spf"
)

// liftRefreshLimit lets the next on-demand look-up of every include happen
// now, as a minute passing would.
func liftRefreshLimit(t *testing.T, env *apitest.Env) {
	t.Helper()
	_, err := env.Pool.Exec(context.Background(), `UPDATE sender_services SET resolve_attempted_at = now() - interval '61 seconds'`)
	require.NoError(t, err)
}

type refreshed struct {
	RefreshSenderRanges []struct {
		Slug             string
		Ranges           []string
		SpfLookups       *int
		RangesResolvedAt *time.Time
		ResolveError     *string
		ResolveFailedAt  *time.Time
	}
}

const refreshFields = `{ slug ranges spfLookups rangesResolvedAt resolveError resolveFailedAt }`

// TestLiveVendorRanges: a vendor's include, served by a loopback
// authoritative server, is resolved when a domain enables it (its cost was
// not known), and again on demand: a range the vendor adds and one it drops
// reach the edge's per-query answer. A failing include keeps the last good
// ranges and says so; refreshing is limited to once a minute per include
// and to the services of domains the caller manages.
func TestLiveVendorRanges(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	edge := env.StartEdge(t, filepath.Join(t.TempDir(), "snap"))
	addr := edge.UDPAddr().String()
	env.DNS.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ip4:149.72.0.0/16 include:_v6.sendgrid.net ~all")
	env.DNS.Set("_v6.sendgrid.net", "v=spf1 ip6:2001:db8:5e::/48 ~all")
	o := env.NewOwner(t, "Live")
	const d = "live-ranges.example.com"
	env.AddVerifiedDomain(t, o, d)

	// Never resolved: the cost is not known.
	r := env.Do(t, o.Token, `{ senderServices { slug spfLookups rangesResolvedAt } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"slug":"sendgrid","spfLookups":null,"rangesResolvedAt":null}`)

	// Enabling it resolves it in the request.
	r = env.Do(t, o.Token, `mutation { enableSender(domain: "`+d+`", service: "sendgrid") { spfLookups spfLookupsKnown } }`, nil)
	r.NoErrors(t)
	// The include and the redirect, the HELO step and sendgrid's chain (1 + 1).
	require.JSONEq(t, `{"enableSender": {"spfLookups": 5, "spfLookupsKnown": true}}`, string(r.Data))
	ipName := func(ip string) string { return ip + "._ip." + d + "._spf." + apitest.EdgeZone }
	waitTXT(t, addr, ipName("149.72.1.2"), dns.RcodeSuccess, "v=spf1 ip4:149.72.1.2 -all")
	waitTXT(t, addr, ipName("167.89.3.4"), dns.RcodeSuccess, "v=spf1 ip4:167.89.3.4 -all")
	_, noMatch := queryTXT(t, addr, ipName("198.51.100.7"))
	require.NotContains(t, noMatch, "ip4:")

	// The vendor adds a range and drops one; a refresh brings both to the
	// edge. Asked again within the minute, it is refused.
	env.DNS.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ip4:198.51.100.0/24 include:_v6.sendgrid.net ~all")
	r = env.Do(t, o.Token, `mutation { refreshSenderRanges(service: "sendgrid") `+refreshFields+` }`, nil)
	r.RequireCode(t, "RATE_LIMITED")
	liftRefreshLimit(t, env)
	r = env.Do(t, o.Token, `mutation { refreshSenderRanges(service: "sendgrid") `+refreshFields+` }`, nil)
	r.NoErrors(t)
	var got refreshed
	r.Decode(t, &got)
	require.Len(t, got.RefreshSenderRanges, 1)
	s := got.RefreshSenderRanges[0]
	require.Equal(t, []string{"167.89.0.0/17", "198.51.100.0/24", "2001:db8:5e::/48"}, s.Ranges)
	require.Equal(t, 2, *s.SpfLookups)
	require.Nil(t, s.ResolveError)
	require.Nil(t, s.ResolveFailedAt)
	lastGood := *s.RangesResolvedAt
	waitTXT(t, addr, ipName("198.51.100.7"), dns.RcodeSuccess, "v=spf1 ip4:198.51.100.7 -all")
	require.Eventually(t, func() bool {
		_, got := queryTXT(t, addr, ipName("149.72.1.2"))
		return got == noMatch
	}, time.Second, 5*time.Millisecond, "the dropped range no longer passes")
	var edgeRanges []string
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT ranges::text[] FROM edge_service WHERE name = 'sendgrid'`).Scan(&edgeRanges))
	require.Equal(t, []string{"167.89.0.0/17", "198.51.100.0/24", "2001:db8:5e::/48"}, edgeRanges)

	// The include stops resolving (a chain member is gone): the last good
	// ranges and cost stay, on the service and the edge, and the service
	// says why and since when. Refreshing everything the owner manages
	// names the service.
	env.DNS.Delete("_v6.sendgrid.net")
	liftRefreshLimit(t, env)
	r = env.Do(t, o.Token, `mutation { refreshSenderRanges `+refreshFields+` }`, nil)
	r.NoErrors(t)
	got = refreshed{}
	r.Decode(t, &got)
	require.Len(t, got.RefreshSenderRanges, 1)
	s = got.RefreshSenderRanges[0]
	require.Equal(t, "sendgrid", s.Slug)
	require.Equal(t, []string{"167.89.0.0/17", "198.51.100.0/24", "2001:db8:5e::/48"}, s.Ranges)
	require.Equal(t, 2, *s.SpfLookups)
	require.NotNil(t, s.ResolveError)
	require.Contains(t, *s.ResolveError, "_v6.sendgrid.net")
	require.NotNil(t, s.ResolveFailedAt)
	require.True(t, s.RangesResolvedAt.Equal(lastGood), "the last good resolution's time stays")
	waitTXT(t, addr, ipName("198.51.100.7"), dns.RcodeSuccess, "v=spf1 ip4:198.51.100.7 -all")
	// Within the minute, refreshing everything leaves it as it is.
	r = env.Do(t, o.Token, `mutation { refreshSenderRanges `+refreshFields+` }`, nil)
	r.NoErrors(t)
	got = refreshed{}
	r.Decode(t, &got)
	require.True(t, got.RefreshSenderRanges[0].ResolveFailedAt.Equal(*s.ResolveFailedAt), "not looked up again")

	// It resolves again: the error clears.
	env.DNS.Set("_v6.sendgrid.net", "v=spf1 ip6:2001:db8:5e::/48 ~all")
	liftRefreshLimit(t, env)
	r = env.Do(t, o.Token, `mutation { refreshSenderRanges(service: "sendgrid") `+refreshFields+` }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"resolveError":null,"resolveFailedAt":null`)

	// A stranger may refresh nothing of the owner's: the service is not
	// enabled on a domain it manages (NOT_FOUND), and everything it
	// manages is nothing. Without a principal: UNAUTHENTICATED.
	liftRefreshLimit(t, env)
	stranger := env.NewOwner(t, "Stranger")
	r = env.Do(t, stranger.Token, `mutation { refreshSenderRanges(service: "sendgrid") { slug } }`, nil)
	r.RequireCode(t, "NOT_FOUND")
	r = env.Do(t, stranger.Token, `mutation { refreshSenderRanges { slug } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"refreshSenderRanges": []}`, string(r.Data))
	r = env.Do(t, "", `mutation { refreshSenderRanges { slug } }`, nil)
	r.RequireCode(t, "UNAUTHENTICATED")
	// An instance operator may refresh any service, enabled or not.
	_, err := access.GrantOperator(context.Background(), env.Pool, stranger.Email)
	require.NoError(t, err)
	env.DNS.Set("mailgun.org", "v=spf1 ip4:203.0.113.0/24 ~all")
	r = env.Do(t, stranger.Token, `mutation { refreshSenderRanges(service: "mailgun") { slug ranges spfLookups } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"refreshSenderRanges": [{"slug": "mailgun", "ranges": ["203.0.113.0/24"], "spfLookups": 1}]}`, string(r.Data))
}

// TestUnknownSenderCostRefused: a service whose include never resolved is
// never counted as cheaper than it is: enabling it while its include does
// not resolve is refused, saying why, and a domain that enables one (from
// before costs were tracked) shows its cost as not known and takes no
// sender change until it resolves.
func TestUnknownSenderCostRefused(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Unknown")
	const d = "unknown-cost.example.com"
	env.AddVerifiedDomain(t, o, d)

	// mailgun.org is NXDOMAIN in the world.
	r := env.Do(t, o.Token, `mutation { enableSender(domain: "`+d+`", service: "mailgun") { name } }`, nil)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "cannot know the DNS lookup cost of ")
	require.Contains(t, r.Errors[0].Message, "'s include mailgun.org: ")
	require.Contains(t, r.Errors[0].Message, "try again")
	r = env.Do(t, o.Token, `{ domain(name: "`+d+`") { senders { slug } spfLookups spfLookupsKnown } senderServices { slug spfLookups resolveError } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"senders":[],"spfLookups":2,"spfLookupsKnown":true`)
	require.Regexp(t, `\{"slug":"mailgun","spfLookups":null,"resolveError":"[^"]+"\}`, r.Raw)

	// Pinning a catalog vendor's include literally is judged by its cost
	// too: refused while it is not known.
	r = env.Do(t, o.Token, `mutation($x: Time!) { pinSpfInclude(domain: "`+d+`", include: "spf.mtasv.net", expiresAt: $x) { name } }`,
		map[string]any{"x": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "'s include spf.mtasv.net: ")

	// Within the minute it is not looked up again, and still refused.
	env.DNS.Set("mailgun.org", "v=spf1 ip4:203.0.113.0/24 include:_b.mailgun.org ~all")
	env.DNS.Set("_b.mailgun.org", "v=spf1 ip4:192.0.2.0/24 ~all")
	r = env.Do(t, o.Token, `mutation { enableSender(domain: "`+d+`", service: "mailgun") { name } }`, nil)
	r.RequireCode(t, "BAD_USER_INPUT")
	liftRefreshLimit(t, env)
	r = env.Do(t, o.Token, `mutation { enableSender(domain: "`+d+`", service: "mailgun") { spfLookups spfLookupsKnown } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"enableSender": {"spfLookups": 5, "spfLookupsKnown": true}}`, string(r.Data))

	// A service enabled while its cost was not known (as before costs
	// were tracked: the migration made them unknown).
	_, err := env.Pool.Exec(context.Background(), `UPDATE sender_services SET spf_lookups = NULL, resolved_at = NULL, resolve_error = '' WHERE slug = 'mailgun'`)
	require.NoError(t, err)
	r = env.Do(t, o.Token, `{ domain(name: "`+d+`") { spfLookups spfLookupsKnown } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"spfLookups": 4, "spfLookupsKnown": false}}`, string(r.Data), "counted at one term, and said to be a lower bound")
	r = env.Do(t, o.Token, `mutation { addNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name } }`, nil)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "'s include mailgun.org: it was never resolved")
	liftRefreshLimit(t, env)
	env.Do(t, o.Token, `mutation { refreshSenderRanges { slug } }`, nil).NoErrors(t)
	env.Do(t, o.Token, `mutation { addNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name } }`, nil).NoErrors(t)
}

// TestResolveRangesAtStart: with workers, the API resolves every service's
// include at start, without waiting for the hour, and a restart within the
// hour of that run resolves again: a range the vendor added in between
// reaches the edge rows at once.
func TestResolveRangesAtStart(t *testing.T) {
	t.Parallel()
	world := apitest.ServeZone(t, map[string][]string{
		"sendgrid.net": {"v=spf1 ip4:167.89.0.0/17 ~all"},
	})
	dbURL := dbtest.NewDB(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	seed, err := auth.GenerateSeed()
	require.NoError(t, err)
	// serve runs the API with one worker until the returned stop is called.
	serve := func() (stop func()) {
		cfg := &app.Config{
			APIAddr: "127.0.0.1:0", EdgeZone: apitest.EdgeZone, ReportsDomain: apitest.ReportsDomain, JWTKeyID: "k1",
			JWTKey: base64.StdEncoding.EncodeToString(seed), LogLevel: "warn", DNSResolver: world.Addr, Workers: 1,
		}
		ctx, cancel := context.WithCancel(context.Background())
		api, err := app.NewAPI(ctx, pool, cfg, apitest.Logger(t))
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- api.Run(ctx) }()
		return func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("API did not stop")
			}
		}
	}
	edgeRanges := func(want ...string) func() bool {
		return func() bool {
			var ranges []string
			err := pool.QueryRow(context.Background(), `SELECT ranges::text[] FROM edge_service WHERE name = 'sendgrid'`).Scan(&ranges)
			require.NoError(t, err)
			return slices.Equal(ranges, want)
		}
	}

	stop := serve()
	require.Eventually(t, edgeRanges("167.89.0.0/17"), 30*time.Second, 50*time.Millisecond)
	stop()

	world.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ip4:198.51.100.0/24 ~all")
	stop = serve()
	defer stop()
	require.Eventually(t, edgeRanges("167.89.0.0/17", "198.51.100.0/24"), 30*time.Second, 50*time.Millisecond,
		"the restart resolved again within the hour")
}

// TestCatalogIncludeChangeForgetsCost: when the catalog gives a service a
// new include, the old include's ranges and cost are no longer its own:
// the ranges go (from the edge too) and the cost is unknown until the new
// include resolves.
func TestCatalogIncludeChangeForgetsCost(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	env.DNS.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ~all")
	senders := env.Services(t).Senders
	_, err := senders.RefreshAsOperator(ctx, spf.NewDNSResolver(env.DNS.Addr), "sendgrid")
	require.NoError(t, err)
	services, err := catalog.Load()
	require.NoError(t, err)
	// Unchanged, the sync keeps what was resolved.
	require.NoError(t, senders.SyncCatalog(ctx, services))
	state := func() (lookups *int32, ranges []string) {
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT s.spf_lookups, e.ranges::text[] FROM sender_services s JOIN edge_service e ON e.name = s.slug WHERE s.slug = 'sendgrid'`).Scan(&lookups, &ranges))
		return lookups, ranges
	}
	lookups, ranges := state()
	require.Equal(t, int32(1), *lookups)
	require.Equal(t, []string{"167.89.0.0/17"}, ranges)
	for i := range services {
		if services[i].Slug == "sendgrid" {
			services[i].SPFIncludes = []string{"_spf.sendgrid.example"}
		}
	}
	require.NoError(t, senders.SyncCatalog(ctx, services))
	lookups, ranges = state()
	require.Nil(t, lookups)
	require.Empty(t, ranges)
}
