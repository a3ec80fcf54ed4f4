package ingest_test

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/report"
)

const testdata = "../report/testdata"

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testdata, name))
	require.NoError(t, err)
	return raw
}

// decodeAll is the reference: the report package's own whole-report
// decoder, which the ingest's streaming path must agree with.
func decodeAll(raw []byte) ([]*report.Report, error) {
	atts, err := report.Extract(raw, report.Limits{})
	if err != nil {
		return nil, err
	}
	var out []*report.Report
	for _, a := range atts {
		r, err := a.Open()
		if err != nil {
			return nil, err
		}
		rep, _, err := report.Decode(r, report.Limits{})
		if err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, nil
}

// TestTestdata ingests every sample file of the report package, in one
// database and in order: each ends stored with the counts the report
// package decodes, refused with the reason it gives, or, when an earlier
// file carried the same report in another wrapping, recorded as a
// duplicate.
func TestTestdata(t *testing.T) {
	t.Parallel()
	var files []string
	require.NoError(t, filepath.WalkDir(testdata, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "fuzz" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), "LICENSE") || strings.HasSuffix(d.Name(), ".md") {
			return nil
		}
		rel, err := filepath.Rel(testdata, path)
		files = append(files, filepath.ToSlash(rel))
		return err
	}))
	require.GreaterOrEqual(t, len(files), 20)
	e := setup(t)
	ctx := context.Background()
	seen := map[string]bool{} // dedupe keys stored so far
	var wantReports, wantRecords, wantMessages, wantDuplicates int64
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			raw := readTestdata(t, name)
			if len(raw) == 0 {
				_, err := e.store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, Raw: raw, AccountID: &e.account})
				require.ErrorIs(t, err, ingest.ErrEmpty)
				return
			}
			want, wantErr := decodeAll(raw)
			id, err := e.ingest(t, raw)
			b := e.blob(t, id)
			if key, ok := metadataKey(raw); wantErr != nil && ok && seen[key] {
				// A broken copy of a report already stored: the dedupe
				// key is checked before the records are read.
				require.NoError(t, err)
				require.Equal(t, "duplicate", b.Status)
				wantDuplicates++
				return
			}
			if wantErr != nil {
				reason, ok := report.ReasonOf(wantErr)
				require.True(t, ok, "%v", wantErr)
				require.True(t, cancelled(err), "%v", err)
				require.Equal(t, "refused", b.Status)
				require.Equal(t, string(reason), *b.Reason)
				require.NotEmpty(t, *b.Detail)
				require.Zero(t, e.count(t, `SELECT count(*) FROM reports WHERE blob_id = $1`, id))
				return
			}
			require.NoError(t, err)
			require.NotNil(t, b.ReportID)
			fresh := 0
			for _, rep := range want {
				key := dedupeKey(&rep.Metadata)
				if seen[key] {
					wantDuplicates++
					continue
				}
				seen[key] = true
				fresh++
				wantReports++
				wantRecords += int64(len(rep.Records))
				wantMessages += rep.MessageCount()
				var recCount, msgCount int64
				require.NoError(t, e.pool.QueryRow(ctx,
					`SELECT record_count, message_count FROM reports WHERE report_id = $1 AND org_name = $2 AND blob_id = $3`,
					rep.ReportID, rep.OrgName, id).Scan(&recCount, &msgCount))
				require.Equal(t, int64(len(rep.Records)), recCount)
				require.Equal(t, rep.MessageCount(), msgCount)
				require.Equal(t, int64(len(rep.Records)), e.count(t, `SELECT count(*) FROM report_records r JOIN reports p ON p.id = r.report_id
					WHERE p.report_id = $1 AND p.org_name = $2 AND p.blob_id = $3`, rep.ReportID, rep.OrgName, id))
			}
			if fresh > 0 {
				require.Equal(t, "stored", b.Status)
			} else {
				require.Equal(t, "duplicate", b.Status)
			}
			reports, records, messages, dups := e.stored(t)
			require.Equal(t, [4]int64{wantReports, wantRecords, wantMessages, wantDuplicates}, [4]int64{reports, records, messages, dups},
				"reports, records, rollup messages, duplicates")
			require.Equal(t, wantMessages, e.count(t, `SELECT sum(count) FROM report_records`))
		})
	}
	require.Positive(t, wantDuplicates, "the samples hold one report in several wrappings")
}

func dedupeKey(m *report.Metadata) string {
	return fmt.Sprint(m.OrgName, "|", m.ReportID, "|", m.Policy.Domain, "|", m.Begin.Unix(), "|", m.End.Unix())
}

// metadataKey returns the dedupe key of raw's only report, read up to its
// first record.
func metadataKey(raw []byte) (string, bool) {
	atts, err := report.Extract(raw, report.Limits{})
	if err != nil || len(atts) != 1 {
		return "", false
	}
	r, err := atts[0].Open()
	if err != nil {
		return "", false
	}
	var key string
	stop := errors.New("stop")
	_, err = report.DecodeStream(r, report.Limits{}, func(m *report.Metadata) error {
		key = dedupeKey(m)
		return stop
	}, nil)
	return key, errors.Is(err, stop)
}

// TestTestdataCounts pins a few counts, so that a bug shared by the
// reference decoder and the ingest cannot hide.
func TestTestdataCounts(t *testing.T) {
	t.Parallel()
	for name, want := range map[string][2]int64{
		"nice-input.xml.zip":      {20, 3047},
		"archives/test.xml.gz.gz": {2, 7},
		"rfc9990-sample.xml":      {1, 123},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			e.mustStore(t, readTestdata(t, name))
			_, records, messages, _ := e.stored(t)
			require.Equal(t, want, [2]int64{records, messages})
		})
	}
}

