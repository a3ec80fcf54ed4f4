package ingest

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/internal/ingest/ingestdb"
)

// Outcome is what became of a blob so far.
type Outcome struct {
	// Status is pending (its job has not finished), stored, duplicate (its
	// report was already stored), refused, failed, cancelled or discarded.
	Status string
	// Reason and Detail say why it was not stored; "" otherwise.
	Reason, Detail string
	// Reports is how many reports were stored from it.
	Reports int
}

// Pending reports whether the blob's job is yet to finish.
func (o Outcome) Pending() bool { return o.Status == statusPending }

// Stored reports whether the blob's reports were stored, or were there
// already (duplicate).
func (o Outcome) Stored() bool { return o.Status == statusStored || o.Status == statusDuplicate }

// Outcomes reads what became of the blobs; a blob that no longer exists
// (retention, or its domain removed) is missing from the map. Like
// [Store.Accept] it does not authorise: it is for intakes the operator
// runs (rampart import -wait), which hold the database credentials.
func (s *Store) Outcomes(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]Outcome, error) {
	rows, err := ingestdb.New(s.pool).BlobOutcomes(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read blob outcomes: %w", err)
	}
	out := make(map[uuid.UUID]Outcome, len(rows))
	for _, r := range rows {
		o := Outcome{Status: r.Status, Reports: int(r.Reports)}
		if r.RefusalReason != nil {
			o.Reason = *r.RefusalReason
		}
		if r.RefusalDetail != nil {
			o.Detail = *r.RefusalDetail
		}
		out[r.ID] = o
	}
	return out, nil
}
