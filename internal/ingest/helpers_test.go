package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/ingest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is one test's database with an account hosting the policy domains of
// the report package's sample files.
type env struct {
	pool    *pgxpool.Pool
	store   *ingest.Store
	worker  *ingest.Worker
	opts    ingest.Options
	account uuid.UUID
	domains map[string]uuid.UUID
}

func setup(t *testing.T, opts ...ingest.Options) *env {
	t.Helper()
	return setupPool(t, dbtest.NewPool(t), opts...)
}

func setupPool(t *testing.T, pool *pgxpool.Pool, opts ...ingest.Options) *env {
	t.Helper()
	// An insert-only client: tests work the jobs themselves.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	e := &env{pool: pool, store: ingest.NewStore(pool, client, nil), domains: map[string]uuid.UUID{}}
	if len(opts) > 0 {
		e.opts = opts[0]
	}
	e.worker = ingest.NewWorker(pool, e.opts)
	e.account = e.addAccount(t, "acme", nil)
	for _, name := range []string{"example.com", "test.net", "indemed.com", "borschow.com"} {
		e.addDomain(t, e.account, name)
	}
	return e
}

func (e *env) addAccount(t *testing.T, name string, parent *uuid.UUID) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, e.pool.QueryRow(context.Background(),
		`INSERT INTO accounts (name, parent_id) VALUES ($1, $2) RETURNING id`, name, parent).Scan(&id))
	return id
}

func (e *env) addDomain(t *testing.T, account uuid.UUID, name string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, e.pool.QueryRow(context.Background(),
		`INSERT INTO domains (account_id, name, verified_at, verified_how, claim_expires_at)
		 VALUES ($1, $2, now(), 'operator', NULL) RETURNING id`, account, name).Scan(&id))
	e.domains[name] = id
	return id
}

// upload accepts raw as an upload to the env's account.
func (e *env) upload(t *testing.T, raw []byte) ingest.Accepted {
	t.Helper()
	return e.accept(t, ingest.Incoming{Source: ingest.SourceUpload, Raw: raw, AccountID: &e.account})
}

func (e *env) accept(t *testing.T, in ingest.Incoming) ingest.Accepted {
	t.Helper()
	acc, err := e.store.Accept(context.Background(), in)
	require.NoError(t, err)
	return acc
}

// ingest uploads raw and works its job; it returns the blob and the job's
// error.
func (e *env) ingest(t *testing.T, raw []byte) (uuid.UUID, error) {
	t.Helper()
	acc := e.upload(t, raw)
	require.False(t, acc.Duplicate)
	return acc.BlobID, e.worker.Ingest(context.Background(), acc.BlobID)
}

// mustStore ingests raw and requires it stored.
func (e *env) mustStore(t *testing.T, raw []byte) uuid.UUID {
	t.Helper()
	id, err := e.ingest(t, raw)
	require.NoError(t, err)
	require.Equal(t, "stored", e.blob(t, id).Status)
	return id
}

type blobRow struct {
	Status         string
	Reason, Detail *string
	ReportID       *uuid.UUID
	Warnings       []map[string]any
}

func (e *env) blob(t *testing.T, id uuid.UUID) blobRow {
	t.Helper()
	var b blobRow
	require.NoError(t, e.pool.QueryRow(context.Background(),
		`SELECT status, refusal_reason, refusal_detail, report_id, warnings FROM report_blobs WHERE id = $1`, id).
		Scan(&b.Status, &b.Reason, &b.Detail, &b.ReportID, &b.Warnings))
	return b
}

// count runs a query that returns one number.
func (e *env) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n *int64
	require.NoError(t, e.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	if n == nil {
		return 0
	}
	return *n
}

// stored returns the number of reports, records, rollup messages and
// duplicates in the database.
func (e *env) stored(t *testing.T) (reports, records, messages, duplicates int64) {
	t.Helper()
	return e.count(t, `SELECT count(*) FROM reports`),
		e.count(t, `SELECT count(*) FROM report_records`),
		e.count(t, `SELECT sum(messages) FROM report_sources`),
		e.count(t, `SELECT count(*) FROM report_duplicates`)
}