// TestRecordContents compares every stored record column with the decoded
// record.
func TestRecordContents(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"nice-input.xml", "rfc9990-example-net.xml", "empty-reason.xml", "archives/test.xml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			raw := readTestdata(t, name)
			reps, err := decodeAll(raw)
			require.NoError(t, err)
			rep := reps[0]
			e.mustStore(t, raw)

			var day time.Time
			var domain uuid.UUID
			require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT day, domain_id FROM reports`).Scan(&day, &domain))
			require.Equal(t, rep.Begin.UTC().Format(time.DateOnly), day.Format(time.DateOnly))
			require.Equal(t, e.domains[rep.Policy.Domain], domain)

			rows, err := e.pool.Query(context.Background(), `SELECT seq, host(source_ip), count, disposition, dkim, spf,
				header_from, envelope_from, envelope_to, reasons, dkim_results, spf_results, day, domain_id
				FROM report_records ORDER BY seq`)
			require.NoError(t, err)
			defer rows.Close()
			i := 0
			for rows.Next() {
				var (
					seq                                   int
					ip, disp, dkim, spf, from, envF, envT string
					count                                 int64
					reasons, dkimRes, spfRes              []byte
					rday                                  time.Time
					rdomain                               uuid.UUID
				)
				require.NoError(t, rows.Scan(&seq, &ip, &count, &disp, &dkim, &spf, &from, &envF, &envT, &reasons, &dkimRes, &spfRes, &rday, &rdomain))
				r := rep.Records[i]
				i++
				require.Equal(t, i, seq)
				require.Equal(t, r.SourceIP.String(), ip)
				require.Equal(t, r.Count, count)
				require.Equal(t, string(r.PolicyEvaluated.Disposition), disp)
				require.Equal(t, string(r.PolicyEvaluated.DKIM), dkim)
				require.Equal(t, string(r.PolicyEvaluated.SPF), spf)
				require.Equal(t, r.Identifiers, report.Identifiers{HeaderFrom: from, EnvelopeFrom: envF, EnvelopeTo: envT})
				require.Equal(t, day, rday)
				require.Equal(t, domain, rdomain)

				type reason struct{ Type, Comment string }
				type dkimAuth struct {
					Domain, Selector, Result string
					HumanResult              string `json:"human_result"`
				}
				type spfAuth struct {
					Domain, Scope, Result string
					HumanResult           string `json:"human_result"`
				}
				var wantReasons []reason
				for _, x := range r.PolicyEvaluated.Reasons {
					wantReasons = append(wantReasons, reason{x.Type, x.Comment})
				}
				var wantDKIM []dkimAuth
				for _, x := range r.AuthResults.DKIM {
					wantDKIM = append(wantDKIM, dkimAuth{x.Domain, x.Selector, string(x.Result), x.HumanResult})
				}
				var wantSPF []spfAuth
				for _, x := range r.AuthResults.SPF {
					wantSPF = append(wantSPF, spfAuth{x.Domain, x.Scope, string(x.Result), x.HumanResult})
				}
				var gotReasons []reason
				var gotDKIM []dkimAuth
				var gotSPF []spfAuth
				for _, j := range []struct {
					raw []byte
					dst any
				}{{reasons, &gotReasons}, {dkimRes, &gotDKIM}, {spfRes, &gotSPF}} {
					if j.raw != nil {
						require.NoError(t, json.Unmarshal(j.raw, j.dst))
					}
				}
				require.Equal(t, wantReasons, gotReasons)
				require.Equal(t, wantDKIM, gotDKIM)
				require.Equal(t, wantSPF, gotSPF)
			}
			require.NoError(t, rows.Err())
			require.Equal(t, len(rep.Records), i)
		})
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func zipped(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, name := range []string{"a.xml", "b.xml", "c.xml"} {
		if f, ok := files[name]; ok {
			fw, err := w.Create(name)
			require.NoError(t, err)
			_, err = fw.Write(f)
			require.NoError(t, err)
		}
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// TestDuplicateBlob: the same bytes accepted twice are one blob and one job.
func TestDuplicateBlob(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	raw := readTestdata(t, "nice-input.xml")
	first := e.upload(t, raw)
	require.False(t, first.Duplicate)
	require.NotZero(t, first.JobID)
	second := e.upload(t, raw)
	require.Equal(t, ingest.Accepted{BlobID: first.BlobID, Duplicate: true}, second)
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM report_blobs`))
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'report.ingest'`))
	var args []byte
	var queue string
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT args, queue FROM river_job WHERE id = $1`, first.JobID).Scan(&args, &queue))
	require.JSONEq(t, `{"blob_id": "`+first.BlobID.String()+`"}`, string(args))
	require.Equal(t, ingest.Queue, queue)

	// Accepted at the same moment from many goroutines: still one.
	raw2 := readTestdata(t, "outlook.xml")
	var wg sync.WaitGroup
	results := make([]ingest.Accepted, 8)
	for i := range results {
		wg.Go(func() {
			acc, err := e.store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, Raw: raw2, AccountID: &e.account})
			require.NoError(t, err)
			results[i] = acc
		})
	}
	wg.Wait()
	fresh := 0
	for _, r := range results {
		require.Equal(t, results[0].BlobID, r.BlobID)
		if !r.Duplicate {
			fresh++
		}
	}
	require.Equal(t, 1, fresh)
	require.Equal(t, int64(2), e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'report.ingest'`))

	// The same bytes in another scope are another blob: one tenant's upload
	// never stands in for another's.
	other := e.addAccount(t, "other", nil)
	third := e.accept(t, ingest.Incoming{Source: ingest.SourceUpload, Raw: raw, AccountID: &other})
	require.False(t, third.Duplicate)
	require.NotEqual(t, first.BlobID, third.BlobID)
	smtp := e.accept(t, ingest.Incoming{Source: ingest.SourceSMTP, Raw: raw, Recipients: []uuid.UUID{e.domains["example.com"]}})
	require.False(t, smtp.Duplicate)
	require.True(t, e.accept(t, ingest.Incoming{Source: ingest.SourceSMTP, Raw: raw, Recipients: []uuid.UUID{e.domains["example.com"]}}).Duplicate)
}

// TestRetryRefusedBlob: a refused blob whose bytes arrive again is worked
// again, here once its domain is hosted.
func TestRetryRefusedBlob(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	raw := simple("later", "example.org", day0)
	blob, err := e.ingest(t, raw)
	require.True(t, cancelled(err))
	require.Equal(t, "refused", e.blob(t, blob).Status)
	// The job is cancelled, as River marks it after Work returns.
	_, err = e.pool.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE kind = 'report.ingest'`)
	require.NoError(t, err)

	e.addDomain(t, e.account, "example.org")
	again := e.upload(t, raw)
	require.Equal(t, blob, again.BlobID)
	require.True(t, again.Retried)
	require.False(t, again.Duplicate)
	require.NotZero(t, again.JobID)
	b := e.blob(t, blob)
	require.Equal(t, "pending", b.Status)
	require.Nil(t, b.Reason)
	require.NoError(t, e.worker.Ingest(ctx, blob))
	require.Equal(t, "stored", e.blob(t, blob).Status)
	require.Equal(t, ingest.Accepted{BlobID: blob, Duplicate: true}, e.upload(t, raw))
	require.Equal(t, int64(2), e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'report.ingest'`))
}

// TestNoRecords: a report without records is stored, with nothing to add up.
func TestNoRecords(t *testing.T) {
	t.Parallel()
	e := setup(t)
	blob := e.mustStore(t, xmlReport("r.example", "empty", "example.com", day0))
	reports, records, messages, _ := e.stored(t)
	require.Equal(t, [3]int64{1, 0, 0}, [3]int64{reports, records, messages})
	require.Contains(t, fmt.Sprint(e.blob(t, blob).Warnings), "no_records")
}

func TestAcceptRefuses(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.store.SetMaxSize(100)
	_, err := e.store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, Raw: make([]byte, 101), AccountID: &e.account})
	require.ErrorIs(t, err, ingest.ErrTooLarge)
	require.Contains(t, err.Error(), "the limit is 100 bytes")
	_, err = e.store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &e.account})
	require.ErrorIs(t, err, ingest.ErrEmpty)
	_, err = e.store.Accept(ctx, ingest.Incoming{Source: ingest.SourceSMTP, Raw: []byte("x")})
	require.ErrorContains(t, err, "without a recipient domain")
	_, err = e.store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, Raw: []byte("x")})
	require.ErrorContains(t, err, "without an account")
	_, err = e.store.Accept(ctx, ingest.Incoming{Source: "fax", Raw: []byte("x")})
	require.ErrorContains(t, err, "unknown source")
	require.Zero(t, e.count(t, `SELECT count(*) FROM report_blobs`))
}

func TestRecipientDomain(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	var token string
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT report_token FROM domains WHERE name = 'example.com'`).Scan(&token))
	require.Regexp(t, `^[0-9a-f]{16}$`, token)
	for _, local := range []string{token, strings.ToUpper(token), token + "+tag", " " + token} {
		id, name, ok, err := e.store.RecipientDomain(ctx, local)
		require.NoError(t, err)
		require.True(t, ok, local)
		require.Equal(t, e.domains["example.com"], id)
		require.Equal(t, "example.com", name)
	}
	for _, local := range []string{"", "postmaster", "0000000000000000", "dmarc'; --", token[:7]} {
		_, _, ok, err := e.store.RecipientDomain(ctx, local)
		require.NoError(t, err)
		require.False(t, ok, local)
	}
	require.Equal(t, int64(4), e.count(t, `SELECT count(DISTINCT report_token) FROM domains`))
}

