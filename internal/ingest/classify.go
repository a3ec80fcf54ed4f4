package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/ingest/ingestdb"
	"github.com/rampartmail/rampart/internal/sources"
)

// A large report that is the first to add to its domain's day (no rollup
// of the day in either table before it, which the day's advisory lock
// keeps true until commit) holds all of the day's rollups in its worker:
// its sources are classified from those sums (sources.NewDay) rather than
// read back by the sources.classify job after the commit. The classes and
// summaries are the ones that job would store, and the day's queue row is
// handled as it would handle it (kept for the reverse names still to be
// looked up, or removed); any later report of the day queues it again.
// Small reports, and the reports of a day that had rollups, leave their
// day queued as before.
//
// The classification runs in a transaction of its own, on a second
// connection, while the ingest transaction writes the rollups: it reads
// the facts, classifies, and copies the classes in; once the ingest has
// committed, it takes the day off the queue (as the ingest queued it, and
// unless a run of the classifier or a later report has it meanwhile:
// then it rolls back) and commits. Until then the day is queued and its
// sums are read live from the rollups, so nothing reads classes that the
// rollups do not back; a crash in between leaves the day queued for the
// job. If no connection is free, the same is done in the ingest
// transaction instead: the facts read before the rollups are written, the
// sources classified while they are, the classes stored after them.
//
// The classification never costs the report: if it fails for any reason
// but the context's, it is rolled back (to a savepoint, in the ingest
// transaction) and logged, and the day stays queued for the job.

// spareConnWait bounds the wait for a second connection; with none free
// by then, the report is classified in its own transaction.
const spareConnWait = 100 * time.Millisecond

// newDayClassification is a report's day being classified.
type newDayClassification struct {
	in  *ingester
	r   result
	day *sources.NewDay
	// apart: the classification has a transaction of its own, worked by
	// a goroutine until done is closed; it waits for the ingest's
	// outcome on committed (the day's queued_at once the ingest has
	// committed; closed without a value if it did not).
	apart     bool
	queuedAt  time.Time
	committed chan time.Time
	finished  bool
	// Otherwise done is closed once Classify has returned.
	done chan struct{}
	// err is what failed, once done is closed.
	err error
}

// classifyNewDay starts classifying r's day, whose rollups tx is about to
// write.
func (in *ingester) classifyNewDay(ctx context.Context, tx pgx.Tx, r result) *newDayClassification {
	c := &newDayClassification{in: in, r: r, done: make(chan struct{})}
	day := pgtype.Date{Time: r.day, Valid: true}
	if conn := in.spareConn(ctx); conn != nil {
		c.apart, c.committed = true, make(chan time.Time, 1)
		go func() {
			defer close(c.done)
			defer conn.Release()
			c.err = c.runApart(ctx, conn, day)
			if c.err != nil && ctx.Err() == nil {
				in.log.WarnContext(ctx, "the report's sources are left to the classify job", "domain", r.domain, "day", r.day, "error", c.err)
			}
		}()
		return c
	}
	srcs, sigs := daySources(r)
	c.err = inSavepoint(ctx, tx, func(sp pgx.Tx) error {
		var err error
		c.day, err = in.classifier.PrepareNewDay(ctx, sp, r.domain, day, srcs, sigs)
		return err
	})
	if c.err != nil {
		close(c.done)
		return c
	}
	go func() {
		defer close(c.done)
		defer func() {
			if p := recover(); p != nil {
				c.err = fmt.Errorf("classification panicked: %v", p)
			}
		}()
		c.day.Classify()
	}()
	return c
}

// spareConn returns a second connection from the pool, or nil if none is
// free soon.
func (in *ingester) spareConn(ctx context.Context) *pgxpool.Conn {
	if st := in.pool.Stat(); st.IdleConns() == 0 && st.TotalConns() >= st.MaxConns() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, spareConnWait)
	defer cancel()
	conn, err := in.pool.Acquire(ctx)
	if err != nil {
		return nil
	}
	return conn
}

