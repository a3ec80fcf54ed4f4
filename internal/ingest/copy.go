package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/pgcopy"
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
// callbacks) and hands batches of records to the COPY source, which
// encodes them as the connection's writer reads them (pgcopy.Rows), so that
// the records are never all in memory and decoding, encoding and
// PostgreSQL's work overlap.
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
		st     = copyStats{rollup: newRollup()}
		srcErr error
		cur    []report.Record
		next   int
		sigs   []sig
		day    = int32(c.day.Unix()/86400 - pgcopy.EpochDay) //nolint:gosec // G115: dates of reports fit
	)
	rows := func(b []byte) ([]byte, bool, error) {
		for next >= len(cur) {
			if cur != nil {
				// Every row of cur is encoded: the batch can be reused.
				select {
				case free <- cur[:0]:
				default:
				}
				cur = nil
			}
			bt, ok := <-batches
			if !ok {
				// decErr is set before batches is closed.
				return b, false, decErr
			}
			cur, next = bt, 0
		}
		rec := &cur[next]
		next++
		st.records++
		if rec.Count > maxMessages-st.messages {
			srcErr = &report.Refusal{Reason: report.Invalid, Element: "feedback/record/row/count",
				Detail: fmt.Sprintf("record %d: the counts add up to more than %d messages", st.records, int64(maxMessages))}
			return b, false, srcErr
		}
		st.messages += rec.Count
		pe, id, ar := &rec.PolicyEvaluated, &rec.Identifiers, &rec.AuthResults
		disposition, dkim, spf := clip(string(pe.Disposition), maxEnumLen), clip(string(pe.DKIM), maxEnumLen), clip(string(pe.SPF), maxEnumLen)
		headerFrom := clip(id.HeaderFrom, maxIdentifier)
		d := derive(pe, ar, sigs[:0])
		sigs = d.sigs
		// The columns of recordColumns, in order.
		b = pgcopy.Row(b, len(recordColumns))
		b = pgcopy.UUID(b, reportID)
		b = pgcopy.Int4(b, int32(st.records)) //nolint:gosec // G115: at most Limits.MaxRecords (default 5,000,000) records
		b = pgcopy.UUID(b, c.domain)
		b = pgcopy.AppendInt32(pgcopy.AppendInt32(b, 4), day)
		b = pgcopy.Inet(b, rec.SourceIP)
		b = pgcopy.Int8(b, rec.Count)
		b = pgcopy.Text(b, disposition)
		b = pgcopy.Text(b, dkim)
		b = pgcopy.Text(b, spf)
		b, at := pgcopy.BeginValue(b)
		b = pgcopy.EndValue(appendReasons(b, pe.Reasons), at, true)
		b = pgcopy.Text(b, headerFrom)
		b = pgcopy.Text(b, clip(id.EnvelopeFrom, maxIdentifier))
		b = pgcopy.Text(b, clip(id.EnvelopeTo, maxIdentifier))
		b, at = pgcopy.BeginValue(b)
		b = pgcopy.EndValue(appendDKIM(b, ar.DKIM), at, true)
		b, at = pgcopy.BeginValue(b)
		b = pgcopy.EndValue(appendSPF(b, ar.SPF), at, true)
		b = pgcopy.Text(b, d.spfDomain)
		b = pgcopy.Bool(b, d.spfPass)
		b = pgcopy.Bool(b, d.dkimPass)
		b = pgcopy.Bool(b, d.forwarded)
		b = copySigs(b, d.sigs)
		st.rollup.add(rec.SourceIP, headerFrom, disposition, spf, dkim, &d, rec.Count)
		return b, true, nil
	}
	n, err := pgcopy.Rows(ctx, tx, partitionName(c.day), recordColumns, rows)
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
	st.rollup.finish()
	return st, decWarns, nil
}

// sameReport tells whether two readings of an attachment found the same
// report.
func sameReport(a, b *report.Metadata) bool {
	return a.OrgName == b.OrgName && a.ReportID == b.ReportID && a.Policy.Domain == b.Policy.Domain &&
		a.Begin.Equal(b.Begin) && a.End.Equal(b.End)
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
	sigs              []sig
}

// sig is a DKIM signature as the rollups and dkim_sigs have it: each part
// lower case, without spaces, clipped.
type sig struct{ domain, selector, result string }

// copySigs writes the dkim_sigs value: an array of "<d=> <s=> <result>",
// NULL when the record has no signature.
func copySigs(b []byte, sigs []sig) []byte {
	if len(sigs) == 0 {
		return pgcopy.Null(b)
	}
	b, at := pgcopy.BeginValue(b)
	b = pgcopy.AppendInt32(b, 1) // dimensions
	b = pgcopy.AppendInt32(b, 0) // no NULLs
	b = pgcopy.AppendInt32(b, pgcopy.TextOID)
	b = pgcopy.AppendInt32(b, int32(len(sigs))) //nolint:gosec // G115: at most report.maxListItems
	b = pgcopy.AppendInt32(b, 1)                // lower bound
	for _, s := range sigs {
		var el int
		b, el = pgcopy.BeginValue(b)
		b = append(b, s.domain...)
		b = append(b, ' ')
		b = append(b, s.selector...)
		b = append(b, ' ')
		b = append(b, s.result...)
		b = pgcopy.EndValue(b, el, false)
	}
	return pgcopy.EndValue(b, at, false)
}

// derive computes a record's derived columns, appending its DKIM signatures
// to sigs: SPF is the mfrom result (the first result not of the helo
// scope, else the first), a DKIM pass any passing signature, forwarding a
// reason of forwarded, mailing_list or trusted_forwarder.
func derive(pe *report.PolicyEvaluated, ar *report.AuthResults, sigs []sig) derived {
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
		d.sigs = append(d.sigs, sig{sigPart(s.Domain, maxIdentifier), sigPart(s.Selector, maxIdentifier), sigPart(string(s.Result), maxEnumLen)})
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
// that separates the parts, at most n bytes. A part that is so already,
// as most are, is returned as it is.
func sigPart(s string, n int) string {
	if len(s) <= n {
		clean := true
		for i := range len(s) {
			if c := s[i]; c == ' ' || c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
				clean = false
				break
			}
		}
		if clean {
			return s
		}
	}
	return clip(strings.ToLower(strings.ReplaceAll(s, " ", "")), n)
}
