// Package apitest runs the real API (HTTP, GraphQL, services, PostgreSQL)
// and, on demand, a real dnsedge for end-to-end tests, and offers a small
// GraphQL client. Nothing is mocked: requests go over loopback HTTP and DNS.
package apitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/dnsedge"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/edgeconf"
)

// EdgeZone is the edge zone the test API and edges use: the development
// default, which the binaries serve only with RAMPART_ALLOW_DEV_ZONE.
const EdgeZone = edgeconf.DevZone

// ReportsDomain is the domain of the test API's report addresses.
const ReportsDomain = edgeconf.DevReportsDomain

// Env is one running API on its own database.
type Env struct {
	T           testing.TB
	URL         string // the GraphQL endpoint
	DatabaseURL string
	Pool        *pgxpool.Pool
	Config      *app.Config
	// Seed is the access-token signing key's seed, for forging test tokens.
	Seed []byte
	// Queries counts SQL statements run through the API's pool.
	Queries atomic.Int64
	// SMTPAddr is the rua mail server's address, when the config turns it on.
	SMTPAddr string
	// DNS is the world as the API's DNS resolver sees it: customers' own
	// zones, where they publish ownership proofs ([Env.Prove]). Nil when
	// the API runs elsewhere (Attach) unless the test sets it.
	DNS *Zone
}

type counter struct{ n *atomic.Int64 }

func (c counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Logger returns a logger writing to the test log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// Start runs an API on a fresh database and stops it when the test ends.
func Start(t testing.TB) *Env { t.Helper(); return StartWith(t, nil) }

// StartWith is Start with a chance to change the configuration first (to
// run workers, or the SMTP intake).
func StartWith(t testing.TB, configure func(*app.Config)) *Env {
	t.Helper()
	e := &Env{T: t, DatabaseURL: dbtest.NewDB(t)}
	seed, err := auth.GenerateSeed()
	require.NoError(t, err)
	e.Seed = seed
	pcfg, err := pgxpool.ParseConfig(e.DatabaseURL)
	require.NoError(t, err)
	pcfg.ConnConfig.Tracer = counter{&e.Queries}
	app.ConfigureSessions(pcfg)
	ctx, cancel := context.WithCancel(context.Background())
	e.Pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	require.NoError(t, err)
	e.DNS = ServeZone(t, nil)
	e.Config = &app.Config{
		APIAddr: "127.0.0.1:0", EdgeZone: EdgeZone, ReportsDomain: ReportsDomain, JWTKeyID: "k1",
		JWTKey: base64.StdEncoding.EncodeToString(seed), LogLevel: "warn", DNSResolver: e.DNS.Addr,
	}
	if configure != nil {
		configure(e.Config)
	}
	api, err := app.NewAPI(ctx, e.Pool, e.Config, Logger(t))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- api.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("API did not stop")
		}
		e.Pool.Close()
	})
	e.URL = "http://" + api.HTTP.Addr() + "/graphql"
	if api.SMTP != nil {
		e.SMTPAddr = api.SMTP.Addr()
	}
	return e
}

// StartEdge runs a dnsedge following the env's database on a loopback port.
func (e *Env) StartEdge(t testing.TB, snapshot string) *dnsedge.Edge {
	t.Helper()
	edge, err := dnsedge.New(dnsedge.Config{
		Zone: EdgeZone, Listen: "127.0.0.1:0", DatabaseURL: e.DatabaseURL, SnapshotPath: snapshot, ReportsDomain: ReportsDomain,
	}, Logger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, edge.Start(ctx))
	t.Cleanup(func() {
		cancel()
		require.NoError(t, edge.Wait())
	})
	return edge
}

var testPassword = "correct horse battery staple"

// Owner is a user who owns an account.
type Owner struct {
	Email, Password string
	UserID          uuid.UUID
	AccountID       uuid.UUID
	// Token is an access token from a real login.
	Token string
	// RefreshToken is the refresh token of that login.
	RefreshToken string
}

// NewOwner creates an account with an owner and logs the owner in.
func (e *Env) NewOwner(t testing.TB, accountName string) Owner {
	t.Helper()
	return e.NewOwnerUnder(t, accountName, nil)
}