// runApart classifies the day in a transaction of its own on conn, and
// commits it once the ingest has.
func (c *newDayClassification) runApart(ctx context.Context, conn *pgxpool.Conn, day pgtype.Date) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("classification panicked: %v", p)
		}
	}()
	// The rollup's rows are only read, here and by the ingest's COPYs.
	srcs, sigs := daySources(c.r)
	d, err := c.in.classifier.PrepareNewDay(ctx, tx, c.r.domain, day, srcs, sigs)
	if err != nil {
		return err
	}
	d.Classify()
	if _, err := d.Store(ctx, tx); err != nil {
		return err
	}
	var queuedAt time.Time
	select {
	case at, ok := <-c.committed:
		if !ok {
			return nil // the ingest rolled back: so do the classes
		}
		queuedAt = at
	case <-ctx.Done():
		return ctx.Err()
	}
	ok, err := d.Dequeue(ctx, tx, queuedAt)
	if err != nil || !ok {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// afterRollups runs once tx has written the rollups. Apart, it notes when
// tx queued the day; otherwise it stores the classes and takes the day off
// the queue in tx, under a savepoint. Only a failure of the context, of
// the savepoint itself, or of tx is returned.
func (c *newDayClassification) afterRollups(ctx context.Context, tx pgx.Tx) error {
	// With no queue row (none can be missing: the rollups' triggers put
	// it there), the zero time matches none, and Dequeue rolls the
	// classes back.
	at, err := ingestdb.New(tx).DayQueuedAt(ctx, ingestdb.DayQueuedAtParams{DomainID: c.r.domain, Day: pgtype.Date{Time: c.r.day, Valid: true}})
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("find the day's queue row: %w", err)
	}
	c.queuedAt = at
	if c.apart {
		return nil
	}
	<-c.done
	err = c.err
	if err == nil {
		err = inSavepoint(ctx, tx, func(sp pgx.Tx) error {
			if _, err := c.day.Store(ctx, sp); err != nil {
				return err
			}
			ok, err := c.day.Dequeue(ctx, sp, at)
			if err == nil && !ok {
				err = errors.New("the day's queue row is not the one the rollups queued")
			}
			return err
		})
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("classify the report's sources: %w", err)
	}
	var spErr *savepointError
	if errors.As(err, &spErr) {
		return err
	}
	c.in.log.WarnContext(ctx, "the report's sources are left to the classify job", "domain", c.r.domain, "day", c.r.day, "error", err)
	return nil
}

// finish tells a classification apart whether the ingest committed, and
// waits for it to end. It does nothing the second time.
func (c *newDayClassification) finish(committed bool) {
	if c.finished {
		return
	}
	c.finished = true
	if c.apart {
		if committed {
			c.committed <- c.queuedAt
		}
		close(c.committed)
	}
	<-c.done
}

// savepointError is a failure to set, release or roll back to a
// savepoint: the transaction cannot go on.
type savepointError struct{ err error }

func (e *savepointError) Error() string { return e.err.Error() }
func (e *savepointError) Unwrap() error { return e.err }

// inSavepoint runs f under a savepoint of tx, rolled back to if f fails.
func inSavepoint(ctx context.Context, tx pgx.Tx, f func(sp pgx.Tx) error) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return &savepointError{fmt.Errorf("savepoint: %w", err)}
	}
	if err := f(sp); err != nil {
		if rbErr := sp.Rollback(ctx); rbErr != nil {
			return &savepointError{fmt.Errorf("roll back to savepoint (after %v): %w", err, rbErr)} //nolint:errorlint // the cause is rbErr
		}
		return err
	}
	if err := sp.Commit(ctx); err != nil {
		return &savepointError{fmt.Errorf("release savepoint: %w", err)}
	}
	return nil
}

// daySources returns r's rollups as the classifier reads a day's back
// (sources.DaySource, sources.DaySignature): the report_sources rows
// summed per address, with the same sums as that query, and the
// report_source_dkim rows, both in key order.
func daySources(r result) ([]sources.DaySource, []sources.DaySignature) {
	str := r.rollup.strs
	rows := r.rollup.sourceRows()
	var reporters []string
	if r.reporter != "" {
		// Shared by every source: nothing modifies it (and an append to
		// it, at its capacity, would copy it).
		reporters = []string{r.reporter}
	}
	n := 0
	for i := range rows {
		if i == 0 || rows[i].ip != rows[i-1].ip {
			n++
		}
	}
	srcs := make([]sources.DaySource, 0, n)
	for i := 0; i < len(rows); {
		s := sources.DaySource{SourceIp: rows[i].ip, Reporters: reporters}
		for ; i < len(rows) && rows[i].ip == s.SourceIp; i++ {
			k := &rows[i]
			m := k.messages
			s.Forwarded = s.Forwarded || k.forwarded
			s.Messages += m
			if k.spfAligned || k.dkimAl {
				s.DmarcPass += m
			}
			if k.spfPass {
				s.SpfPass += m
			}
			if k.spfAligned {
				s.SpfAligned += m
			}
			if k.dkimPass {
				s.DkimPass += m
			}
			if k.dkimAl {
				s.DkimAligned += m
			}
			switch str[k.disposition] {
			case "none":
				s.DispositionNone += m
			case "quarantine":
				s.DispositionQuarantine += m
			case "reject":
				s.DispositionReject += m
			}
		}
		srcs = append(srcs, s)
	}
	dkim := r.rollup.dkimRows()
	sigs := make([]sources.DaySignature, len(dkim))
	for i := range dkim {
		k := &dkim[i]
		sigs[i] = sources.DaySignature{SourceIp: k.ip, DkimDomain: str[k.domain], Selector: str[k.selector], Pass: str[k.result] == "pass"}
	}
	return srcs, sigs
}
