package attacktest_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/attacktest"
)

// The job dashboard (River UI) shows and steers every tenant's jobs. These
// tests replay, against the built `rampart serve`, the attacks of issue 7
// point 1 and show each refused.

// dash sends one request to the dashboard with an optional bearer token,
// session cookie and Origin, and returns the status and the response.
type dash struct {
	t    *testing.T
	base string
}

type call struct {
	method, path, bearer, cookie, origin, body string
}

func (d dash) do(c call) (int, []*http.Cookie) {
	d.t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, d.base+c.path, body)
	require.NoError(d.t, err)
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "rampart_dashboard", Value: c.cookie}) //nolint:gosec // G124: a client sending the cookie back to the test server; the attributes are the server's
	}
	if c.origin != "" {
		req.Header.Set("Origin", c.origin)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(d.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Cookies()
}

// session starts a dashboard session with an access token and returns the
// cookie the server set.
func (d dash) session(bearer string) *http.Cookie {
	d.t.Helper()
	code, cookies := d.do(call{method: http.MethodPost, path: "/riverui/session", bearer: bearer})
	require.Equal(d.t, http.StatusNoContent, code)
	for _, c := range cookies {
		if c.Name == "rampart_dashboard" {
			return c
		}
	}
	d.t.Fatal("no dashboard cookie set")
	return nil
}

// admin runs `rampart admin ARGS...` on the server's database.
func admin(t *testing.T, s *attacktest.Serve, args ...string) (string, error) {
	t.Helper()
	bin, _ := attacktest.Binaries(t)
	cmd := exec.Command(bin, append([]string{"admin"}, args...)...)
	cmd.Env = []string{"DATABASE_URL=" + s.DatabaseURL, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func grantOperator(t *testing.T, s *attacktest.Serve, email string) {
	t.Helper()
	out, err := admin(t, s, "grant-operator", "-email", email)
	require.NoError(t, err, out)
	require.Contains(t, out, "operator granted: "+email)
}

func apiToken(t *testing.T, s *attacktest.Serve, o apitest.Owner) string {
	t.Helper()
	r := s.API.Do(t, o.Token, `mutation { createApiToken(name: "ci") { secret } }`, nil)
	r.NoErrors(t)
	var d struct {
		CreateAPIToken struct{ Secret string } `json:"createApiToken"`
	}
	r.Decode(t, &d)
	require.True(t, strings.HasPrefix(d.CreateAPIToken.Secret, "rmp_"))
	return d.CreateAPIToken.Secret
}

func queuePaused(t *testing.T, s *attacktest.Serve, queue string) bool {
	t.Helper()
	var paused bool
	require.NoError(t, s.Pool.QueryRow(context.Background(),
		`SELECT paused_at IS NOT NULL FROM river_queue WHERE name = $1`, queue).Scan(&paused))
	return paused
}

// TestAttackDashboardTenantsAndSessions: a tenant's owner (of a top-level
// account) and its API token can neither open the dashboard nor pause the
// shared report queue; only a user granted the operator role by `rampart
// admin` can. The session cookie is an opaque id, not the bearer token; a
// bearer token presented as the cookie, an expired session and a session
// whose login ended are refused; state-changing calls with the cookie are
// refused unless their Origin is the dashboard's own.
func TestAttackDashboardTenantsAndSessions(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{Workers: 1, Env: map[string]string{"RAMPART_RIVER_UI": "true"}})
	ctx := context.Background()
	d := dash{t: t, base: s.Base}
	tenant := s.API.NewOwner(t, "Tenant")
	token := apiToken(t, s, tenant)
	ops := s.API.NewOwner(t, "Operations")
	// The workers register the report queue when they start.
	require.Eventually(t, func() bool {
		var n int
		_ = s.Pool.QueryRow(ctx, `SELECT count(*) FROM river_queue WHERE name = 'report'`).Scan(&n)
		return n == 1
	}, 30*time.Second, 20*time.Millisecond)

	pause := call{method: http.MethodPut, path: "/riverui/api/queues/report/pause", body: "{}"}
	for name, bearer := range map[string]string{"tenant owner": tenant.Token, "tenant API token": token, "unpromoted owner": ops.Token} {
		for _, c := range []call{
			{method: http.MethodGet, path: "/riverui/"},
			{method: http.MethodGet, path: "/riverui/api/jobs?state=available"},
			{method: http.MethodGet, path: "/riverui/api/queues"},
			pause,
			{method: http.MethodPost, path: "/riverui/session"},
		} {
			c.bearer = bearer
			code, cookies := d.do(c)
			require.Equal(t, http.StatusForbidden, code, "%s: %s %s", name, c.method, c.path)
			require.Empty(t, cookies, "%s: no session for a non-operator", name)
		}
	}
	require.False(t, queuePaused(t, s, "report"), "a tenant paused the shared report queue")

	// Bad input to the operator commands is refused with a clear error.
	out, err := admin(t, s, "grant-operator", "-email", "nobody@owner.test")
	require.Error(t, err)
	require.Contains(t, out, "no user has this e-mail address")
	out, err = admin(t, s, "grant-operator")
	require.Error(t, err)
	require.Contains(t, out, "-email")
	out, err = admin(t, s, "make-operator", "-email", ops.Email)
	require.Error(t, err)
	require.Contains(t, out, "unknown admin command")

	grantOperator(t, s, ops.Email)
	code, _ := d.do(call{method: http.MethodGet, path: "/riverui/api/queues", bearer: ops.Token})
	require.Equal(t, http.StatusOK, code)
	// The role is the user's: the tenant's token and owner stay out.
	code, _ = d.do(call{method: http.MethodGet, path: "/riverui/api/queues", bearer: tenant.Token})
	require.Equal(t, http.StatusForbidden, code)

	cookie := d.session(ops.Token)
	require.True(t, strings.HasPrefix(cookie.Value, "rds_"), "the cookie is a session id")
	require.NotEqual(t, ops.Token, cookie.Value)
	require.True(t, cookie.HttpOnly)
	require.False(t, cookie.Secure, "plain http without RAMPART_SECURE_COOKIES")
	require.Equal(t, http.SameSiteStrictMode, cookie.SameSite)
	require.Equal(t, "/riverui", cookie.Path)
	require.InDelta(t, time.Hour.Seconds(), cookie.MaxAge, 60)
	code, _ = d.do(call{method: http.MethodGet, path: "/riverui/api/queues", cookie: cookie.Value})
	require.Equal(t, http.StatusOK, code)

	// A bearer token where the session id belongs is refused: the old
	// cookie held the operator's access token.
	for name, v := range map[string]string{"access token": ops.Token, "API token": token, "tenant access token": tenant.Token} {
		code, _ = d.do(call{method: http.MethodGet, path: "/riverui/api/queues", cookie: v})
		require.Equal(t, http.StatusUnauthorized, code, name)
	}

	// Cross-origin writes with the cookie are refused; the queue stays
	// running. The same call from the dashboard's own origin works.
	pause.cookie = cookie.Value
	for _, origin := range []string{"http://evil.example", "null", "https://" + strings.TrimPrefix(s.Base, "http://"), ""} {
		pause.origin = origin
		code, _ = d.do(pause)
		require.Equal(t, http.StatusForbidden, code, "Origin %q", origin)
		require.False(t, queuePaused(t, s, "report"), "Origin %q paused the queue", origin)
	}
	pause.origin = s.Base
	code, _ = d.do(pause)
	require.Equal(t, http.StatusOK, code)
	require.True(t, queuePaused(t, s, "report"))
	code, _ = d.do(call{method: http.MethodPut, path: "/riverui/api/queues/report/resume", body: "{}", cookie: cookie.Value, origin: s.Base})
	require.Equal(t, http.StatusOK, code)
	require.False(t, queuePaused(t, s, "report"))

	// Revoking the role shuts the session and the token out at once.
	out, err = admin(t, s, "revoke-operator", "-email", ops.Email)
	require.NoError(t, err, out)
	require.Contains(t, out, "operator revoked")
	code, _ = d.do(call{method: http.MethodGet, path: "/riverui/api/queues", cookie: cookie.Value})
	require.Equal(t, http.StatusForbidden, code)
	code, _ = d.do(call{method: http.MethodGet, path: "/riverui/api/queues", bearer: ops.Token})
	require.Equal(t, http.StatusForbidden, code)

	// Sessions expire, and end with the login they came from.
	grantOperator(t, s, ops.Email)
	expiring := d.session(ops.Token)
	hash := sha256.Sum256([]byte(expiring.Value))
	tag, err := s.Pool.Exec(ctx, `UPDATE dashboard_sessions SET expires_at = now() - interval '1 second' WHERE id_hash = $1`, hash[:])
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), "sessions are stored by the SHA-256 of their id")
	code, _ = d.do(call{method: http.MethodGet, path: "/riverui/api/queues", cookie: expiring.Value})
	require.Equal(t, http.StatusUnauthorized, code, "an expired session")
	code, _ = d.do(call{method: http.MethodGet, path: "/riverui/api/queues", cookie: cookie.Value})
	require.Equal(t, http.StatusOK, code, "the other session is still valid")
	s.API.Do(t, ops.Token, `mutation($r: String!) { logout(refreshToken: $r) }`, map[string]any{"r": ops.RefreshToken}).NoErrors(t)
	code, _ = d.do(call{method: http.MethodGet, path: "/riverui/api/queues", cookie: cookie.Value})
	require.Equal(t, http.StatusUnauthorized, code, "a session of a login that ended")
}

