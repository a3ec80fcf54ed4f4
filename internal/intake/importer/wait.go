package importer

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
)

// waitPoll is how often Wait reads the blobs' outcomes; waitBatch how many
// it reads in one query.
const (
	waitPoll  = 200 * time.Millisecond
	waitBatch = 1000
)

// Wait waits until the ingest jobs of the summary's queued inputs have
// finished (the workers of `rampart serve` run them), or timeout passes, or
// ctx ends, and records each input's [ingest.Outcome] in sum.Queued. Inputs
// still pending then keep a pending outcome; only a database error is
// returned.
func (im *Importer) Wait(ctx context.Context, sum *Summary, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var ids []uuid.UUID
		at := map[uuid.UUID][]int{}
		for i, q := range sum.Queued {
			if q.Outcome == nil || q.Outcome.Pending() {
				if len(at[q.BlobID]) == 0 {
					ids = append(ids, q.BlobID)
				}
				at[q.BlobID] = append(at[q.BlobID], i)
			}
		}
		for len(ids) > 0 {
			n := min(len(ids), waitBatch)
			got, err := im.store.Outcomes(ctx, ids[:n])
			if err != nil {
				return fmt.Errorf("wait for the imported reports: %w", err)
			}
			for id, o := range got {
				for _, i := range at[id] {
					sum.Queued[i].Outcome = &o
				}
				delete(at, id)
			}
			ids = ids[n:]
		}
		pending := 0
		for _, q := range sum.Queued {
			if q.Outcome != nil && q.Outcome.Pending() {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			return nil
		}
		t := time.NewTimer(waitPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// NotStored counts the inputs that were not stored: refused when read or
// stored, or by their ingest job, failed, cancelled, discarded, gone, or
// still pending. Duplicates count as stored.
func (s Summary) NotStored() int {
	n := len(s.Refused)
	for _, q := range s.Queued {
		if q.Outcome == nil || !q.Outcome.Stored() {
			n++
		}
	}
	return n
}

// PrintOutcomes writes, after [Importer.Wait], what became of each input
// (stored, duplicate or refused with its reason), then the totals. Write
// errors are dropped, as in [Summary.Print].
func (s Summary) PrintOutcomes(w io.Writer) {
	var stored, duplicate, refused, pending int
	_, _ = fmt.Fprintf(w, "Outcome of %d %s:\n", len(s.Queued)+len(s.Refused), plural(len(s.Queued)+len(s.Refused), "input"))
	for _, q := range s.Queued {
		o := q.Outcome
		switch {
		case o == nil:
			refused++
			_, _ = fmt.Fprintf(w, "  refused    %s: gone: the input was deleted before its outcome was read\n", q.Path)
		case o.Pending():
			pending++
			_, _ = fmt.Fprintf(w, "  pending    %s: not decoded yet (is rampart serve running with workers?)\n", q.Path)
		case o.Status == "duplicate" || q.Again && o.Stored():
			duplicate++
			_, _ = fmt.Fprintf(w, "  duplicate  %s: already stored\n", q.Path)
		case o.Stored():
			stored++
			_, _ = fmt.Fprintf(w, "  stored     %s: %d %s\n", q.Path, o.Reports, plural(o.Reports, "report"))
		default:
			refused++
			_, _ = fmt.Fprintf(w, "  %-10s %s: %s: %s\n", o.Status, q.Path, o.Reason, o.Detail)
		}
	}
	for _, r := range s.Refused {
		refused++
		_, _ = fmt.Fprintf(w, "  refused    %s: %s\n", r.Path, r.Reason)
	}
	_, _ = fmt.Fprintf(w, "stored %d, duplicate %d, refused %d", stored, duplicate, refused)
	if pending > 0 {
		_, _ = fmt.Fprintf(w, ", pending %d", pending)
	}
	_, _ = fmt.Fprintln(w)
}
