package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rampartmail/rampart/internal/sources"
)

// A large report that is the first to add to its domain's day (no rollup
// of the day in either table before it, which the day's advisory lock
// keeps true until commit) holds all of the day's rollups in its worker:
// its sources are classified in the ingest transaction, from those sums
// (sources.NewDay), rather than read back by the sources.classify job
// after the commit. The facts are read before the rollups are written,
// the sources are classified while PostgreSQL writes them, and the classes
// and summaries are stored after them: the ones that job would store, and
// the day's queue row is handled as it would handle it (kept for the
// reverse names still to be looked up, or removed); any later report of
// the day queues it again. Small reports, and the reports of a day that
// had rollups, leave their day queued as before.
//
// The classification never costs the report: if it fails for any reason
// but the context's, what it wrote is rolled back to a savepoint and
// logged, and the day stays queued for the job.

// newDayClassification is a report's day being classified.
type newDayClassification struct {
	in   *ingester
	r    result
	day  *sources.NewDay
	done chan struct{}
	// err is what failed, once done is closed.
	err error
}

// classifyNewDay reads the facts for classifying r's day, whose rollups tx
// is about to write, and starts classifying its sources.
func (in *ingester) classifyNewDay(ctx context.Context, tx pgx.Tx, r result) *newDayClassification {
	c := &newDayClassification{in: in, r: r, done: make(chan struct{})}
	srcs, sigs := daySources(r)
	c.err = inSavepoint(ctx, tx, func(sp pgx.Tx) error {
		var err error
		c.day, err = in.classifier.PrepareNewDay(ctx, sp, r.domain, pgtype.Date{Time: r.day, Valid: true}, srcs, sigs)
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

// wait waits for the classification to end.
func (c *newDayClassification) wait() { <-c.done }

// store stores the classes once the day's rollups are written in tx. Only
// a failure of the context, or of the savepoint itself, is returned.
func (c *newDayClassification) store(ctx context.Context, tx pgx.Tx) error {
	c.wait()
	err := c.err
	if err == nil {
		err = inSavepoint(ctx, tx, func(sp pgx.Tx) error {
			_, err := c.day.Store(ctx, sp)
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
