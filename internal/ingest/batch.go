package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// batch is an ingestdb.DBTX that queues the :exec queries run through it,
// so that several go to PostgreSQL in one round trip (see send). Queries
// that return rows cannot be queued.
type batch struct {
	b    pgx.Batch
	what []string
}

var errBatchRows = errors.New("a batch queues only :exec queries")

// Exec queues the statement; the command tag it returns is empty.
func (b *batch) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	b.b.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

func (b *batch) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errBatchRows
}

func (b *batch) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{} }

type errRow struct{}

func (errRow) Scan(...any) error { return errBatchRows }

// label names the statement queued last, for errors.
func (b *batch) label(what string) {
	for len(b.what) < b.b.Len() {
		b.what = append(b.what, what)
	}
}

// send runs the queued statements in tx and returns their command tags.
func (b *batch) send(ctx context.Context, tx pgx.Tx) ([]pgconn.CommandTag, error) {
	res := tx.SendBatch(ctx, &b.b)
	tags := make([]pgconn.CommandTag, 0, b.b.Len())
	for i := range b.b.Len() {
		tag, err := res.Exec()
		if err != nil {
			_ = res.Close()
			what := "statement"
			if i < len(b.what) {
				what = b.what[i]
			}
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		tags = append(tags, tag)
	}
	return tags, res.Close()
}
