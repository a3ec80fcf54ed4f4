package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rampartmail/rampart/internal/report"
)

// recordColumns are the report_records columns COPY fills, in the order of
// the values copyRecords hands it.
var recordColumns = []string{
	"report_id", "seq", "domain_id", "day", "source_ip", "count",
	"disposition", "dkim", "spf", "reasons",
	"header_from", "envelope_from", "envelope_to", "dkim_results", "spf_results",
	"spf_domain", "spf_pass", "dkim_pass", "forwarded", "dkim_sigs",
}

// batchSize is how many records travel from the decoder to COPY at once;
// batchesInFlight bounds how many are queued, and so the memory held.
const (
	batchSize       = 256
	batchesInFlight = 4
)

var (
	errStopped = errors.New("copy stopped")
	errChanged = errors.New("report metadata changed between two readings")
)

type copyStats struct {
	records  int
	messages int64
	// rollup sums the records for the source rollups.
	rollup *rollup
}

// copyRecords decodes the candidate's records and streams them into its
// month's partition with COPY. A goroutine runs the decoder (whose API is
// callbacks) and hands batches of records to the COPY source (which pgx
// pulls), so that the records are never all in memory and decoding
// overlaps with PostgreSQL's work.
func (in *ingester) copyRecords(ctx context.Context, tx pgx.Tx, reportID uuid.UUID, c *candidate) (copyStats, []report.Warning, error) {
	batches := make(chan []report.Record, batchesInFlight)
	free := make(chan []report.Record, batchesInFlight+2)
	stop := make(chan struct{})
	finished := make(chan struct{})
	var (
		decWarns []report.Warning
		decErr   error
	)
	go func() {
		defer close(finished)
		defer close(batches)
		defer func() {
			// The decoder sees untrusted bytes; a bug in it must fail this
			// report, not the process.
			if p := recover(); p != nil {
				decErr = fmt.Errorf("report decoder panicked: %v", p)
			}
		}()
		r, err := c.att.Open()
		if err != nil {
			decErr = err
			return
		}
		batch := make([]report.Record, 0, batchSize)
		flush := func() error {
			select {
			case batches <- batch:
				return nil
			case <-stop:
				return errStopped
			}
		}
		send := func() error {
			if err := flush(); err != nil {
				return err
			}
			select {
			case batch = <-free:
			default:
				batch = make([]report.Record, 0, batchSize)
			}
			return nil
		}
		decWarns, decErr = report.DecodeStream(r, in.limits,
			func(m *report.Metadata) error {
				if !sameReport(m, c.meta) {
					return errChanged
				}
				return nil
			},
			func(rec report.Record) error {
				batch = append(batch, rec)
				if len(batch) < batchSize {
					return nil
				}
				return send()
			})
		if decErr == nil && len(batch) > 0 {
			decErr = flush()
		}
	}()

	var (
		st       = copyStats{rollup: newRollup()}
		srcErr   error
		cur      []report.Record
		next     int
		js       []byte
		sigs     []string
		row      = make([]any, len(recordColumns))
		reportPG = pgtype.UUID{Bytes: reportID, Valid: true}
		domainPG = pgtype.UUID{Bytes: c.domain, Valid: true}
		dayPG    = pgtype.Date{Time: c.day, Valid: true}
	)
	src := pgx.CopyFromFunc(func() ([]any, error) {
		for next >= len(cur) {
			if cur != nil {
				// pgx has encoded every row of cur: the batch can be reused.
				select {
				case free <- cur[:0]:
				default:
				}
				cur = nil
			}
			b, ok := <-batches
			if !ok {
				// decErr is set before batches is closed.
				return nil, decErr
			}
			cur, next = b, 0
		}
		rec := &cur[next]
		next++
		st.records++
		if rec.Count > maxMessages-st.messages {
			srcErr = &report.Refusal{Reason: report.Invalid, Element: "feedback/record/row/count",
				Detail: fmt.Sprintf("record %d: the counts add up to more than %d messages", st.records, int64(maxMessages))}
			return nil, srcErr
		}
		st.messages += rec.Count
		pe, id, ar := &rec.PolicyEvaluated, &rec.Identifiers, &rec.AuthResults
		js = js[:0]
		js = appendReasons(js, pe.Reasons)
		r1 := len(js)
		js = appendDKIM(js, ar.DKIM)
		r2 := len(js)
		js = appendSPF(js, ar.SPF)
		row[0] = reportPG
		row[1] = int32(st.records) //nolint:gosec // G115: at most Limits.MaxRecords (default 5,000,000) records
		row[2] = domainPG
		row[3] = dayPG
		disposition, dkim, spf := clip(string(pe.Disposition), maxEnumLen), clip(string(pe.DKIM), maxEnumLen), clip(string(pe.SPF), maxEnumLen)
		headerFrom := clip(id.HeaderFrom, maxIdentifier)
		row[4] = rec.SourceIP
		row[5] = rec.Count
		row[6] = disposition
		row[7] = dkim
		row[8] = spf
		row[9] = jsonOrNull(js[:r1])
		row[10] = headerFrom
		row[11] = clip(id.EnvelopeFrom, maxIdentifier)
		row[12] = clip(id.EnvelopeTo, maxIdentifier)
		row[13] = jsonOrNull(js[r1:r2])
		row[14] = jsonOrNull(js[r2:])
		d := derive(pe, ar, sigs[:0])
		sigs = d.sigs
		row[15] = d.spfDomain
		row[16] = d.spfPass
		row[17] = d.dkimPass
		row[18] = d.forwarded
		row[19] = d.sigsOrNil()
		st.rollup.add(rec.SourceIP, headerFrom, disposition, spf, dkim, &d, rec.Count)
		return row, nil
	})
	n, err := tx.CopyFrom(ctx, pgx.Identifier{partitionName(c.day)}, recordColumns, src)
	close(stop)
	<-finished
	switch {
	case decErr != nil && !errors.Is(decErr, errStopped):
		// A refusal, or a failure to read the input: the COPY error, if
		// any, only says that the source failed.
		return st, decWarns, decErr
	case srcErr != nil:
		return st, decWarns, srcErr
	case err != nil:
		return st, decWarns, fmt.Errorf("copy records: %w", err)
	case decErr != nil:
		return st, decWarns, fmt.Errorf("copy records: %w", decErr)
	case n != int64(st.records):
		return st, decWarns, fmt.Errorf("copy records: %d rows copied, %d decoded", n, st.records)
	}
	return st, decWarns, nil
}

