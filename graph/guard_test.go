package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
)

// attackDocuments are documents of about 1 KB whose fragments each spread
// the next one twice, so that they expand to 2^n selections: plain spreads,
// the same with aliased fields, and with inline fragments. Before the guard,
// gqlgen's validation and complexity walks expanded every spread (a 1 KB
// document cost 29 s of CPU).
func attackDocuments(t testing.TB) map[string]string {
	t.Helper()
	name := func(i int) string { // a, b, ..., z, ba, bb, ...
		s := string(rune('a' + i%26))
		for i /= 26; i > 0; i /= 26 {
			s = string(rune('a'+i%26)) + s
		}
		return s
	}
	build := func(level func(i int) string, last string) string {
		var b strings.Builder
		b.WriteString("{...a}")
		i := 0
		for ; b.Len() < 950; i++ {
			b.WriteString(level(i))
		}
		b.WriteString("fragment " + name(i) + " on Query{" + last + "}")
		return b.String()
	}
	docs := map[string]string{
		"spreads": build(func(i int) string {
			return "fragment " + name(i) + " on Query{..." + name(i+1) + "..." + name(i+1) + "}"
		}, "viewer{user{email}}"),
		"aliases": build(func(i int) string {
			return "fragment " + name(i) + " on Query{t:__typename..." + name(i+1) + "..." + name(i+1) + "}"
		}, "b:viewer{user{n:name}}"),
		"inline": build(func(i int) string {
			return "fragment " + name(i) + " on Query{...on Query{..." + name(i+1) + "}...{..." + name(i+1) + "}}"
		}, "viewer{user{email}}"),
	}
	for k, d := range docs {
		require.Less(t, len(d), 1100, k)
		require.Greater(t, strings.Count(d, "fragment"), 20, k) // at least 2^20 selections expanded
	}
	return docs
}

// post sends a raw JSON body and returns the status and decoded response.
func post(t testing.TB, url, token string, body []byte) (int, *apitest.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := &apitest.Response{Status: resp.StatusCode, Raw: string(raw)}
	require.NoError(t, json.Unmarshal(raw, r), "response: %s", raw)
	return resp.StatusCode, r
}

func postQuery(t testing.TB, url, token, query string, vars map[string]any) (int, *apitest.Response) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	return post(t, url, token, body)
}

// requireRefused checks a refusal before execution: a 400-class status,
// BAD_USER_INPUT, no data, and no SQL statement run (not even for the
// bearer credential).
func requireRefused(t *testing.T, env *apitest.Env, token, query string, vars map[string]any, msg string) *apitest.Response {
	t.Helper()
	before := env.Queries.Load()
	status, r := postQuery(t, env.URL, token, query, vars)
	require.GreaterOrEqual(t, status, 400, r.Raw)
	require.Less(t, status, 500, r.Raw)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Len(t, r.Errors, 1, r.Raw)
	require.Contains(t, []string{"", "null"}, string(r.Data), r.Raw)
	require.Regexp(t, msg, r.Errors[0].Message)
	require.Equal(t, before, env.Queries.Load(), "SQL ran for a refused operation: %s", r.Raw)
	return r
}

