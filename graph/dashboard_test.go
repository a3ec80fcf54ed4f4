package graph_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
)

// TestJobDashboard: the River UI is served to instance operators only, by
// Bearer header or by the session cookie a session request sets; owning a
// top-level account does not make an operator.
func TestJobDashboard(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.RiverUI = true })
	owner := env.NewOwner(t, "Operator")
	customer := env.NewOwnerUnder(t, "Customer", &owner.AccountID)
	base := strings.TrimSuffix(env.URL, "/graphql")

	get := func(client *http.Client, path, token string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, get(http.DefaultClient, "/riverui/", ""))
	require.Equal(t, http.StatusForbidden, get(http.DefaultClient, "/riverui/", customer.Token))
	require.Equal(t, http.StatusForbidden, get(http.DefaultClient, "/riverui/", owner.Token), "owning a top-level account is not enough")
	_, err := access.GrantOperator(context.Background(), env.Pool, owner.Email)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, get(http.DefaultClient, "/riverui/", customer.Token))
	require.Equal(t, http.StatusOK, get(http.DefaultClient, "/riverui/", owner.Token))
	require.Equal(t, http.StatusOK, get(http.DefaultClient, "/riverui/api/jobs?state=completed", owner.Token))

	// A browser session: the session request sets the cookie, then plain
	// GETs work.
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar}
	req, err := http.NewRequest(http.MethodPost, base+"/riverui/session", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+owner.Token)
	resp, err := browser.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	cookies := resp.Cookies()
	require.Len(t, cookies, 1)
	require.True(t, strings.HasPrefix(cookies[0].Value, "rds_"), "the cookie holds a session id, not the bearer token")
	require.NotContains(t, cookies[0].Value, owner.Token)
	require.Equal(t, http.StatusOK, get(browser, "/riverui/", ""))
}