// sameReport tells whether two readings of an attachment found the same
// report.
func sameReport(a, b *report.Metadata) bool {
	return a.OrgName == b.OrgName && a.ReportID == b.ReportID && a.Policy.Domain == b.Policy.Domain &&
		a.Begin.Equal(b.Begin) && a.End.Equal(b.End)
}

// jsonOrNull returns b, or nil (SQL NULL) for an empty list.
func jsonOrNull(b []byte) any {
	if len(b) == 0 {
		return []byte(nil)
	}
	return b
}

// The JSON written for a record's lists. Empty lists are written as nothing
// at all (NULL). Fields with empty values are left out.

func appendReasons(b []byte, rs []report.PolicyOverrideReason) []byte {
	if len(rs) == 0 {
		return b
	}
	b = append(b, '[')
	for i := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		sep := false
		b, sep = appendField(b, sep, "type", rs[i].Type)
		b, _ = appendField(b, sep, "comment", rs[i].Comment)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendDKIM(b []byte, ds []report.DKIMAuth) []byte {
	if len(ds) == 0 {
		return b
	}
	b = append(b, '[')
	for i := range ds {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		sep := false
		b, sep = appendField(b, sep, "domain", ds[i].Domain)
		b, sep = appendField(b, sep, "selector", ds[i].Selector)
		b, sep = appendField(b, sep, "result", string(ds[i].Result))
		b, _ = appendField(b, sep, "human_result", ds[i].HumanResult)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendSPF(b []byte, ss []report.SPFAuth) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(b, '[')
	for i := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		sep := false
		b, sep = appendField(b, sep, "domain", ss[i].Domain)
		b, sep = appendField(b, sep, "scope", ss[i].Scope)
		b, sep = appendField(b, sep, "result", string(ss[i].Result))
		b, _ = appendField(b, sep, "human_result", ss[i].HumanResult)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendField appends "key":"value" when value is not empty.
func appendField(b []byte, sep bool, key, value string) ([]byte, bool) {
	if value == "" {
		return b, sep
	}
	if sep {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendJSONString(b, value), true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD
// and U+0000, which jsonb refuses, becomes U+FFFD too.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case 0:
				b = append(b, `\ufffd`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// derived is what the source rollups group a record by, taken from its
// auth_results and reasons (see migration 00018).
type derived struct {
	spfDomain         string
	spfPass, dkimPass bool
	forwarded         bool
	sigs              []string
}

// sigsOrNil is the dkim_sigs value: NULL when the record has no signature.
func (d derived) sigsOrNil() any {
	if len(d.sigs) == 0 {
		return nil
	}
	return d.sigs
}

// derive computes a record's derived columns, appending its DKIM signatures
// to sigs: SPF is the mfrom result (the first result not of the helo
// scope, else the first), a DKIM pass any passing signature, forwarding a
// reason of forwarded, mailing_list or trusted_forwarder.
func derive(pe *report.PolicyEvaluated, ar *report.AuthResults, sigs []string) derived {
	d := derived{sigs: sigs}
	var spf *report.SPFAuth
	for i := range ar.SPF {
		if ar.SPF[i].Scope != "helo" {
			spf = &ar.SPF[i]
			break
		}
	}
	if spf == nil && len(ar.SPF) > 0 {
		spf = &ar.SPF[0]
	}
	if spf != nil {
		d.spfDomain = clip(strings.ToLower(spf.Domain), maxIdentifier)
		d.spfPass = spf.Result == "pass"
	}
	for _, s := range ar.DKIM {
		if s.Result == "pass" {
			d.dkimPass = true
		}
		d.sigs = append(d.sigs, clip(sigPart(s.Domain), maxIdentifier)+" "+clip(sigPart(s.Selector), maxIdentifier)+" "+clip(sigPart(string(s.Result)), maxEnumLen))
	}
	for _, r := range pe.Reasons {
		switch r.Type {
		case "forwarded", "mailing_list", "trusted_forwarder":
			d.forwarded = true
		}
	}
	return d
}

// sigPart is one part of a dkim_sigs entry: lower case, without the space
// that separates the parts.
func sigPart(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, " ", ""))
}