// TestSameReportRace: the same report in two wrappings, worked at the same
// moment, is stored once and recorded once as a duplicate. The second
// worker waits on the first's uncommitted dedupe key.
func TestSameReportRace(t *testing.T) {
	t.Parallel()
	for _, firstCommits := range []bool{true, false} {
		name := "first commits"
		if !firstCommits {
			name = "first rolls back"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			atCommit, release := make(chan struct{}), make(chan struct{})
			var blobA uuid.UUID
			var once sync.Once
			opts := ingest.WithBeforeCommit(ingest.Options{}, func(ctx context.Context, blob uuid.UUID) error {
				if blob != blobA {
					return nil
				}
				var err error
				once.Do(func() {
					close(atCommit)
					<-release
					if !firstCommits {
						err = errors.New("worker killed")
					}
				})
				return err
			})
			e := setup(t, opts)
			ctx := context.Background()
			blobA = e.upload(t, readTestdata(t, "nice-input.xml")).BlobID
			blobB := e.upload(t, readTestdata(t, "nice-input.xml.gz")).BlobID

			errA, errB := make(chan error, 1), make(chan error, 1)
			go func() { errA <- e.worker.Ingest(ctx, blobA) }()
			<-atCommit
			go func() { errB <- e.worker.Ingest(ctx, blobB) }()
			waitFor(t, "the second worker to wait on the first", func() bool { return e.lockWaiters(t) > 0 })
			close(release)

			if firstCommits {
				require.NoError(t, <-errA)
				require.NoError(t, <-errB)
				require.Equal(t, "stored", e.blob(t, blobA).Status)
				require.Equal(t, "duplicate", e.blob(t, blobB).Status)
			} else {
				require.ErrorContains(t, <-errA, "worker killed")
				require.NoError(t, <-errB)
				require.Equal(t, "pending", e.blob(t, blobA).Status)
				require.Equal(t, "stored", e.blob(t, blobB).Status)
				// The rerun finds the report stored.
				require.NoError(t, e.worker.Ingest(ctx, blobA))
				require.Equal(t, "duplicate", e.blob(t, blobA).Status)
			}
			reports, records, messages, dups := e.stored(t)
			require.Equal(t, [4]int64{1, 20, 3047, 1}, [4]int64{reports, records, messages, dups})
			var reportID uuid.UUID
			require.NoError(t, e.pool.QueryRow(ctx, `SELECT id FROM reports`).Scan(&reportID))
			require.Equal(t, reportID, *e.blob(t, blobA).ReportID)
			require.Equal(t, reportID, *e.blob(t, blobB).ReportID)
		})
	}
}

