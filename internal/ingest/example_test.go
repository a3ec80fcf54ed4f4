package ingest_test

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/rampartmail/rampart/internal/ingest"
)

// A River client that works report jobs next to the default queue's, and
// the Store that intake uses to enqueue them.
func ExampleAddWorkers() {
	ctx := context.Background()
	log := slog.Default()
	pool, err := pgxpool.New(ctx, "postgres:///rampart")
	if err != nil {
		panic(err)
	}
	workers := river.NewWorkers()
	ingest.AddWorkers(workers, pool, ingest.Options{}, log)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Workers: workers,
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: 4},
			ingest.Queue:       ingest.QueueConfig(16),
		},
		PeriodicJobs: []*river.PeriodicJob{ingest.RetentionPeriodicJob()},
		Logger:       log,
	})
	if err != nil {
		panic(err)
	}
	if err := client.Start(ctx); err != nil {
		panic(err)
	}
	store := ingest.NewStore(pool, client, log)
	_ = store // handed to the SMTP server, the upload handler and the importer
}
