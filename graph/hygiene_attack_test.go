package graph_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
)

// TestAttackInputHygiene replays, against the built `rampart serve`, the
// inputs that used to reach PostgreSQL and come back as INTERNAL (500): a
// NUL byte in a label, as a literal and as a variable, and invalid UTF-8
// in the JSON body; each is a 400-class BAD_USER_INPUT naming the field,
// and the server keeps working. It also probes the field suggestions
// ("Did you mean ...") gqlgen makes during validation: none is given,
// before or after sign-in.
func TestAttackInputHygiene(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{})
	o := s.API.NewOwner(t, "hygiene")
	s.API.AddVerifiedDomain(t, o, "hygiene-example.com")

	for _, tc := range []struct {
		query string
		vars  map[string]any
		field string
	}{
		{`mutation { addNetblock(domain: "hygiene-example.com", cidr: "192.0.2.0/24", label: "office\u0000") { name } }`, nil, "label"},
		{`mutation($l: String) { addNetblock(domain: "hygiene-example.com", cidr: "192.0.2.0/24", label: $l) { name } }`,
			map[string]any{"l": "office\x00"}, "$l"},
	} {
		status, r := postQuery(t, s.URL, o.Token, tc.query, tc.vars)
		require.GreaterOrEqual(t, status, 400, r.Raw)
		require.Less(t, status, 500, r.Raw)
		r.RequireCode(t, "BAD_USER_INPUT")
		require.Equal(t, tc.field, r.Errors[0].Extensions["field"], r.Raw)
	}

	body := `{"query": "mutation($l: String) { addNetblock(domain: \"hygiene-example.com\", cidr: \"192.0.2.0/24\", label: $l) { name } }", "variables": {"l": "caf` + "\xe9" + `"}}`
	req, err := http.NewRequest(http.MethodPost, s.URL, bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+o.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(raw))
	require.Contains(t, string(raw), `"field":"$l"`)

	// Nothing was stored, and a clean label still works.
	status, r := postQuery(t, s.URL, o.Token, `mutation { addNetblock(domain: "hygiene-example.com", cidr: "192.0.2.0/24", label: "office") { name } }`, nil)
	require.Equal(t, http.StatusOK, status, r.Raw)
	r.NoErrors(t)

	for _, token := range []string{"", o.Token} {
		status, r := postQuery(t, s.URL, token, `{ viewr { user { emial } } domain(name: "hygiene-example.com", nme: "x") { nam } }`, nil)
		require.GreaterOrEqual(t, status, 400, r.Raw)
		require.NotEmpty(t, r.Errors, r.Raw)
		for _, e := range r.Errors {
			require.NotContains(t, strings.ToLower(e.Message), "did you mean", r.Raw)
			for _, leak := range []string{`"viewer"`, `"email"`, `"name"`} { // what a suggestion would name
				require.NotContains(t, e.Message, leak, r.Raw)
			}
		}
	}
}