// TestSameReportStampede works one report arriving in many wrappings and
// through several doors at once.
func TestSameReportStampede(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	xml := readTestdata(t, "archives/test.xml")
	inputs := [][]byte{
		xml,
		readTestdata(t, "archives/test.xml.gz"),
		readTestdata(t, "archives/test.xml.gz.gz"),
		readTestdata(t, "archives/test.xml.zip"),
		gzipped(t, xml),
		zipped(t, map[string][]byte{"a.xml": xml}),
	}
	var blobs []uuid.UUID
	for _, raw := range inputs {
		blobs = append(blobs, e.upload(t, raw).BlobID)
	}
	blobs = append(blobs, e.accept(t, ingest.Incoming{Source: ingest.SourceSMTP, Raw: xml, Recipients: []uuid.UUID{e.domains["test.net"]}}).BlobID)
	blobs = append(blobs, e.accept(t, ingest.Incoming{Source: ingest.SourceImport, Raw: xml}).BlobID)
	var wg sync.WaitGroup
	for _, id := range blobs {
		wg.Go(func() { require.NoError(t, e.worker.Ingest(ctx, id)) })
	}
	wg.Wait()
	reports, records, messages, dups := e.stored(t)
	require.Equal(t, [4]int64{1, 2, 7, int64(len(blobs) - 1)}, [4]int64{reports, records, messages, dups})
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM report_blobs WHERE status = 'stored'`))
	require.Equal(t, int64(len(blobs)-1), e.count(t, `SELECT count(*) FROM report_blobs WHERE status = 'duplicate'`))
}

// TestKilledMidReport: a worker that dies after writing the records but
// before committing leaves nothing, and the rerun stores the report once.
func TestKilledMidReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	raw := readTestdata(t, "nice-input.xml.zip")

	check := func(t *testing.T, e *env, blob uuid.UUID) {
		t.Helper()
		reports, records, messages, dups := e.stored(t)
		require.Zero(t, reports+records+messages+dups, "nothing partial")
		require.Equal(t, "pending", e.blob(t, blob).Status)
		// The rerun stores it once; a further run changes nothing.
		w := ingest.NewWorker(e.pool, ingest.Options{})
		require.NoError(t, w.Ingest(ctx, blob))
		require.NoError(t, w.Ingest(ctx, blob))
		reports, records, messages, dups = e.stored(t)
		require.Equal(t, [4]int64{1, 20, 3047, 0}, [4]int64{reports, records, messages, dups})
		require.Equal(t, "stored", e.blob(t, blob).Status)
	}

	t.Run("error before commit", func(t *testing.T) {
		t.Parallel()
		var e *env
		e = setup(t, ingest.WithBeforeCommit(ingest.Options{}, func(ctx context.Context, _ uuid.UUID) error {
			// Everything is written, but no other session sees it.
			require.Zero(t, e.count(t, `SELECT count(*) FROM report_records`))
			require.Zero(t, e.count(t, `SELECT count(*) FROM reports`))
			return errors.New("worker killed")
		}))
		blob, err := e.ingest(t, raw)
		require.ErrorContains(t, err, "worker killed")
		require.False(t, cancelled(err))
		check(t, e, blob)
	})

	t.Run("connection terminated", func(t *testing.T) {
		t.Parallel()
		var e *env
		e = setup(t, ingest.WithBeforeCommit(ingest.Options{}, func(ctx context.Context, _ uuid.UUID) error {
			n := e.count(t, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()`)
			require.Equal(t, int64(1), n)
			return nil
		}))
		blob, err := e.ingest(t, raw)
		require.Error(t, err)
		require.False(t, cancelled(err))
		check(t, e, blob)
	})
}

