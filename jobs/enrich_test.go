package jobs

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/miekg/dns"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/dnscheck"
	"github.com/rampartmail/rampart/internal/enrich"
)

// TestEnrichSources runs enrich.sources on River: it starts with the
// client, and a run stopped by its deadline (here, by a rate of 4 lookups
// per second and a 1-second timeout) snoozes and goes on until every
// source is looked up.
func TestEnrichSources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var ptrQueries atomic.Int64
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if r.Question[0].Qtype == dns.TypePTR {
			ptrQueries.Add(1)
		}
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })

	pool := dbtest.NewPool(t)
	var account, domain, report uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO accounts (name) VALUES ('a') RETURNING id`).Scan(&account))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO domains (account_id, name) VALUES ($1, 'example.com') RETURNING id`, account).Scan(&domain))
	_, err = pool.Exec(ctx, `CREATE TABLE report_records_test PARTITION OF report_records DEFAULT`)
	require.NoError(t, err)
	day := time.Now().UTC()
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO reports (domain_id, reporter, org_name, report_id, policy_domain, begin_at, end_at, day, received_at)
		VALUES ($1, 'r', 'r', '1', 'example.com', $2, $2, $3, $2) RETURNING id`, domain, day, day.Format(time.DateOnly)).Scan(&report))
	_, err = pool.Exec(ctx, `INSERT INTO report_records (report_id, seq, domain_id, day, source_ip, count, disposition, dkim, spf, header_from, envelope_from, envelope_to)
		SELECT $1, i, $2, $3, ('192.0.2.' || i)::inet, 1, 'none', 'pass', 'pass', 'example.com', '', '' FROM generate_series(1, 8) i`,
		report, domain, day.Format(time.DateOnly))
	require.NoError(t, err)

	log := slog.New(slog.DiscardHandler)
	e := enrich.New(pool, enrich.Config{Checker: dnscheck.New(pc.LocalAddr().String()), Rate: 4}, log)
	workers := river.NewWorkers()
	periodic := addEnrich(workers, nil, e, time.Second, log)
	require.Len(t, periodic, 1)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Workers: workers, PeriodicJobs: periodic, Logger: log,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})

	require.Eventually(t, func() bool {
		var left int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM ip_enrichment WHERE outcome IS DISTINCT FROM 'none'`).Scan(&left))
		var queued bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT sources_queued FROM reports WHERE id = $1`, report).Scan(&queued))
		return queued && left == 0
	}, 30*time.Second, 50*time.Millisecond)
	var rows int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM ip_enrichment`).Scan(&rows))
	require.Equal(t, 8, rows)
	require.Equal(t, int64(8), ptrQueries.Load(), "each source looked up once")

	// Without an enricher the worker is registered, the job not scheduled.
	require.Empty(t, addEnrich(river.NewWorkers(), nil, nil, time.Second, log))
}