// upload stores one report file for the owner's account and returns the
// blob id and its report.ingest job id.
func upload(t *testing.T, s *attacktest.Serve, o apitest.Owner, content string) (blob string, job int64) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.Base+"/upload?filename=r.xml", strings.NewReader(content))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+o.Token)
	req.Header.Set("Content-Type", "application/xml")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var r struct{ Files []struct{ BlobID string } }
	require.NoError(t, json.Unmarshal(b, &r))
	require.Len(t, r.Files, 1)
	blob = r.Files[0].BlobID
	require.NoError(t, s.Pool.QueryRow(context.Background(),
		`SELECT id FROM river_job WHERE kind = 'report.ingest' AND args->>'blob_id' = $1 ORDER BY id DESC LIMIT 1`, blob).Scan(&job))
	return blob, job
}

type blobState struct{ Status, Reason string }

func blobOf(t *testing.T, s *attacktest.Serve, id string) blobState {
	t.Helper()
	var b blobState
	var reason *string
	require.NoError(t, s.Pool.QueryRow(context.Background(),
		`SELECT status, refusal_reason FROM report_blobs WHERE id = $1`, id).Scan(&b.Status, &reason))
	if reason != nil {
		b.Reason = *reason
	}
	return b
}

func jobState(t *testing.T, s *attacktest.Serve, id int64) string {
	t.Helper()
	var state string
	err := s.Pool.QueryRow(context.Background(), `SELECT state FROM river_job WHERE id = $1`, id).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return "deleted"
	}
	require.NoError(t, err)
	return state
}