// TestFailedLastAttempt: a transient fault on the last attempt marks the
// blob failed.
func TestFailedLastAttempt(t *testing.T) {
	t.Parallel()
	e := setup(t, ingest.WithBeforeCommit(ingest.Options{}, func(context.Context, uuid.UUID) error {
		return errors.New("database away")
	}))
	blob := e.upload(t, readTestdata(t, "outlook.xml")).BlobID
	require.Error(t, e.worker.IngestAttempt(context.Background(), blob, 3, 5))
	require.Equal(t, "pending", e.blob(t, blob).Status)
	require.Error(t, e.worker.IngestAttempt(context.Background(), blob, 5, 5))
	b := e.blob(t, blob)
	require.Equal(t, "failed", b.Status)
	require.Equal(t, "store_failed", *b.Reason)
	require.Contains(t, *b.Detail, "after 5 attempts")
}

// TestBadRecordLateDropsOnlyThatRecord: a record whose source_ip is not an
// address, late in a report, is dropped with a warning naming it; the
// report and its other records are stored (it once refused the report).
func TestBadRecordLateDropsOnlyThatRecord(t *testing.T) {
	t.Parallel()
	var many []rec
	for range 1000 {
		many = append(many, rec{"192.0.2.7", 1, "none", "pass", "pass", ""})
	}
	badLate := bytes.ReplaceAll(xmlReport("r.example", "late", "example.com", day0, many...),
		[]byte("<source_ip>192.0.2.7</source_ip>"), []byte("<source_ip>bogus</source_ip>"))
	// Only the 900th record is bad: restore the others.
	badLate = restoreAllBut(badLate, 900)

	e := setup(t)
	blob := e.mustStore(t, badLate)
	b := e.blob(t, blob)
	require.Len(t, b.Warnings, 1, "%v", b.Warnings)
	require.Equal(t, "bad_record", b.Warnings[0]["code"])
	require.Contains(t, fmt.Sprint(b.Warnings[0]), "bogus")
	reports, records, messages, dups := e.stored(t)
	require.EqualValues(t, 1, reports)
	require.EqualValues(t, 999, records)
	require.EqualValues(t, 999, messages)
	require.Zero(t, dups)
}

// TestRefusals: input that cannot be stored is refused with its reason on
// the blob, the job is cancelled and nothing is stored.
func TestRefusals(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 1001)
	e := setup(t)
	for _, c := range []struct {
		name, reason, detail string
		raw                  []byte
	}{
		{"malformed", "malformed", "", readTestdata(t, "invalid-xml.xml")},
		{"not a report", "no_report", "", []byte("hello")},
		{"future", "invalid", "begins in the future", simple("f", "example.com", time.Now().Add(72*time.Hour))},
		{"long org name", "invalid", "org_name: longer than 1000 bytes", xmlReport(long, "x", "example.com", day0)},
		{"long report id", "invalid", "report_id: longer than 1000 bytes", xmlReport("r", long, "example.com", day0)},
		{"unhosted", "not_hosted", "report for example.org, which this account does not host", simple("u", "example.org", day0)},
		{"huge counts", "invalid", "add up to more than", xmlReport("r", "c", "example.com", day0,
			rec{"192.0.2.1", 900_000_000_000_000, "none", "pass", "pass", ""}, rec{"192.0.2.2", 900_000_000_000_000, "none", "pass", "pass", ""})},
	} {
		t.Run(c.name, func(t *testing.T) {
			blob, err := e.ingest(t, c.raw)
			require.True(t, cancelled(err), "%v", err)
			b := e.blob(t, blob)
			require.Equal(t, "refused", b.Status)
			require.Equal(t, c.reason, *b.Reason)
			require.Contains(t, *b.Detail, c.detail)
			// Nothing is stored, here or before.
			reports, records, messages, dups := e.stored(t)
			require.Zero(t, reports+records+messages+dups)
			// A rerun does nothing.
			require.NoError(t, e.worker.Ingest(context.Background(), blob))
		})
	}
}

// restoreAllBut undoes the "bogus" replacement on every record but the nth.
func restoreAllBut(b []byte, n int) []byte {
	parts := bytes.Split(b, []byte("<source_ip>bogus</source_ip>"))
	var out bytes.Buffer
	for i, p := range parts {
		out.Write(p)
		if i < len(parts)-1 {
			if i+1 == n {
				out.WriteString("<source_ip>bogus</source_ip>")
			} else {
				out.WriteString("<source_ip>192.0.2.7</source_ip>")
			}
		}
	}
	return out.Bytes()
}