func cancelled(err error) bool {
	var jc *river.JobCancelError
	return errors.As(err, &jc)
}

// rec is one record of a report built by xmlReport.
type rec struct {
	ip          string
	count       int
	disposition string
	dkim, spf   string
	headerFrom  string
}

// xmlReport builds an RFC 7489 report.
func xmlReport(org, id, domain string, begin time.Time, recs ...rec) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0"?>
<feedback>
  <version>1.0</version>
  <report_metadata><org_name>%s</org_name><email>dmarc@%s</email><report_id>%s</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>%s</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct></policy_published>
`, org, org, id, begin.Unix(), begin.Add(24*time.Hour-time.Second).Unix(), domain)
	for _, r := range recs {
		from := r.headerFrom
		if from == "" {
			from = domain
		}
		fmt.Fprintf(&b, `  <record><row><source_ip>%s</source_ip><count>%d</count>
    <policy_evaluated><disposition>%s</disposition><dkim>%s</dkim><spf>%s</spf></policy_evaluated></row>
    <identifiers><header_from>%s</header_from></identifiers>
    <auth_results><spf><domain>%s</domain><result>%s</result></spf></auth_results></record>
`, r.ip, r.count, r.disposition, r.dkim, r.spf, from, from, r.spf)
	}
	b.WriteString("</feedback>\n")
	return []byte(b.String())
}

// simple returns a one-record report for domain.
func simple(id, domain string, begin time.Time) []byte {
	return xmlReport("reporter.example", id, domain, begin, rec{"192.0.2.1", 3, "none", "pass", "pass", ""})
}

var day0 = time.Date(2024, 6, 13, 0, 0, 0, 0, time.UTC)

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockWaiters counts the sessions of this test's database that wait on a
// lock.
func (e *env) lockWaiters(t *testing.T) int64 {
	return e.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
}

var riverEvents = []river.EventKind{river.EventKindJobCompleted, river.EventKindJobCancelled, river.EventKindJobFailed}

type (
	riverClient = river.Client[pgx.Tx]
	riverEvent  = river.Event
)

// startRiver runs a River client with the ingest workers and the retention
// periodic job until the test ends.
func (e *env) startRiver(t *testing.T) *riverClient {
	t.Helper()
	return e.startRiverWith(t, map[string]river.QueueConfig{
		river.QueueDefault: {MaxWorkers: 2},
		ingest.Queue:       {MaxWorkers: 4, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond},
	}, ingest.RetentionPeriodicJob())
}

// startRiverWith is startRiver with the given queues and periodic jobs.
func (e *env) startRiverWith(t *testing.T, queues map[string]river.QueueConfig, periodic ...*river.PeriodicJob) *riverClient {
	t.Helper()
	workers := river.NewWorkers()
	ingest.AddWorkers(workers, e.pool, e.opts, nil)
	client, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{
		Workers:      workers,
		Queues:       queues,
		PeriodicJobs: periodic,
		Logger:       slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})
	return client
}

// waitJobs waits for the jobs to end (completed, cancelled or failed) and
// returns the event kind each ended with.
func waitJobs(t *testing.T, events <-chan *river.Event, ids ...int64) map[int64]string {
	t.Helper()
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[int64]string{}
	timeout := time.After(30 * time.Second)
	for len(got) < len(ids) {
		select {
		case ev := <-events:
			if ev.Job != nil && want[ev.Job.ID] {
				got[ev.Job.ID] = string(ev.Kind)
			}
		case <-timeout:
			t.Fatalf("timed out waiting for jobs %v; got %v", ids, got)
		}
	}
	return got
}

// token makes an API token of the account (the scope of a token made before
// scopes: an owner of the account) and returns a context acting as it.
func (e *env) token(t *testing.T, account uuid.UUID) context.Context {
	t.Helper()
	var id uuid.UUID
	hash := uuid.New()
	require.NoError(t, e.pool.QueryRow(context.Background(), `INSERT INTO api_tokens (account_id, name, hint, token_hash)
		VALUES ($1, 'test', 'test', $2) RETURNING id`, account, hash[:]).Scan(&id))
	return access.NewContext(context.Background(), access.Principal{APITokenID: id, TokenAccountID: account})
}
