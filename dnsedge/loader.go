package dnsedge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/dnsedge/internal/edgedb"
	"github.com/rampartmail/rampart/internal/spfanswer"
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
		wait := delay/2 + rand.N(delay/2+1) //nolint:gosec // G404: reconnection jitter, not a secret
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(delay*2, maxBackoff)
	}
}

// followOnce runs one connection: LISTEN, full load, then incremental
// updates on notifications, heartbeats and periodic resyncs, until an error.
// loaded reports whether the full load succeeded.
func (e *Edge) followOnce(ctx context.Context) (loaded bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, e.dbcfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
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
			if err := e.catchUp(ctx, conn, payloads, nil); err != nil {
				return true, err
			}
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			if now := time.Now(); !now.Before(nextResync) {
				if err := e.resync(ctx, conn); err != nil {
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
//
// When touched is not nil, the names of the domains and services changed
// are added to it.
func (e *Edge) catchUp(ctx context.Context, conn *pgx.Conn, payloads []string, touched *touchedNames) error {
	cur := e.Serial()
	var late []int64
	for _, p := range payloads {
		if s, err := strconv.ParseInt(p, 10, 64); err == nil && s <= cur {
			late = append(late, s)
		}
	}
	return e.fetchSince(ctx, conn, cur, late, touched)
}

// fetchSince applies the rows of both edge tables with a serial above after
// or in late; see catchUp for touched.
func (e *Edge) fetchSince(ctx context.Context, conn *pgx.Conn, after int64, late []int64, touched *touchedNames) error {
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
	if touched != nil {
		for _, r := range rows {
			touched.domains[r.name] = struct{}{}
		}
		for _, r := range srows {
			touched.services[r.name] = struct{}{}
		}
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
		netblocks: d.Netblocks, services: d.Services, nspf: d.Nspf, rspf: d.Rspf, dkim: string(d.Dkim), bimi: d.Bimi,
	}
}

// domainRowIn is domainRow for a full load or a resync, which mostly reads
// rows the index already holds: when ix has the domain with the same dkim
// column, the row takes ix's string instead of a copy of the column, the
// largest by far.
func domainRowIn(ix *index, d edgedb.EdgeDomain) row {
	dkim := d.Dkim
	d.Dkim = nil
	r := domainRow(d)
	if old, ok := ix.domains.get(d.Name); ok && old.dkim == string(dkim) { // compared without a copy
		r.dkim = old.dkim
	} else {
		r.dkim = string(dkim)
	}
	return r
}

// serviceRowOf converts an edge_service row as sqlc reads it.
func serviceRowOf(s edgedb.EdgeService) serviceRow {
	return serviceRow{
		name: s.Name, serial: s.Serial, ranges: s.Ranges, heloSuffixes: s.HeloSuffixes,
		includes: s.Includes, deleted: s.Deleted,
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
		return e.fetchSince(ctx, conn, cur, nil, nil)
	case serial < cur:
		e.log.Warn("dnsedge: database serial is below the snapshot's; reloading in full", "database_serial", serial, "snapshot_serial", cur)
		return e.fullLoad(ctx, conn, true)
	}
	e.confirm(start)
	return nil
}

// loadPageSize is how many edge_domain rows a full load or a resync reads
// at a time: about 3 MB of rows with three 2048-bit DKIM keys each.
const loadPageSize = 2000

// fullLoad reads both edge tables at one consistent point and publishes the
// index built from them.
//
// The domains are read a page at a time and applied as they come (see
// reload), so that a load holds a page of rows beside the index, not a copy
// of the whole table; and a domain served unchanged is kept as built, so
// that the first load after a start from the snapshot file, or after a
// reconnection, builds and allocates only what changed. (Once the edge
// follows, the periodic full reload is resync.)
func (e *Edge) fullLoad(ctx context.Context, conn *pgx.Conn, logInfo bool) error {
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, fullLoadTimeout)
	defer cancel()
	var l *reload
	// One REPEATABLE READ transaction: the serial and the rows of both
	// tables come from the same snapshot of the database.
	err := pgx.BeginTxFunc(lctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		q := edgedb.New(tx)
		serial, err := q.MaxSerial(lctx)
		if err != nil {
			return err
		}
		services, err := q.LiveServices(lctx)
		if err != nil {
			return err
		}
		l = newReload(e.index.Load(), serial)
		for _, s := range services {
			l.service(serviceRowOf(s.EdgeService))
		}
		after := ""
		for {
			page, err := q.LiveDomainsPage(lctx, edgedb.LiveDomainsPageParams{After: after, PageSize: loadPageSize})
			if err != nil {
				return err
			}
			for _, d := range page {
				l.domain(domainRowIn(l.old, d.EdgeDomain))
			}
			if len(page) < loadPageSize {
				return nil
			}
			after = page[len(page)-1].EdgeDomain.Name
		}
	})
	if err != nil {
		return fmt.Errorf("load edge tables: %w", err)
	}
	ix, errs := l.finish()
	e.logRowErrors(errs)
	e.publish(ix)
	e.confirm(start)
	e.requestSave(true)
	level := e.log.Debug
	if logInfo {
		level = e.log.Info
	}
	level("dnsedge: loaded edge tables", "serial", ix.serial, "domains", ix.numDomains(), "services", ix.numServices(),
		"unchanged", l.kept, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// reload builds the index of a full load as a change to the index being
// served: rows are applied as they are read, a domain whose row has not
// changed keeps its built form (and the shards holding only such domains
// stay shared), and what the load did not list is removed. The result
// serves what buildIndex would build from the same rows.
type reload struct {
	old    *index
	b      *indexBuilder
	serial int64
	// listed holds the names of old's domains and services that the load
	// listed, as old's own strings.
	listed, listedServices map[string]struct{}
	errs                   rowErrors
	kept                   int // domains kept as built
}

// newReload starts a full load at serial, the highest serial of the
// database, from old, the index being served (nil for none).
func newReload(old *index, serial int64) *reload {
	if old == nil {
		old = emptyIndex()
	}
	b := old.edit()
	// The load's rows decide the serial, not old's: the database may have
	// gone back (a restore).
	b.serial = 0
	return &reload{
		old: old, b: b, serial: serial,
		listed:         make(map[string]struct{}, old.numDomains()),
		listedServices: make(map[string]struct{}, old.numServices()),
	}
}

// service applies one live edge_service row. Services are few and always
// rebuilt.
func (l *reload) service(r serviceRow) {
	if s, ok := l.old.services.get(r.name); ok {
		l.listedServices[s.name] = struct{}{}
	}
	if err := l.b.putService(r); err != nil {
		l.errs = append(l.errs, err)
	}
}

// domain applies one live edge_domain row.
func (l *reload) domain(r row) {
	if d, ok := l.old.domains.get(r.name); ok {
		l.listed[d.name] = struct{}{}
		if sameRow(d, r) {
			l.b.serial = max(l.b.serial, r.serial)
			l.kept++
			return
		}
	}
	if err := l.b.put(r); err != nil {
		l.errs = append(l.errs, err)
	}
}

// finish removes what the load did not list and returns the new index.
func (l *reload) finish() (*index, rowErrors) {
	if len(l.listed) < l.old.numDomains() {
		l.old.domains.all(func(name string, _ *domain) bool {
			if _, ok := l.listed[name]; !ok {
				l.b.remove(name)
			}
			return true
		})
	}
	if len(l.listedServices) < l.old.numServices() {
		l.old.services.all(func(name string, _ *service) bool {
			if _, ok := l.listedServices[name]; !ok {
				l.b.services.delete(name)
			}
			return true
		})
	}
	l.b.serial = max(l.b.serial, l.serial)
	return l.b.finish(), l.errs
}

// sameRow reports whether d is what newDomain builds from r: r is live and,
// normalised as newDomain normalises a row (netblocks masked, empty lists
// nil), equal to the row d was built from. It compares every field, so that
// a field added to row later makes rows differ until it is normalised here
// too: a domain is then rebuilt when it need not be, never kept when it
// should not be.
func sameRow(d *domain, r row) bool {
	if r.deleted || r.serial != d.serial || r.dkim != d.dkim {
		return false // the cheap tests first: on an API write the serial differs
	}
	if len(r.netblocks) != len(d.netblocks) {
		return false
	}
	for i, p := range r.netblocks {
		if !p.IsValid() || p.Addr().Zone() != "" || p.Masked() != d.netblocks[i] {
			return false
		}
	}
	r.netblocks = d.netblocks // equal once masked, as compared
	if len(r.services) == 0 {
		r.services = nil
	}
	return reflect.DeepEqual(r, d.row)
}

// touchedNames are the domains and services the follower changed while a
// resync ran.
type touchedNames struct {
	domains, services map[string]struct{}
}

// resync compares both edge tables in full with the index being served and
// corrects what differs: a row changed against the contract (no new serial,
// no NOTIFY), a row whose notification was lost, a domain or service removed
// without a tombstone. It is what the periodic full reload does once the
// edge follows: reading a large table takes seconds, and a full load in one
// transaction would hold every change notified meanwhile back by as much.
//
// So the domains are read a page at a time, each page by a statement of its
// own, and the notifications that arrived while a page was read are handled
// before the next one: a change waits a page at most. A page is
// authoritative for the domains it lists, since everything the index holds
// was fetched before the page was read. A listed row that the index lacks or
// holds differently is applied, unless its serial is above the index's: that
// is a change in flight, which the follower fetches with the rest of its
// transaction (both tables at one point). A domain no page listed, which the
// follower did not change while the resync ran, was removed before its page
// was read, and is removed. Services, few, are read and corrected at once
// first, in the same way.
func (e *Edge) resync(ctx context.Context, conn *pgx.Conn) error {
	start := time.Now()
	touched := &touchedNames{domains: map[string]struct{}{}, services: map[string]struct{}{}}
	var (
		listed, listedServices = map[string]struct{}{}, map[string]struct{}{}
		corrected              int
		errs                   rowErrors
	)
	// correct applies the rows of one page that differ from the index.
	correct := func(rows []row, services []serviceRow) {
		cur := e.index.Load()
		var b *indexBuilder
		edit := func() *indexBuilder {
			if b == nil {
				b = cur.edit()
			}
			return b
		}
		for _, r := range services {
			s, ok := cur.services.get(r.name)
			if ok {
				listedServices[s.name] = struct{}{} // the index's string, not the row's
			} else {
				listedServices[r.name] = struct{}{}
			}
			if ok && sameService(s, r) || r.serial > cur.serial {
				continue
			}
			if err := edit().putService(r); err != nil {
				errs = append(errs, err)
			} else {
				corrected++
			}
		}
		for _, r := range rows {
			d, ok := cur.domains.get(r.name)
			if ok {
				listed[d.name] = struct{}{}
			} else {
				listed[r.name] = struct{}{}
			}
			if ok && sameRow(d, r) || r.serial > cur.serial {
				continue
			}
			if err := edit().put(r); err != nil {
				errs = append(errs, err)
			} else {
				corrected++
			}
		}
		if b != nil {
			e.publish(b.finish())
		}
	}
	// pending handles the notifications that arrived meanwhile, which pgx
	// holds from the last statement.
	pending := func() error {
		done, cancel := context.WithCancel(ctx)
		cancel()
		n, _ := conn.WaitForNotification(done) // a held one, or nothing without I/O
		if n == nil {
			return ctx.Err()
		}
		payloads, err := e.collect(ctx, conn, n.Payload)
		if err != nil {
			return err
		}
		return e.catchUp(ctx, conn, payloads, touched)
	}

	q := edgedb.New(conn)
	qctx, cancel := context.WithTimeout(ctx, fullLoadTimeout)
	defer cancel()
	services, err := q.LiveServices(qctx)
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	srows := make([]serviceRow, len(services))
	for i, s := range services {
		srows[i] = serviceRowOf(s.EdgeService)
	}
	correct(nil, srows)
	pages := 0
	for after := ""; ; pages++ {
		if err := pending(); err != nil {
			return err
		}
		page, err := q.LiveDomainsPage(qctx, edgedb.LiveDomainsPageParams{After: after, PageSize: loadPageSize})
		if err != nil {
			return fmt.Errorf("resync: %w", err)
		}
		rows := make([]row, len(page))
		for i, d := range page {
			rows[i] = domainRowIn(e.index.Load(), d.EdgeDomain)
		}
		correct(rows, nil)
		if len(page) < loadPageSize {
			break
		}
		after = rows[len(rows)-1].name
	}
	if err := pending(); err != nil {
		return err
	}

	cur := e.index.Load()
	var b *indexBuilder
	cur.domains.all(func(name string, _ *domain) bool {
		_, ok := listed[name]
		_, changed := touched.domains[name]
		if !ok && !changed {
			if b == nil {
				b = cur.edit()
			}
			b.remove(name)
			corrected++
		}
		return true
	})
	cur.services.all(func(name string, _ *service) bool {
		_, ok := listedServices[name]
		_, changed := touched.services[name]
		if !ok && !changed {
			if b == nil {
				b = cur.edit()
			}
			b.services.delete(name)
			corrected++
		}
		return true
	})
	if b != nil {
		e.publish(b.finish())
	}
	e.logRowErrors(errs)
	e.confirm(start)
	e.requestSave(true) // the file records when the data was last confirmed
	e.log.Debug("dnsedge: resynced edge tables", "serial", e.Serial(), "domains", len(listed), "pages", pages+1,
		"corrected", corrected, "duration", time.Since(start).Round(time.Millisecond))
	if corrected > 0 {
		e.log.Warn("dnsedge: resync corrected rows the follower had missed", "rows", corrected)
	}
	return nil
}

// sameService reports whether s is what newService builds from r, as
// sameRow does for domains.
func sameService(s *service, r serviceRow) bool {
	if r.deleted || r.serial != s.serial {
		return false
	}
	norm := r
	norm.ranges, norm.heloSuffixes = nil, nil
	for _, p := range r.ranges {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return false
		}
		norm.ranges = append(norm.ranges, p.Masked())
	}
	for _, h := range r.heloSuffixes {
		norm.heloSuffixes = append(norm.heloSuffixes, spfanswer.NormalizeSuffix(h))
	}
	return reflect.DeepEqual(norm, s.serviceRow)
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