// TestSeveralReportsInOneBlob: each attachment is a report of its own; a
// refused one is a warning while another is stored.
func TestSeveralReportsInOneBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := simple("a", "example.com", day0)
	b := xmlReport("reporter.example", "b", "test.net", day0.AddDate(0, 1, 0), rec{"192.0.2.9", 4, "reject", "fail", "fail", ""})
	junk := []byte("<feedback><report_metadata></report_metadata></feedback>")

	t.Run("two reports", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		blob := e.mustStore(t, zipped(t, map[string][]byte{"a.xml": a, "b.xml": b}))
		reports, records, messages, _ := e.stored(t)
		require.Equal(t, [3]int64{2, 2, 7}, [3]int64{reports, records, messages})
		var first uuid.UUID
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT id FROM reports WHERE report_id = 'a'`).Scan(&first))
		require.Equal(t, first, *e.blob(t, blob).ReportID)
		require.Equal(t, int64(2), e.count(t, `SELECT count(*) FROM reports WHERE blob_id = $1`, blob))
	})
	t.Run("one refused", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		blob := e.mustStore(t, zipped(t, map[string][]byte{"a.xml": a, "b.xml": junk}))
		reports, _, messages, _ := e.stored(t)
		require.Equal(t, [2]int64{1, 3}, [2]int64{reports, messages})
		w := e.blob(t, blob).Warnings
		require.Len(t, w, 1)
		require.Equal(t, "attachment_refused", w[0]["code"])
		require.Equal(t, "b.xml", w[0]["attachment"])
	})
	t.Run("one refused while writing", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		bad := bytes.Replace(b, []byte("192.0.2.9"), []byte("bogus"), 1)
		blob := e.mustStore(t, zipped(t, map[string][]byte{"a.xml": a, "b.xml": bad}))
		reports, records, messages, _ := e.stored(t)
		require.Equal(t, [3]int64{1, 1, 3}, [3]int64{reports, records, messages})
		require.Equal(t, "attachment_refused", e.blob(t, blob).Warnings[0]["code"])
	})
	t.Run("all refused", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		blob, err := e.ingest(t, zipped(t, map[string][]byte{"a.xml": simple("x", "example.org", day0), "b.xml": junk}))
		require.True(t, cancelled(err))
		bl := e.blob(t, blob)
		require.Equal(t, "not_hosted", *bl.Reason)
		require.Len(t, bl.Warnings, 2)
	})
	t.Run("same report twice", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.mustStore(t, zipped(t, map[string][]byte{"a.xml": a, "c.xml": a}))
		reports, _, messages, dups := e.stored(t)
		require.Equal(t, [3]int64{1, 3, 1}, [3]int64{reports, messages, dups})
	})
}

// TestRollupsSum: the source rollups add up across reports, and count each
// report once per row.
func TestRollupsSum(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.mustStore(t, xmlReport("one.example", "1", "example.com", day0,
		rec{"192.0.2.1", 5, "none", "pass", "pass", ""},
		rec{"192.0.2.2", 3, "quarantine", "fail", "fail", ""},
		rec{"2001:db8::1", 2, "none", "pass", "fail", "mail.example.com"},
	))
	e.mustStore(t, xmlReport("two.example", "2", "example.com", day0,
		rec{"192.0.2.1", 7, "none", "pass", "pass", ""},
		rec{"192.0.2.9", 4, "reject", "fail", "fail", ""},
		rec{"192.0.2.9", 6, "reject", "fail", "fail", ""},
	))
	e.mustStore(t, xmlReport("two.example", "2b", "example.com", day0, rec{"192.0.2.1", 2, "none", "pass", "pass", ""}))
	// Another day and another domain stay apart.
	e.mustStore(t, xmlReport("two.example", "3", "example.com", day0.AddDate(0, 0, 1), rec{"192.0.2.1", 1, "none", "pass", "pass", ""}))
	e.mustStore(t, xmlReport("two.example", "4", "test.net", day0, rec{"192.0.2.1", 1, "none", "pass", "pass", ""}))

	type row struct {
		domain, day, ip, reporter, from, spfDomain, disp string
		spfPass, spf, dkim                               bool
		messages                                         int64
		reports                                          int
	}
	rows, err := e.pool.Query(ctx, `SELECT d.name, r.day::text, host(r.source_ip), r.reporter, r.header_from, r.spf_domain,
		r.disposition, r.spf_pass, r.spf_aligned, r.dkim_aligned, r.messages, r.reports
		FROM report_sources r JOIN domains d ON d.id = r.domain_id ORDER BY 1, 2, 3, 4, 5`)
	require.NoError(t, err)
	var got []row
	for rows.Next() {
		var r row
		require.NoError(t, rows.Scan(&r.domain, &r.day, &r.ip, &r.reporter, &r.from, &r.spfDomain, &r.disp, &r.spfPass, &r.spf, &r.dkim, &r.messages, &r.reports))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []row{
		{"example.com", "2024-06-13", "192.0.2.1", "one.example", "example.com", "example.com", "none", true, true, true, 5, 1},
		{"example.com", "2024-06-13", "192.0.2.1", "two.example", "example.com", "example.com", "none", true, true, true, 9, 2},
		{"example.com", "2024-06-13", "192.0.2.2", "one.example", "example.com", "example.com", "quarantine", false, false, false, 3, 1},
		{"example.com", "2024-06-13", "192.0.2.9", "two.example", "example.com", "example.com", "reject", false, false, false, 10, 1},
		{"example.com", "2024-06-13", "2001:db8::1", "one.example", "mail.example.com", "mail.example.com", "none", false, false, true, 2, 1},
		{"example.com", "2024-06-14", "192.0.2.1", "two.example", "example.com", "example.com", "none", true, true, true, 1, 1},
		{"test.net", "2024-06-13", "192.0.2.1", "two.example", "test.net", "test.net", "none", true, true, true, 1, 1},
	}, got)
}

// TestSourceRollupsAuthResults: the source rollups take SPF from the mfrom
// result of auth_results (not the helo one), a DKIM pass from any passing
// signature, forwarding from the reasons, and list every signature's
// domain, selector and result in report_source_dkim.
func TestSourceRollupsAuthResults(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	report := func(id string, records string) []byte {
		return []byte(`<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>Receiver</org_name><email>dmarc@receiver.example</email><report_id>` + id + `</report_id>
    <date_range><begin>` + fmt.Sprint(day0.Unix()) + `</begin><end>` + fmt.Sprint(day0.Add(time.Hour).Unix()) + `</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>` + records + `
</feedback>`)
	}
	e.mustStore(t, report("auth-1", `
  <record><row><source_ip>198.51.100.7</source_ip><count>4</count>
    <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf>
      <reason><type>mailing_list</type><comment>list</comment></reason></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results>
      <dkim><domain>Lists.Example.ORG</domain><selector>S1</selector><result>pass</result></dkim>
      <dkim><domain>example.com</domain><selector>google</selector><result>fail</result></dkim>
      <spf><domain>mx.lists.example.org</domain><scope>helo</scope><result>pass</result></spf>
      <spf><domain>bounces.lists.example.org</domain><scope>mfrom</scope><result>softfail</result></spf>
    </auth_results></record>
  <record><row><source_ip>198.51.100.7</source_ip><count>1</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><selector>google</selector><result>pass</result></dkim></auth_results></record>`))

	var spfDomain string
	var spfPass, dkimPass, forwarded bool
	var messages int64
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT spf_domain, spf_pass, dkim_pass, forwarded, messages FROM report_sources
		WHERE source_ip = '198.51.100.7' AND spf_domain <> ''`).Scan(&spfDomain, &spfPass, &dkimPass, &forwarded, &messages))
	require.Equal(t, "bounces.lists.example.org", spfDomain, "the mfrom result, not the helo one")
	require.False(t, spfPass, "softfail")
	require.True(t, dkimPass, "one signature passed")
	require.True(t, forwarded, "mailing_list")
	require.Equal(t, int64(4), messages)
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT spf_pass, dkim_pass, dkim_aligned, forwarded, messages FROM report_sources
		WHERE source_ip = '198.51.100.7' AND spf_domain = ''`).Scan(&spfPass, &dkimPass, new(bool), &forwarded, &messages))
	require.False(t, spfPass, "no SPF result given")
	require.True(t, dkimPass)
	require.False(t, forwarded)

	type sig struct {
		domain, selector, result string
		messages                 int64
	}
	rows, err := e.pool.Query(ctx, `SELECT dkim_domain, selector, result, messages FROM report_source_dkim ORDER BY 1, 2, 3`)
	require.NoError(t, err)
	var got []sig
	for rows.Next() {
		var s sig
		require.NoError(t, rows.Scan(&s.domain, &s.selector, &s.result, &s.messages))
		got = append(got, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []sig{
		{"example.com", "google", "fail", 4},
		{"example.com", "google", "pass", 1},
		{"lists.example.org", "s1", "pass", 4},
	}, got)
}

// TestScope: a report is stored for the policy domain or its nearest hosted
// parent, within what the blob's recipient or uploader may hold.
func TestScope(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	msp := e.addAccount(t, "msp", nil)
	child := e.addAccount(t, "customer", &msp)
	other := e.addAccount(t, "other", nil)
	e.addDomain(t, child, "customer.example")
	e.addDomain(t, child, "sub.customer.example")
	e.addDomain(t, other, "other.customer.example")
	e.addDomain(t, msp, "msp.example")
	e.addDomain(t, other, "example.org")

	n := 0
	try := func(in ingest.Incoming, policyDomain string) (string, error) {
		n++
		in.Raw = simple(strings.Repeat("i", n), policyDomain, day0)
		acc := e.accept(t, in)
		err := e.worker.Ingest(ctx, acc.BlobID)
		if err != nil {
			return *e.blob(t, acc.BlobID).Detail, err
		}
		var name string
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT d.name FROM reports r JOIN domains d ON d.id = r.domain_id WHERE r.blob_id = $1`, acc.BlobID).Scan(&name))
		return name, nil
	}
	upload := func(account uuid.UUID) ingest.Incoming {
		return ingest.Incoming{Source: ingest.SourceUpload, AccountID: &account}
	}
	smtp := func(domains ...string) ingest.Incoming {
		in := ingest.Incoming{Source: ingest.SourceSMTP}
		for _, d := range domains {
			in.Recipients = append(in.Recipients, e.domains[d])
		}
		return in
	}
	for _, c := range []struct {
		in           ingest.Incoming
		policyDomain string
		want         string // the hosted domain, or the refusal detail
		refused      bool
	}{
		{upload(msp), "customer.example", "customer.example", false},
		{upload(msp), "a.sub.customer.example", "sub.customer.example", false},
		{upload(msp), "b.customer.example", "customer.example", false},
		{upload(msp), "MSP.example.", "msp.example", false},
		{upload(msp), "other.customer.example", "customer.example", false},
		{upload(msp), "example.org", "report for example.org, which this account does not host", true},
		{upload(child), "customer.example", "customer.example", false},
		{upload(child), "msp.example", "report for msp.example, which this account does not host", true},
		{smtp("customer.example"), "x.customer.example", "customer.example", false},
		{smtp("customer.example"), "a.sub.customer.example", "sub.customer.example", false},
		{smtp("customer.example"), "a.other.customer.example", "customer.example", false},
		{smtp("sub.customer.example"), "customer.example", "report for customer.example, which is neither sub.customer.example nor a subdomain of it", true},
		{smtp("customer.example"), "example.org", "report for example.org, which is neither customer.example nor a subdomain of it", true},
		// Mail to several addresses: each report within one recipient, in
		// that recipient's account.
		{smtp("sub.customer.example", "example.org"), "example.org", "example.org", false},
		{smtp("sub.customer.example", "example.org"), "x.sub.customer.example", "sub.customer.example", false},
		{smtp("customer.example", "other.customer.example"), "a.other.customer.example", "other.customer.example", false},
		{smtp("customer.example", "other.customer.example"), "b.customer.example", "customer.example", false},
		{smtp("sub.customer.example", "example.org"), "customer.example",
			"report for customer.example, which is neither a domain it was sent to nor a subdomain of one", true},
		{ingest.Incoming{Source: ingest.SourceImport}, "a.other.customer.example", "other.customer.example", false},
		{ingest.Incoming{Source: ingest.SourceImport}, "nowhere.example", "report for nowhere.example, which is not hosted here", true},
	} {
		got, err := try(c.in, c.policyDomain)
		if c.refused {
			require.True(t, cancelled(err), "%s: %v", c.policyDomain, err)
		} else {
			require.NoError(t, err, c.policyDomain)
		}
		require.Equal(t, c.want, got, "%s via %s", c.policyDomain, c.in.Source)
	}
}