// TestGuardRefusesBeforeWork: documents that expand exponentially through
// fragments, fragment cycles, and documents over each limit are refused
// quickly, for anonymous and signed-in callers alike, before the credential
// is checked or any SQL runs; legitimate documents with fragments still run.
func TestGuardRefusesBeforeWork(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Guard")
	env.Do(t, o.Token, `mutation { addDomain(name: "guard-example.com") { name } }`, nil).NoErrors(t)

	var fan strings.Builder // many definitions times many selections
	fan.WriteString("{ viewer { user { email } } }\n")
	for i := range 120 {
		fmt.Fprintf(&fan, "fragment u%d on User { %s }\n", i, strings.Repeat("email ", 4))
	}
	cases := map[string]struct{ query, msg string }{
		"cycle":           {`{ ...a } fragment a on Query { ...b } fragment b on Query { viewer { user { email } } ...a }`, `fragment a spreads itself`},
		"self cycle":      {`{ viewer { ...u } } fragment u on Viewer { user { email } ...u }`, `fragment u spreads itself`},
		"fields":          {`{ viewer { user { ` + strings.Repeat("email ", 501) + `} } }`, `expands to 503 field selections; the limit is 500`},
		"fragment fields": {`{ viewer { user { email } } } fragment u on User { ` + strings.Repeat("email ", 501) + `}`, `fragment u expands to 501 field selections`},
		"unused fragment": {`{ viewer { user { email } } } fragment a on Query { ...b ...b } fragment b on Query { ...c ...c } fragment c on Query { ...d ...d } fragment d on Query { ...e ...e } fragment e on Query { ...f ...f } fragment f on Query { ...g ...g } fragment g on Query { ...h ...h } fragment h on Query { ...i ...i } fragment i on Query { ...j ...j } fragment j on Query { viewer { user { email } } }`, `fragment a expands to 1536 field selections`},
		"definitions":     {fan.String(), `121 definitions and \d+ selections; the limit on their product is 50000`},
		"depth via fragments": {`{ viewer { accounts { ...d } } } fragment d on Account { domains { nodes { account { domains { nodes { account { domains { nodes { account { domains { nodes { name } } } } } } } } } } } }`,
			`nested 14 levels deep; the limit is 12`},
		"complexity via variables": {`query($n: Int = 100) { domains(first: $n) { nodes { account { domains(first: $n) { nodes { name } } } } } }`, `complexity 20301; the limit is 5000`},
	}
	for name, d := range attackDocuments(t) {
		cases["attack "+name] = struct{ query, msg string }{d, `limit is`}
	}
	for name, tc := range cases {
		for _, token := range []string{"", o.Token} {
			start := time.Now()
			requireRefused(t, env, token, tc.query, nil, tc.msg)
			// A generous wall-clock bound for the race detector; the CPU
			// bound is TestBoundedGraphQLCostBeforeWork in make test-attacks.
			require.Less(t, time.Since(start), 2*time.Second, name)
		}
	}
	// The complexity counts variables sent with the request, too.
	requireRefused(t, env, o.Token, `query($n: Int) { domains(first: $n) { nodes { account { domains(first: $n) { nodes { name } } } } } }`,
		map[string]any{"n": 100}, `complexity 20301`)

	// Fragments measured once are still counted wherever they are spread.
	r := env.Do(t, o.Token, `query Q { ...q ...q } fragment q on Query { domains(first: 5) { nodes { ...d } } viewer { user { email } } }
		fragment d on Domain { name mode a: name ... on Domain { unicodeName } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domains": {"nodes": [{"name": "guard-example.com", "mode": "SENDING", "a": "guard-example.com", "unicodeName": "guard-example.com"}]},
		"viewer": {"user": {"email": "`+o.Email+`"}}}`, string(r.Data))
}

// TestNoFieldSuggestions: validation errors name what is wrong and suggest
// nothing from the schema, to anonymous and signed-in callers.
func TestNoFieldSuggestions(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Suggest")
	cases := []struct {
		query string
		vars  map[string]any
		hint  string // what a suggestion would name
	}{
		{`{ viewr { user { email } } }`, nil, "viewer"},
		{`{ viewer { user { emial } } }`, nil, "email"},
		{`{ viewer }`, nil, "{ ... }"},
		{`{ domain(nme: "x.com") { name } }`, nil, `"name"?`},
		{`mutation { setDomainMode(name: "x.com", mode: BLOKED) { name } }`, nil, "BLOCKED"},
		{`mutation { updateDmarcPolicy(name: "x.com", policy: {pc: 5}) { name } }`, nil, `"pct"`},
		{`query($n: Strin!) { domain(name: $n) { name } }`, map[string]any{"n": "x.com"}, `"String"`},
		{`mutation($p: DmarcPolicyInput!) { updateDmarcPolicy(name: "x.com", policy: $p) { name } }`, map[string]any{"p": map[string]any{"pc": 5}}, `"pct"`},
		{`mutation($m: DomainMode!) { setDomainMode(name: "x.com", mode: $m) { name } }`, map[string]any{"m": "BLOKED"}, "BLOCKED"},
		{`{ viewer { ... on Usr { email } } }`, nil, `"User"`},
	}
	for _, tc := range cases {
		for _, token := range []string{"", o.Token} {
			r := env.Do(t, token, tc.query, tc.vars)
			require.NotEmpty(t, r.Errors, "%s: %s", tc.query, r.Raw)
			for _, e := range r.Errors {
				require.NotContains(t, e.Message, "Did you mean", tc.query)
				require.NotContains(t, e.Message, tc.hint, tc.query)
			}
		}
	}
}

