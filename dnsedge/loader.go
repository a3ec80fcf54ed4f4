package dnsedge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/dnsedge/internal/edgedb"
)

// notifyChannel is the channel the API notifies, with the new serial as
// payload, in the transaction of every edge table change.
const notifyChannel = "rampart_edge"

const (
	// coalesceWindow is how long the follower keeps collecting
	// notifications after the first one before it fetches: a burst of
	// changes costs one query and one new index.
	coalesceWindow = 20 * time.Millisecond
	// defaultHeartbeat is how often an idle follower checks the highest
	// serial: it proves the connection alive and the index current.
	defaultHeartbeat = 15 * time.Second
	// queryTimeout bounds an incremental fetch or a heartbeat;
	// fullLoadTimeout a full load.
	queryTimeout    = 30 * time.Second
	fullLoadTimeout = 5 * time.Minute
	// Reconnection backoff: doubled after every failed attempt, with
	// jitter, up to maxBackoff.
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// follow keeps the index current with PostgreSQL until ctx is cancelled.
// While PostgreSQL is unreachable it keeps serving the last index and retries
// with backoff; every new connection starts with a full load.
func (e *Edge) follow(ctx context.Context) {
	delay := minBackoff
	for {
		loaded, err := e.followOnce(ctx)
		e.metrics.dbConnected.Set(0)
		if ctx.Err() != nil {
			return
		}
		if loaded {
			delay = minBackoff
		}
		e.log.Error("dnsedge: PostgreSQL unavailable; serving the last snapshot", "err", err, "retry_in", delay.Round(time.Millisecond),
			"serial", e.Serial(), "snapshot_age", time.Since(e.confirmedAt()).Round(time.Second))
		// Jitter spreads the reconnections of many edges after an outage.
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(delay*2, maxBackoff)
	}
}

// followOnce runs one connection: LISTEN, full load, then incremental
// updates on notifications, heartbeats and periodic full resyncs, until an
// error. loaded reports whether the full load succeeded.
func (e *Edge) followOnce(ctx context.Context) (loaded bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, e.dbcfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	// LISTEN before the full load: a change committed while the load runs
	// is then notified too, so none falls between the load and the follow.
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	e.metrics.dbConnected.Set(1)
	if err := e.fullLoad(ctx, conn, true); err != nil {
		return false, err
	}

	nextResync := time.Now().Add(e.cfg.ResyncInterval)
	nextHeartbeat := time.Now().Add(e.heartbeatEvery)
	for {
		wake := nextHeartbeat
		if nextResync.Before(wake) {
			wake = nextResync
		}
		wctx, cancel := context.WithDeadline(ctx, wake)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case n != nil: // pgx may return a buffered notification with an error
			payloads, err := e.collect(ctx, conn, n.Payload)
			if err != nil {
				return true, err
			}
			if err := e.catchUp(ctx, conn, payloads); err != nil {
				return true, err
			}
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			if now := time.Now(); !now.Before(nextResync) {
				if err := e.fullLoad(ctx, conn, false); err != nil {
					return true, err
				}
				nextResync = now.Add(e.cfg.ResyncInterval)
			} else if err := e.heartbeat(ctx, conn); err != nil {
				return true, err
			}
			nextHeartbeat = time.Now().Add(e.heartbeatEvery)
		case err == nil: // woken without a notification; wait again
		default:
			return true, fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// collect gathers the notifications arriving within coalesceWindow of the
// first one and returns all their payloads.
func (e *Edge) collect(ctx context.Context, conn *pgx.Conn, first string) ([]string, error) {
	payloads := []string{first}
	wctx, cancel := context.WithTimeout(ctx, coalesceWindow)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(wctx)
		if n != nil {
			payloads = append(payloads, n.Payload)
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			return payloads, nil
		default:
			return nil, fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// catchUp fetches the rows changed since the index's serial and publishes a
// new index with them.
//
// Serials come from a sequence, taken when a transaction writes and visible
// when it commits, so transactions may commit out of serial order: the
// follower may already hold serial 6 when serial 5 commits. Notifications
// arrive in commit order and carry the serial, so a notified serial at or
// below the index's is fetched by itself as well. (Most such serials are
// merely late notifications of rows already fetched; fetchSince drops rows it
// already has.)
func (e *Edge) catchUp(ctx context.Context, conn *pgx.Conn, payloads []string) error {
	cur := e.Serial()
	var late []int64
	for _, p := range payloads {
		if s, err := strconv.ParseInt(p, 10, 64); err == nil && s <= cur {
			late = append(late, s)
		}
	}
	return e.fetchSince(ctx, conn, cur, late)
}

// fetchSince applies the rows of both edge tables with a serial above after
// or in late.
func (e *Edge) fetchSince(ctx context.Context, conn *pgx.Conn, after int64, late []int64) error {
	start := time.Now()
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var (
		domains  []edgedb.ChangedSinceRow
		services []edgedb.ServicesChangedSinceRow
	)
	// Both tables at one point, so that the index never holds a service
	// change without a domain change committed before it.
	err := pgx.BeginTxFunc(qctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		q := edgedb.New(tx)
		var err error
		if domains, err = q.ChangedSince(qctx, edgedb.ChangedSinceParams{After: after, Late: late}); err != nil {
			return err
		}
		services, err = q.ServicesChangedSince(qctx, edgedb.ServicesChangedSinceParams{After: after, Late: late})
		return err
	})
	if err != nil {
		return fmt.Errorf("fetch changes since serial %d: %w", after, err)
	}
	cur := e.index.Load()
	var rows []row
	for _, c := range domains {
		r := domainRow(c.EdgeDomain)
		if d, ok := cur.domains.get(r.name); ok && d.serial == r.serial && !r.deleted ||
			!ok && r.deleted && r.serial <= cur.serial {
			continue // already applied
		}
		rows = append(rows, r)
	}
	var srows []serviceRow
	for _, c := range services {
		r := serviceRowOf(c.EdgeService)
		if s, ok := cur.services.get(r.name); ok && s.serial == r.serial && !r.deleted ||
			!ok && r.deleted && r.serial <= cur.serial {
			continue // already applied
		}
		srows = append(srows, r)
	}
	if len(rows) > 0 || len(srows) > 0 {
		next, errs := cur.apply(rows, srows)
		e.logRowErrors(errs)
		e.log.Debug("dnsedge: applied changes", "after", after, "late", len(late), "rows", len(rows), "services", len(srows), "serial", next.serial, "duration", time.Since(start))
		e.publish(next)
		e.requestSave(false)
	}
	e.confirm(start)
	return nil
}

// domainRow converts an edge_domain row as sqlc reads it.
func domainRow(d edgedb.EdgeDomain) row {
	return row{
		name: d.Name, serial: d.Serial, mode: d.Mode, dmarc: d.Dmarc, deleted: d.Deleted,
		netblocks: d.Netblocks, services: d.Services, nspf: d.Nspf, dkim: string(d.Dkim), bimi: d.Bimi,
	}
}

// serviceRowOf converts an edge_service row as sqlc reads it.
func serviceRowOf(s edgedb.EdgeService) serviceRow {
	return serviceRow{
		name: s.Name, serial: s.Serial, ranges: s.Ranges, heloSuffixes: s.HeloSuffixes,
		include: s.Include, deleted: s.Deleted,
	}
}

// heartbeat checks that the index is current: it fetches what a lost
// notification would have announced and reloads in full if the database's
// serial went backwards (a restored or different database).
func (e *Edge) heartbeat(ctx context.Context, conn *pgx.Conn) error {
	start := time.Now()
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	serial, err := edgedb.New(conn).MaxSerial(qctx)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	switch cur := e.Serial(); {
	case serial > cur:
		return e.fetchSince(ctx, conn, cur, nil)
	case serial < cur:
		e.log.Warn("dnsedge: database serial is below the snapshot's; reloading in full", "database_serial", serial, "snapshot_serial", cur)
		return e.fullLoad(ctx, conn, true)
	}
	e.confirm(start)
	return nil
}

// fullLoad reads both edge tables at one consistent point and publishes the
// index built from them.
func (e *Edge) fullLoad(ctx context.Context, conn *pgx.Conn, logInfo bool) error {
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, fullLoadTimeout)
	defer cancel()
	var (
		serial   int64
		live     []edgedb.LiveDomainsRow
		services []edgedb.LiveServicesRow
	)
	// One REPEATABLE READ transaction: the serial and the rows of both
	// tables come from the same snapshot of the database.
	err := pgx.BeginTxFunc(lctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		q := edgedb.New(tx)
		var err error
		if serial, err = q.MaxSerial(lctx); err != nil {
			return err
		}
		if services, err = q.LiveServices(lctx); err != nil {
			return err
		}
		live, err = q.LiveDomains(lctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("load edge tables: %w", err)
	}
	rows := make([]row, len(live))
	for i, l := range live {
		rows[i] = domainRow(l.EdgeDomain)
	}
	srows := make([]serviceRow, len(services))
	for i, s := range services {
		srows[i] = serviceRowOf(s.EdgeService)
	}
	ix, errs := buildIndex(serial, rows, srows)
	e.logRowErrors(errs)
	e.publish(ix)
	e.confirm(start)
	e.requestSave(true)
	level := e.log.Debug
	if logInfo {
		level = e.log.Info
	}
	level("dnsedge: loaded edge tables", "serial", ix.serial, "domains", ix.numDomains(), "services", ix.numServices(), "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// logRowErrors logs rows left out of an index; a few in full, then a count.
func (e *Edge) logRowErrors(errs rowErrors) {
	const show = 10
	for i, err := range errs {
		if i == show {
			e.log.Error("dnsedge: more invalid edge table rows skipped", "count", len(errs)-show)
			return
		}
		e.log.Error("dnsedge: skipping invalid edge table row", "err", err)
	}
}
