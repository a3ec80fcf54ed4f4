package graph_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
)

// TestLegacyFormLookups: while a domain was last seen publishing the legacy
// SPF form, whose _nspf records grow with the netblocks (each further
// record a lookup), a change that would take that form past 10 lookups is
// refused, saying to publish the current form; a domain publishing the
// current form takes the same netblocks.
func TestLegacyFormLookups(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Legacy")
	for _, tc := range []struct {
		domain, published string
		refusedAt         int
	}{
		{"legacy-lookups.com", "legacy", 0},
		{"current-lookups.com", "current", -1},
	} {
		env.AddVerifiedDomain(t, o, tc.domain)
		_, err := env.Pool.Exec(context.Background(), `UPDATE domains SET spf_published = $1 WHERE name = $2`, tc.published, tc.domain)
		require.NoError(t, err)
		// No sender: the legacy form costs 2 and one per further _nspf
		// record, the current form 2.
		refused := -1
		for i := range 260 {
			r := env.Do(t, o.Token, fmt.Sprintf(`mutation { addNetblock(domain: %q, cidr: "10.%d.%d.0/24") { spfLookups } }`, tc.domain, i/256, i%256), nil)
			if len(r.Errors) > 0 {
				r.RequireCode(t, "BAD_USER_INPUT")
				require.Contains(t, r.Errors[0].Message, "the legacy form")
				require.Contains(t, r.Errors[0].Message, "11 DNS lookups")
				refused = i
				break
			}
		}
		if tc.refusedAt < 0 {
			require.Equal(t, -1, refused, "%s: a current-form domain is not held to the legacy form's cost", tc.domain)
			continue
		}
		// Nine further _nspf records (about 20 netblocks each) make 11.
		require.Greater(t, refused, 150, tc.domain)
		require.Less(t, refused, 260, tc.domain)
		var nspf string
		require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT nspf FROM edge_domain WHERE name = $1`, tc.domain).Scan(&nspf))
		r := env.Do(t, o.Token, `{ domain(name: "`+tc.domain+`") { spfLookups } }`, nil)
		r.NoErrors(t)
		require.Contains(t, r.Raw, `"spfLookups":10`, "the legacy form's cost, at the limit")
		require.NotContains(t, nspf, fmt.Sprintf("10.%d.%d.0/24", refused/256, refused%256), "nothing of the refused change is kept")
	}
}