// TestScopeGrows: mail bytes that arrive again for a further recipient are
// the same blob, worked again in a new round with its own job: a report
// refused for the first recipient is stored for the second, and the one
// already stored is kept as it is, not counted as a duplicate.
func TestScopeGrows(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	raw := zipped(t, map[string][]byte{"a.xml": simple("grow-a", "example.com", day0), "b.xml": simple("grow-b", "test.net", day0)})
	mail := func(domain string) ingest.Accepted {
		return e.accept(t, ingest.Incoming{Source: ingest.SourceSMTP, Raw: raw, Recipients: []uuid.UUID{e.domains[domain]}})
	}
	first := mail("example.com")
	require.NoError(t, e.worker.Ingest(ctx, first.BlobID))
	b := e.blob(t, first.BlobID)
	require.Equal(t, "stored", b.Status)
	require.Len(t, b.Warnings, 1, "the test.net report is not for example.com")
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM reports`))

	again := mail("test.net")
	require.Equal(t, ingest.Accepted{BlobID: first.BlobID, JobID: again.JobID, Retried: true}, again)
	var args []byte
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT args FROM river_job WHERE id = $1`, again.JobID).Scan(&args))
	require.JSONEq(t, `{"blob_id": "`+first.BlobID.String()+`", "round": 1}`, string(args))
	require.Equal(t, "pending", e.blob(t, first.BlobID).Status)
	// The first round's job ending now without a worker's decision (here
	// cancelled, as from the job dashboard) leaves the blob to the second
	// round's job.
	_, err := e.pool.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1`, first.JobID)
	require.NoError(t, err)
	require.Equal(t, "pending", e.blob(t, first.BlobID).Status)

	require.NoError(t, e.worker.Ingest(ctx, first.BlobID))
	b = e.blob(t, first.BlobID)
	require.Equal(t, "stored", b.Status)
	require.Empty(t, b.Warnings)
	reports, records, messages, dups := e.stored(t)
	require.Equal(t, [4]int64{2, 2, 6, 0}, [4]int64{reports, records, messages, dups})
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM reports WHERE domain_id = $1 AND blob_id = $2`, e.domains["test.net"], first.BlobID))
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM report_blobs`))

	// Once more for either recipient: a duplicate, no new job.
	require.Equal(t, ingest.Accepted{BlobID: first.BlobID, Duplicate: true}, mail("test.net"))
	require.Equal(t, ingest.Accepted{BlobID: first.BlobID, Duplicate: true}, mail("example.com"))
	require.Equal(t, int64(2), e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'report.ingest'`))

	// A recipient's domain removed takes only its link; the last one
	// takes the blob.
	_, err = e.pool.Exec(ctx, `DELETE FROM domains WHERE id = $1`, e.domains["test.net"])
	require.NoError(t, err)
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM report_blobs`))
	_, err = e.pool.Exec(ctx, `DELETE FROM domains WHERE id = $1`, e.domains["example.com"])
	require.NoError(t, err)
	require.Zero(t, e.count(t, `SELECT count(*) FROM report_blobs`))
}

// TestRealRiver runs the workers on a River client: a good blob completes,
// a bad one is cancelled with its reason readable on the blob.
func TestRealRiver(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	client := e.startRiver(t)
	events, stop := client.Subscribe(riverEvents...)
	defer stop()
	store := ingest.NewStore(e.pool, client, nil)

	good, err := store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &e.account, Raw: readTestdata(t, "fastmail.xml.gz")})
	require.NoError(t, err)
	bad, err := store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &e.account, Raw: readTestdata(t, "invalid-xml.xml")})
	require.NoError(t, err)
	got := waitJobs(t, events, good.JobID, bad.JobID)
	require.Equal(t, "job_completed", got[good.JobID])
	require.Equal(t, "job_cancelled", got[bad.JobID])
	require.Equal(t, "stored", e.blob(t, good.BlobID).Status)
	b := e.blob(t, bad.BlobID)
	require.Equal(t, "refused", b.Status)
	require.Equal(t, "malformed", *b.Reason)
	waitFor(t, "the retention job to run on start", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'report.retention' AND state = 'completed'`) == 1
	})
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"b\`, "tab\tnl\ncr\r", "\x00\x01\x1f", "é ü 日本 🙂", "bad\xffutf8\xc3", "\u2028\u2029", "<>&"} {
		checkJSONString(t, s)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\x00b\"\\\xff")
	f.Fuzz(checkJSONString)
}

func checkJSONString(t *testing.T, s string) {
	b := ingest.AppendJSONString(nil, s)
	require.True(t, json.Valid(b), "%q -> %s", s, b)
	var back string
	require.NoError(t, json.Unmarshal(b, &back))
	// Each invalid byte becomes one U+FFFD, as in a conversion to runes;
	// so does U+0000, which jsonb refuses.
	require.Equal(t, strings.ReplaceAll(string([]rune(s)), "\x00", "\uFFFD"), back)
}
