//go:build attack

package graph_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
)

// TestBoundedGraphQLCostBeforeWork runs the built `rampart serve` and sends
// it the ~1 KB documents whose fragments expand to millions of selections
// (plain spreads, with aliases, with inline fragments), anonymously and
// signed in. Each must be refused for less than 50 ms of the server's CPU
// time (user plus system, read from /proc). CPU time comes in 10 ms ticks,
// so each kind is sent 20 times and the average per document is bounded.
func TestBoundedGraphQLCostBeforeWork(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{})
	o := s.API.NewOwner(t, "attacker")
	const rounds = 20
	const bound = 50 * time.Millisecond
	for name, doc := range attackDocuments(t) {
		for _, caller := range []struct{ who, token string }{{"anonymous", ""}, {"signed in", o.Token}} {
			before := s.Proc.Usage(t).CPU
			start := time.Now()
			for range rounds {
				status, r := postQuery(t, s.URL, caller.token, doc, nil)
				require.Equal(t, http.StatusUnprocessableEntity, status, r.Raw)
				r.RequireCode(t, "BAD_USER_INPUT")
				require.Contains(t, []string{"", "null"}, string(r.Data), r.Raw)
			}
			cpu := s.Proc.Usage(t).CPU - before
			per := cpu / rounds
			t.Logf("%s, %s: %d bytes refused in %v of server CPU per document (%v for %d; wall %v)",
				name, caller.who, len(doc), per, cpu, rounds, time.Since(start)/rounds)
			require.Less(t, per, bound, "%s, %s", name, caller.who)
		}
	}
}