// NewOwnerUnder is NewOwner for a customer account of an MSP account.
func (e *Env) NewOwnerUnder(t testing.TB, accountName string, parent *uuid.UUID) Owner {
	t.Helper()
	hash, err := auth.HashPassword(testPassword)
	require.NoError(t, err)
	email := uuid.NewString()[:8] + "@owner.test"
	a, u, err := account.NewService(e.Pool).CreateOwner(context.Background(), account.NewOwner{
		Email: email, Name: accountName + " owner", PasswordHash: hash, AccountName: accountName, ParentID: parent,
	})
	require.NoError(t, err)
	o := Owner{Email: email, Password: testPassword, UserID: u.ID, AccountID: a.ID}
	r := e.Do(t, "", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }`,
		map[string]any{"e": email, "p": testPassword})
	r.NoErrors(t)
	var d struct {
		Login struct{ AccessToken, RefreshToken string }
	}
	r.Decode(t, &d)
	o.Token, o.RefreshToken = d.Login.AccessToken, d.Login.RefreshToken
	return o
}

// Prove publishes in e.DNS, as the owner of an account would in their own
// zone, the record proving that the account controls name: the account's
// domainProof, read with the caller's token (accountID "" is the token's
// default account). A later addDomain of the name in that account is
// verified at once, and verifyDomain verifies an existing claim.
func (e *Env) Prove(t testing.TB, token, accountID, name string) {
	t.Helper()
	require.NotNil(t, e.DNS, "the env has no DNS zone for proofs")
	vars := map[string]any{"n": name}
	if accountID != "" {
		vars["a"] = accountID
	}
	r := e.Do(t, token, `query($a: ID, $n: String!) { account(id: $a) { domainProof(name: $n) { name type value } } }`, vars)
	r.NoErrors(t)
	var d struct {
		Account struct {
			DomainProof struct{ Name, Type, Value string }
		}
	}
	r.Decode(t, &d)
	require.Equal(t, "TXT", d.Account.DomainProof.Type)
	e.DNS.Add(d.Account.DomainProof.Name, d.Account.DomainProof.Value)
}

// AddVerifiedDomain adds a domain to the owner's account after publishing
// the account's proof for it, so that the edge serves it at once.
func (e *Env) AddVerifiedDomain(t testing.TB, o Owner, name string) {
	t.Helper()
	e.Prove(t, o.Token, o.AccountID.String(), name)
	r := e.Do(t, o.Token, `mutation($a: ID, $n: String!) { addDomain(accountId: $a, name: $n) { verified } }`,
		map[string]any{"a": o.AccountID.String(), "n": name})
	r.NoErrors(t)
	require.JSONEq(t, `{"addDomain": {"verified": true}}`, string(r.Data))
}

// AddVerifiedDomainIn adds a verified domain to an account, as the caller
// of token (an owner of the account or of one above it), after publishing
// the account's proof for it.
func (e *Env) AddVerifiedDomainIn(t testing.TB, token, accountID, name string) {
	t.Helper()
	e.Prove(t, token, accountID, name)
	r := e.Do(t, token, `mutation($a: ID, $n: String!) { addDomain(accountId: $a, name: $n) { verified } }`,
		map[string]any{"a": accountID, "n": name})
	r.NoErrors(t)
	require.JSONEq(t, `{"addDomain": {"verified": true}}`, string(r.Data))
}

// Response is a GraphQL response.
type Response struct {
	Status int
	Data   json.RawMessage
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	}
	Raw string
}

// Do sends one GraphQL request with an optional bearer token.
func (e *Env) Do(t testing.TB, token, query string, vars map[string]any) *Response {
	t.Helper()
	return Post(t, e.URL, "Bearer "+token, query, vars)
}

// Post sends one GraphQL request with a raw Authorization header ("" or
// "Bearer " for none).
func Post(t testing.TB, url, authorization, query string, vars map[string]any) *Response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" && authorization != "Bearer " {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := &Response{Status: resp.StatusCode, Raw: string(raw)}
	require.NoError(t, json.Unmarshal(raw, r), "response: %s", raw)
	return r
}

// NoErrors fails the test if the response has errors.
func (r *Response) NoErrors(t testing.TB) {
	t.Helper()
	require.Empty(t, r.Errors, "response: %s", r.Raw)
}

// Code returns the first error's extensions.code ("" if none).
func (r *Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// RequireCode fails unless every error has the code and there is one.
func (r *Response) RequireCode(t testing.TB, code string) {
	t.Helper()
	require.NotEmpty(t, r.Errors, "want %s, got response: %s", code, r.Raw)
	for _, e := range r.Errors {
		require.Equal(t, code, e.Extensions["code"], "response: %s", r.Raw)
	}
}

// Decode unmarshals the data.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Data, v), "data: %s", r.Data)
}

// Services returns domain services over the env's database, for system work
// a test drives directly (such as the catalog resolution job).
func (e *Env) Services(t testing.TB) *app.Services {
	t.Helper()
	svc, err := app.NewServices(e.Pool, e.Config, Logger(t))
	require.NoError(t, err)
	return svc
}

// Attach is an Env for an API already running elsewhere (a built binary
// started by a test): Do and NewOwner work against url and the database.
func Attach(t testing.TB, url, databaseURL string, pool *pgxpool.Pool, seed []byte) *Env {
	t.Helper()
	return &Env{
		T: t, URL: url, DatabaseURL: databaseURL, Pool: pool, Seed: seed,
		Config: &app.Config{
			EdgeZone: EdgeZone, ReportsDomain: ReportsDomain, JWTKeyID: "k1",
			JWTKey: base64.StdEncoding.EncodeToString(seed), LogLevel: "warn", DNSResolver: "off",
		},
	}
}