// TestAttackDashboardIngestJobs: a tenant cannot cancel another tenant's
// ingest job; when an operator cancels, deletes or River discards one
// (none of which runs the worker), its blob leaves pending for a state the
// tenant sees in ingestProblems, and a retry puts it back in line. Behind a
// TLS-terminating proxy (RAMPART_SECURE_COOKIES) the cookie is Secure and
// only the https origin may write.
func TestAttackDashboardIngestJobs(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{Env: map[string]string{
		"RAMPART_RIVER_UI": "true", "RAMPART_SECURE_COOKIES": "true",
	}})
	d := dash{t: t, base: s.Base}
	victim := s.API.NewOwner(t, "Victim")
	attacker := s.API.NewOwner(t, "Attacker")
	ops := s.API.NewOwner(t, "Operations")
	var blobs [4]string
	var jobs [4]int64
	for i := range blobs {
		blobs[i], jobs[i] = upload(t, s, victim, fmt.Sprintf("<feedback><report_metadata><report_id>%d</report_id></report_metadata></feedback>", i))
		require.Equal(t, "available", jobState(t, s, jobs[i]))
		require.Equal(t, blobState{Status: "pending"}, blobOf(t, s, blobs[i]))
	}

	// Another tenant's owner tries to cancel and delete the victim's job.
	for _, path := range []string{"/riverui/api/jobs/cancel", "/riverui/api/jobs/delete"} {
		code, _ := d.do(call{method: http.MethodPost, path: path, bearer: attacker.Token, body: fmt.Sprintf(`{"ids":["%d"]}`, jobs[0])})
		require.Equal(t, http.StatusForbidden, code, path)
	}
	require.Equal(t, "available", jobState(t, s, jobs[0]))
	require.Equal(t, blobState{Status: "pending"}, blobOf(t, s, blobs[0]))

	grantOperator(t, s, ops.Email)
	cookie := d.session(ops.Token)
	require.True(t, cookie.Secure, "RAMPART_SECURE_COOKIES marks the cookie Secure")
	host := strings.TrimPrefix(s.Base, "http://")
	cancel := call{method: http.MethodPost, path: "/riverui/api/jobs/cancel", cookie: cookie.Value, body: fmt.Sprintf(`{"ids":["%d"]}`, jobs[0])}
	cancel.origin = "http://" + host // behind the TLS proxy, the own origin is https
	code, _ := d.do(cancel)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "available", jobState(t, s, jobs[0]))

	// The operator cancels one job and deletes another from the dashboard;
	// River discards a third (as its rescuer does with a job that kept
	// dying), all without the worker running.
	cancel.origin = "https://" + host
	code, _ = d.do(cancel)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "cancelled", jobState(t, s, jobs[0]))
	code, _ = d.do(call{method: http.MethodPost, path: "/riverui/api/jobs/delete", cookie: cookie.Value, origin: "https://" + host,
		body: fmt.Sprintf(`{"ids":["%d"]}`, jobs[1])})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "deleted", jobState(t, s, jobs[1]))
	_, err := s.Pool.Exec(context.Background(),
		`UPDATE river_job SET state = 'discarded', finalized_at = now(), attempt = max_attempts WHERE id = $1`, jobs[2])
	require.NoError(t, err)

	require.Equal(t, blobState{"cancelled", "job_cancelled"}, blobOf(t, s, blobs[0]))
	require.Equal(t, blobState{"cancelled", "job_deleted"}, blobOf(t, s, blobs[1]))
	require.Equal(t, blobState{"discarded", "job_discarded"}, blobOf(t, s, blobs[2]))
	require.Equal(t, blobState{Status: "pending"}, blobOf(t, s, blobs[3]), "an untouched job's blob")

	// The tenant sees why in ingestProblems.
	r := s.API.Do(t, victim.Token, `{ account { ingestProblems { blobId status reason detail } } }`, nil)
	r.NoErrors(t)
	var got struct {
		Account struct {
			IngestProblems []struct{ BlobID, Status, Reason, Detail string }
		}
	}
	r.Decode(t, &got)
	seen := map[string]string{}
	for _, p := range got.Account.IngestProblems {
		require.NotEmpty(t, p.Detail)
		seen[p.BlobID] = p.Status + "/" + p.Reason
	}
	require.Equal(t, map[string]string{
		blobs[0]: "cancelled/job_cancelled", blobs[1]: "cancelled/job_deleted", blobs[2]: "discarded/job_discarded",
	}, seen)

	// Retrying the cancelled job from the dashboard puts its blob back in
	// line; uploading the deleted job's bytes again does too.
	code, _ = d.do(call{method: http.MethodPost, path: "/riverui/api/jobs/retry", cookie: cookie.Value, origin: "https://" + host,
		body: fmt.Sprintf(`{"ids":["%d"]}`, jobs[0])})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "available", jobState(t, s, jobs[0]))
	require.Equal(t, blobState{Status: "pending"}, blobOf(t, s, blobs[0]))
	again, job := upload(t, s, victim, "<feedback><report_metadata><report_id>1</report_id></report_metadata></feedback>")
	require.Equal(t, blobs[1], again)
	require.NotEqual(t, jobs[1], job)
	require.Equal(t, blobState{Status: "pending"}, blobOf(t, s, blobs[1]))
}

// TestSecureCookiesSettingRefusesBadValue: a mistyped RAMPART_SECURE_COOKIES
// stops the server instead of silently leaving cookies without Secure.
func TestSecureCookiesSettingRefusesBadValue(t *testing.T) {
	t.Parallel()
	bin, _ := attacktest.Binaries(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "RAMPART_SECURE_COOKIES=yes", "DATABASE_URL=postgres://127.0.0.1:1/none"}
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), `RAMPART_SECURE_COOKIES: invalid boolean value "yes" for -secure-cookies: want true or false`)
}
