package dnsedge

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestReload checks that a full load applied to the index being served
// builds what buildIndex builds from the same rows, keeps unchanged domains
// as built and leaves the served index alone.
func TestReload(t *testing.T) {
	t.Parallel()
	old := sampleIndex(t)
	oldRows := func() []row {
		var rows []row
		old.domains.all(func(_ string, d *domain) bool {
			rows = append(rows, d.row)
			return true
		})
		return rows
	}()

	var rows []row
	for _, r := range oldRows {
		switch r.name {
		case "example.com":
			// Unchanged, with a netblock as PostgreSQL could never hold it
			// but equal once masked, and empty lists that are not nil.
			r.netblocks = append(prefixes("10.1.2.3/8"), r.netblocks[1:]...)
		case "blocked.example":
			r.serial, r.mode = 50, "sending" // changed by the API
		case "long.example":
			r.dmarc = "v=DMARC1; p=reject; drifted" // changed against the contract
		case "empty.example":
			r.services, r.netblocks = []string{}, nil
		case "odd.example":
			continue // removed without a tombstone
		case "a.b.deep.example":
			r.dkim = "not JSON" // invalid now
		}
		rows = append(rows, r)
	}
	rows = append(rows, row{name: "new.example", serial: 51, mode: "sending", dmarc: "v=DMARC1; p=none", nspf: "v=spf1 -all"})
	services := sampleServices()
	services[0].ranges = prefixes("192.0.2.0/25") // changed against the contract
	services = services[:2]                       // "bare" removed

	for name, base := range map[string]*index{"served": old, "cold": nil} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := newReload(base, 52)
			for _, r := range services {
				l.service(r)
			}
			for _, r := range rows {
				l.domain(r)
			}
			got, errs := l.finish()
			want, wantErrs := buildIndex(52, rows, services)
			requireSameIndex(t, want, got)
			require.Len(t, errs, len(wantErrs))
			require.ErrorContains(t, errs[0], "a.b.deep.example")
			if base == nil {
				require.Zero(t, l.kept)
				return
			}
			require.Equal(t, 3, l.kept, "example.com, empty.example and xn--bcher-kva.example kept")
			for _, name := range []string{"example.com", "empty.example"} {
				g, _ := got.domains.get(name)
				o, _ := old.domains.get(name)
				require.Same(t, o, g, name)
			}
			for _, name := range []string{"blocked.example", "long.example"} {
				g, _ := got.domains.get(name)
				o, _ := old.domains.get(name)
				require.NotSame(t, o, g, name)
			}
			requireSameIndex(t, sampleIndex(t), old) // not modified
		})
	}

	t.Run("database went back", func(t *testing.T) {
		t.Parallel()
		l := newReload(old, 9)
		l.domain(row{name: "example.com", serial: 7, mode: "sending"})
		got, errs := l.finish()
		require.Empty(t, errs)
		require.EqualValues(t, 9, got.serial)
		require.Equal(t, 1, got.numDomains())
		require.Zero(t, got.numServices())
	})
}

// TestResync checks the periodic resync: it corrects every kind of change
// made against the contract, leaves changes in flight to the follower, and
// removes nothing the follower applied while it ran.
func TestResync(t *testing.T) {
	t.Parallel()
	const n = 2*loadPageSize + 100 // three pages
	db := newTestDB(t)
	last := genLoad(t, db.pool, n)
	e, err := New(Config{Zone: testZone, DatabaseURL: db.url}, nil, nil)
	require.NoError(t, err)
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, e.dbcfg)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, "LISTEN "+notifyChannel)
	require.NoError(t, err)
	require.NoError(t, e.fullLoad(ctx, conn, false))
	require.Equal(t, last, e.Serial())
	before := e.index.Load()

	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := db.pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	// Against the contract: no new serial, no NOTIFY.
	exec(`UPDATE edge_domain SET dmarc = 'v=DMARC1; p=reject; drifted' WHERE name = $1`, genDomainName(10))
	exec(`DELETE FROM edge_domain WHERE name = $1`, genDomainName(n-1))
	exec(`INSERT INTO edge_domain (name, serial, mode, dmarc) VALUES ('lost.example', 1, 'sending', 'v=DMARC1; p=none; lost')`)
	exec(`UPDATE edge_service SET ranges = '{192.0.2.0/24}' WHERE name = 'sender03'`)
	exec(`DELETE FROM edge_service WHERE name = 'sender05'`)
	// Notified before the resync starts: pgx holds the notification after
	// the resync's first statement, and the resync hands it to the follower.
	notified, err := putGenDomain(ctx, db.pool, 20, 1)
	require.NoError(t, err)

	// Changes committed the way the API commits them while the resync runs,
	// to names before every generated one, which the first page covers: a
	// change committed after the first page was read must survive the end
	// of the resync.
	stop := make(chan struct{})
	var (
		wg       sync.WaitGroup
		written  []string
		writeErr error
	)
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("a%04d.example", i)
			if writeErr = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
				var serial int64
				if err := tx.QueryRow(ctx, `INSERT INTO edge_domain (name, serial, mode, dmarc)
					VALUES ($1, nextval('edge_serial_seq'), 'sending', 'v=DMARC1; p=none; during') RETURNING serial`, name).Scan(&serial); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "SELECT pg_notify('rampart_edge', $1::bigint::text)", serial)
				return err
			}); writeErr != nil {
				return
			}
			written = append(written, name)
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(20 * time.Millisecond)
	err = e.resync(ctx, conn)
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.NoError(t, writeErr)
	// What was committed after the resync's last look is the follower's.
	require.NoError(t, e.fetchSince(ctx, conn, e.Serial(), nil, nil))

	ix := e.index.Load()
	d, ok := ix.domains.get(genDomainName(10))
	require.True(t, ok)
	require.Equal(t, "v=DMARC1; p=reject; drifted", d.dmarc)
	_, ok = ix.domains.get(genDomainName(n - 1))
	require.False(t, ok, "removed without a tombstone")
	d, ok = ix.domains.get("lost.example")
	require.True(t, ok, "lost notification")
	require.Equal(t, "v=DMARC1; p=none; lost", d.dmarc)
	s, ok := ix.services.get("sender03")
	require.True(t, ok)
	require.Equal(t, prefixes("192.0.2.0/24"), s.ranges)
	_, ok = ix.services.get("sender05")
	require.False(t, ok)
	d, ok = ix.domains.get(genDomainName(20))
	require.True(t, ok)
	require.Equal(t, genDMARC(20, 1), d.dmarc, "notified before the resync")
	require.GreaterOrEqual(t, ix.serial, notified)
	require.NotEmpty(t, written)
	for _, name := range written {
		_, ok := ix.domains.get(name)
		require.True(t, ok, "%s, committed while the resync ran", name)
	}
	// The rest is shared with the index before the resync.
	d, _ = ix.domains.get(genDomainName(30))
	o, _ := before.domains.get(genDomainName(30))
	require.Same(t, o, d)
}