// TestBadStringsRefused: a NUL character or invalid UTF-8 in any string
// argument, input field or variable is refused with a 400-class
// BAD_USER_INPUT that names it, before any SQL (PostgreSQL cannot store
// NUL in text: it used to surface as INTERNAL).
func TestBadStringsRefused(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Strings")
	env.Do(t, o.Token, `mutation { addDomain(name: "strings-example.com") { name } }`, nil).NoErrors(t)

	cases := []struct {
		token, query string
		vars         map[string]any
		field, msg   string
	}{
		{"", `mutation { login(email: "a\u0000@example.com", password: "x") { accessToken } }`, nil,
			"email", `argument email of field login contains a NUL character`},
		{"", `mutation($e: String!) { login(email: $e, password: "x") { accessToken } }`, map[string]any{"e": "a\x00@example.com"},
			"$e", `variable \$e contains a NUL character`},
		{o.Token, `mutation { addDomain(name: "x\u0000.example.com") { name } }`, nil,
			"name", `argument name of field addDomain contains a NUL character`},
		{o.Token, `mutation { updateDmarcPolicy(name: "strings-example.com", policy: {rua: ["mailto:a@example.com", "mailto:b\u0000@example.com"]}) { name } }`, nil,
			"policy.rua[1]", `argument policy.rua\[1\] of field updateDmarcPolicy contains a NUL character`},
		{o.Token, `mutation($p: DmarcPolicyInput!) { updateDmarcPolicy(name: "strings-example.com", policy: $p) { name } }`,
			map[string]any{"p": map[string]any{"rua": []any{"mailto:a@example.com", "mailto:\x00@example.com"}}},
			"$p.rua[1]", `variable \$p.rua\[1\] contains a NUL character`},
		{o.Token, `query($f: DomainFilter) { domains(filter: $f) { totalCount } }`, map[string]any{"f": map[string]any{"namePrefix": "\x00"}},
			"$f.namePrefix", `variable \$f.namePrefix contains a NUL character`},
		{o.Token, `{ domains(filter: {namePrefix: "\u0000"}) { totalCount } }`, nil,
			"filter.namePrefix", `argument filter.namePrefix of field domains contains a NUL character`},
		{o.Token, `{ domain(name: "strings-example.com") @include(if: true) { name } account(id: "\u0000") { name } }`, nil,
			"id", `argument id of field account contains a NUL character`},
		{o.Token, `query($id: ID = "\u0000") { account(id: $id) { name } }`, nil,
			"$id", `the default value of \$id contains a NUL character`},
	}
	for _, tc := range cases {
		r := requireRefused(t, env, tc.token, tc.query, tc.vars, tc.msg)
		require.Equal(t, tc.field, r.Errors[0].Extensions["field"], r.Raw)
	}

	// Invalid UTF-8 in the JSON body: Go's decoder would turn it into
	// U+FFFD silently; it is refused with 400, naming the member.
	for _, tc := range []struct{ body, field string }{
		{`{"query": "mutation($p: DmarcPolicyInput!) { updateDmarcPolicy(name: \"strings-example.com\", policy: $p) { name } }", "variables": {"p": {"rua": ["mailto:a@example.com", "mailto:` + "\xff" + `@example.com"]}}}`, "$p.rua[1]"},
		{`{"variables": {"n": "ok", "m": "` + "\xc3(" + `"}, "query": "query($n: String!, $m: String!) { domain(name: $n) { name } }"}`, "$m"},
		{`{"query": "{ domain(name: \"` + "\xe2\x28\xa1" + `.example.com\") { name } }"}`, "query"},
		{`{"operationName": "` + "\xff" + `", "query": "{ viewer { user { email } } }"}`, "operationName"},
	} {
		before := env.Queries.Load()
		status, r := post(t, env.URL, o.Token, []byte(tc.body))
		require.Equal(t, http.StatusBadRequest, status, r.Raw)
		r.RequireCode(t, "BAD_USER_INPUT")
		require.Equal(t, tc.field, r.Errors[0].Extensions["field"], r.Raw)
		require.Contains(t, r.Errors[0].Message, tc.field+" in the request is not valid UTF-8")
		require.Equal(t, before, env.Queries.Load())
	}
	// Valid UTF-8 beyond ASCII still works.
	env.Do(t, o.Token, `mutation { addDomain(name: "bücher-example.com") { name unicodeName } }`, nil).NoErrors(t)
}

// TestClientDisconnectCancelsRequest: when the client leaves, the request's
// context ends and the SQL it waits on is cancelled.
func TestClientDisconnectCancelsRequest(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Leaver")
	env.Do(t, o.Token, `mutation { addDomain(name: "leaver-example.com") { name } }`, nil).NoErrors(t)

	// Hold a lock that the domains query waits for.
	ctx := context.Background()
	tx, err := env.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `LOCK TABLE domains IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	waiting := func() int {
		var n int
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'active' AND wait_event_type = 'Lock'`).Scan(&n))
		return n
	}

	clientCtx, leave := context.WithCancel(ctx)
	body, err := json.Marshal(map[string]any{"query": `{ domains { nodes { name } } }`})
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(clientCtx, http.MethodPost, env.URL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+o.Token)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		done <- err
	}()
	require.Eventually(t, func() bool { return waiting() == 1 }, 10*time.Second, 10*time.Millisecond,
		"the request's SQL never waited on the lock")
	leave()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Eventually(t, func() bool { return waiting() == 0 }, 5*time.Second, 10*time.Millisecond,
		"the request's SQL still waits after the client left")
	require.NoError(t, tx.Rollback(ctx))
	// The server is fine afterwards.
	env.Do(t, o.Token, `{ domains { totalCount } }`, nil).NoErrors(t)
}
