package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Element paths, for warnings and refusals.
const (
	pFeedback     = "feedback"
	pVersion      = "feedback/version"
	pMeta         = "feedback/report_metadata"
	pOrgName      = pMeta + "/org_name"
	pEmail        = pMeta + "/email"
	pExtra        = pMeta + "/extra_contact_info"
	pReportID     = pMeta + "/report_id"
	pDateRange    = pMeta + "/date_range"
	pBegin        = pDateRange + "/begin"
	pEnd          = pDateRange + "/end"
	pError        = pMeta + "/error"
	pGenerator    = pMeta + "/generator"
	pPolicy       = "feedback/policy_published"
	pPolDomain    = pPolicy + "/domain"
	pADKIM        = pPolicy + "/adkim"
	pASPF         = pPolicy + "/aspf"
	pP            = pPolicy + "/p"
	pSP           = pPolicy + "/sp"
	pNP           = pPolicy + "/np"
	pPct          = pPolicy + "/pct"
	pFO           = pPolicy + "/fo"
	pTesting      = pPolicy + "/testing"
	pDiscovery    = pPolicy + "/discovery_method"
	pRecord       = "feedback/record"
	pRow          = pRecord + "/row"
	pSourceIP     = pRow + "/source_ip"
	pCount        = pRow + "/count"
	pPolEval      = pRow + "/policy_evaluated"
	pDisposition  = pPolEval + "/disposition"
	pEvalDKIM     = pPolEval + "/dkim"
	pEvalSPF      = pPolEval + "/spf"
	pReason       = pPolEval + "/reason"
	pReasonType   = pReason + "/type"
	pReasonCmt    = pReason + "/comment"
	pIdentifiers  = pRecord + "/identifiers"
	pHeaderFrom   = pIdentifiers + "/header_from"
	pEnvFrom      = pIdentifiers + "/envelope_from"
	pEnvTo        = pIdentifiers + "/envelope_to"
	pAuth         = pRecord + "/auth_results"
	pDKIM         = pAuth + "/dkim"
	pDKIMDomain   = pDKIM + "/domain"
	pDKIMSelector = pDKIM + "/selector"
	pDKIMResult   = pDKIM + "/result"
	pDKIMHuman    = pDKIM + "/human_result"
	pSPF          = pAuth + "/spf"
	pSPFDomain    = pSPF + "/domain"
	pSPFScope     = pSPF + "/scope"
	pSPFResult    = pSPF + "/result"
	pSPFHuman     = pSPF + "/human_result"
)

// Known enumerated values, most frequent first.
var (
	dispositions  = []string{"none", "reject", "quarantine", "pass"}
	dmarcResults  = []string{"pass", "fail"}
	dkimResults   = []string{"pass", "fail", "none", "neutral", "temperror", "permerror", "policy"}
	spfResults    = []string{"pass", "fail", "softfail", "none", "neutral", "temperror", "permerror"}
	alignments    = []string{"r", "s"}
	spfScopes     = []string{"mfrom", "helo"}
	testingValues = []string{"n", "y"}
	discoveries   = []string{"treewalk", "psl"}
	reasonTypes   = []string{"forwarded", "local_policy", "mailing_list", "trusted_forwarder", "sampled_out", "other", "policy_test_mode"}
)

// maxListItems bounds the DKIM results, SPF results and reasons kept for one
// record, and the errors kept for one report.
const maxListItems = 100

// maxDate is the last second of year 9999.
const maxDate = 253402300799

// Decode reads one aggregate report and returns it whole, with the quirks
// accepted along the way. For large reports prefer [DecodeStream], which
// does not hold the records.
func Decode(r io.Reader, limits Limits) (*Report, []Warning, error) {
	rep := &Report{}
	// Records are gathered in chunks and copied once at the end: appending
	// to one growing slice would allocate several times the final size.
	const chunkSize = 4096
	var chunks [][]Record
	var cur []Record
	n := 0
	warns, err := DecodeStream(r, limits,
		func(m *Metadata) error { rep.Metadata = *m; return nil },
		func(rec Record) error {
			if len(cur) == cap(cur) {
				if cur != nil {
					chunks = append(chunks, cur)
				}
				cur = make([]Record, 0, min(chunkSize, max(16, n)))
			}
			cur = append(cur, rec)
			n++
			return nil
		})
	if err != nil {
		return nil, warns, err
	}
	if len(chunks) == 0 {
		rep.Records = cur
		return rep, warns, nil
	}
	rep.Records = make([]Record, 0, n)
	for _, c := range chunks {
		rep.Records = append(rep.Records, c...)
	}
	rep.Records = append(rep.Records, cur...)
	return rep, warns, nil
}

// DecodeStream reads one aggregate report from r, calling onMeta once with
// the metadata and policy before the first record, then onRecord for each
// record in document order. Either callback may be nil. The *Metadata is not
// modified after onMeta returns.
//
// An error returned by a callback stops decoding and is returned as is.
// Every other error for bad input is a *[Refusal]; an error from r that is
// not a Refusal is returned unchanged. Records already delivered when a
// refusal is returned belong to a report that is refused as a whole.
//
// onMeta is called when the first record starts, or at the end of the
// document for a report without records, after checking that report_id,
// the policy domain and the date range are present and sound.
func DecodeStream(r io.Reader, limits Limits, onMeta func(*Metadata) error, onRecord func(Record) error) ([]Warning, error) {
	l := limits.withDefaults()
	d := &decoder{
		s:        newScanner(r, l.MaxElementDepth, l.MaxValueBytes),
		lim:      l,
		onMeta:   onMeta,
		onRecord: onRecord,
	}
	err := d.run()
	return d.w.list, err
}

type decoder struct {
	s        *scanner
	lim      Limits
	w        warnings
	onMeta   func(*Metadata) error
	onRecord func(Record) error
	latin1   bool

	meta     Metadata
	seen     uint64 // single-valued metadata elements already read, by bit
	haveDate [2]bool
	metaDone bool
	nrec     int
	dropped  int      // records dropped for a bad source_ip or count
	badRec   *Refusal // why the first dropped record was
	strayAt  int      // scanner.tags when stray text was last noted

	val []byte // the current text value
	tmp []byte // scratch for cleanText
	in  interner

	dkimTmp     []DKIMAuth
	spfTmp      []SPFAuth
	reasonTmp   []PolicyOverrideReason
	dkimArena   []DKIMAuth
	spfArena    []SPFAuth
	reasonArena []PolicyOverrideReason
}

func (d *decoder) warn(code WarningCode, element, detail string) {
	d.w.add(code, element, detail)
}

func (d *decoder) invalid(element, format string, args ...any) *Refusal {
	detail := fmt.Sprintf(format, args...)
	if d.metaDone {
		detail = fmt.Sprintf("record %d: %s", d.nrec, detail)
	}
	return &Refusal{Reason: Invalid, Element: element, Detail: detail}
}

func (d *decoder) run() error {
	if err := d.s.prolog(); err != nil {
		return err
	}
	if d.s.bom {
		d.warn(WarnBOM, "", "byte-order mark before the document")
	}
	switch enc := strings.ToLower(d.s.encoding); enc {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
	case "iso-8859-1", "latin1", "latin-1", "iso_8859-1", "windows-1252", "cp1252", "iso-8859-15":
		d.latin1 = true
		d.warn(WarnEncoding, "", "declared encoding "+enc+" read as Windows-1252")
	case "utf-16", "utf-16le", "utf-16be":
		return refuse(Unsupported, "declared encoding "+enc)
	default:
		d.warn(WarnEncoding, "", "declared encoding "+enc+" read as UTF-8")
	}
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		switch k {
		case tokEOF:
			return refuse(NoReport, "document has no root element")
		case tokText:
			if !allSpace(d.s.text) {
				at := d.s.offset() - int64(len(d.s.text)) + int64(len(d.s.text)-len(trimLeftSpace(d.s.text)))
				return &Refusal{Reason: Malformed, Detail: fmt.Sprintf("text before the root element at byte %d", at)}
			}
		case tokStart:
			if string(d.s.local) != "feedback" {
				if d.s.schemaTags > 0 && bytes.IndexByte(d.s.name, ':') >= 0 {
					// A definition beside the report inside a stray
					// <xs:schema> (see scanner.startTag).
					d.warn(WarnSchema, string(d.s.name), "XML Schema element beside the report, skipped")
					if err := d.skip(); err != nil {
						return err
					}
					continue
				}
				return refuse(NoReport, fmt.Sprintf("root element is <%s>, not <feedback>", d.s.name))
			}
			d.rootNamespace()
			if err := d.feedback(); err != nil {
				return err
			}
			if d.s.schemaTags > 0 {
				d.warn(WarnSchema, "", "<xs:schema> tags around or inside the report, ignored")
			}
			return d.epilog()
		}
	}
}

func (d *decoder) rootNamespace() {
	want := "xmlns"
	if i := strings.LastIndexByte(string(d.s.name), ':'); i >= 0 {
		want = "xmlns:" + string(d.s.name[:i])
	}
	for _, a := range d.s.rootAttrs {
		if a.name == want {
			d.meta.Namespace = strings.TrimSpace(a.value)
		}
	}
}

// epilog reads what follows the root element. Anything but white space,
// comments and processing instructions is ignored with a warning.
func (d *decoder) epilog() error {
	for {
		k, err := d.s.next()
		if err != nil {
			if errors.Is(err, d.s.rerr) {
				// The reader failed, say on a gzip checksum: the report
				// itself may be corrupt.
				return err
			}
			d.warn(WarnTrailingData, "", "after the root element: "+err.Error())
			return nil
		}
		switch k {
		case tokEOF:
			return nil
		case tokText:
			if allSpace(d.s.text) {
				continue
			}
		}
		d.warn(WarnTrailingData, "", fmt.Sprintf("content after the root element at byte %d", d.s.offset()))
		return nil
	}
}

// skip consumes the rest of the element just started.
func (d *decoder) skip() error {
	target := d.s.depth() - 1
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		if k == tokEnd && d.s.depth() == target {
			return nil
		}
	}
}

// unknown skips an element that is not part of the schema under parent.
func (d *decoder) unknown(parent string) error {
	d.warn(WarnUnknownElement, parent+"/"+string(d.s.local), "skipped")
	return d.skip()
}

// stray notes non-space text inside a container element, once per text
// node however it was chunked.
func (d *decoder) stray(element string) {
	if d.strayAt != d.s.tags && !allSpace(d.s.text) {
		d.strayAt = d.s.tags
		d.warn(WarnStrayText, element, "text where only elements belong, ignored")
	}
}

// text reads the content of the leaf element just started, up to and
// including its end tag, and returns it trimmed. The result is valid until
// the next call.
func (d *decoder) text(element string) ([]byte, error) {
	d.val = d.val[:0]
	badRef := false
	for {
		k, err := d.s.next()
		if err != nil {
			return nil, err
		}
		switch k {
		case tokText:
			if len(d.val)+len(d.s.text) > d.lim.MaxValueBytes {
				return nil, &Refusal{Reason: ValueTooLong, Element: element, Detail: fmt.Sprintf("longer than %d bytes", d.lim.MaxValueBytes)}
			}
			if d.s.cdata {
				d.val = append(d.val, d.s.text...)
				continue
			}
			var bad bool
			d.val, bad = appendUnescaped(d.val, d.s.text)
			badRef = badRef || bad
		case tokStart:
			if err := d.unknown(element); err != nil {
				return nil, err
			}
		case tokEnd:
			if badRef {
				d.warn(WarnBadReference, element, "an '&' that starts no valid reference, kept")
			}
			v, tmp, changed := cleanText(d.val, d.tmp, d.latin1)
			d.tmp = tmp
			if changed {
				d.warn(WarnInvalidText, element, "invalid UTF-8 or control character replaced by U+FFFD")
			}
			t := trimSpace(v)
			if len(t) != len(v) && len(t) > 0 {
				d.warn(WarnPadded, element, "white space around "+quote(t))
			}
			return t, nil
		default:
			return nil, d.s.malformed("unexpected end of document")
		}
	}
}

func (d *decoder) str(element string) (string, error) {
	v, err := d.text(element)
	if err != nil {
		return "", err
	}
	return d.in.get(v), nil
}

// domain reads a domain name, lower-cased.
func (d *decoder) domain(element string) (string, error) {
	v, err := d.text(element)
	if err != nil {
		return "", err
	}
	lowerASCII(v)
	return d.in.get(v), nil
}

// enum reads a value from a known set. Other case is accepted with a
// warning; unknown values are kept, lower-cased, with a warning.
func (d *decoder) enum(element string, known []string) (string, error) {
	v, err := d.text(element)
	if err != nil || len(v) == 0 {
		return "", err
	}
	for _, k := range known {
		if string(v) == k {
			return k, nil
		}
	}
	orig := quote(v)
	lowerASCII(v)
	for _, k := range known {
		if string(v) == k {
			d.warn(WarnCase, element, orig)
			return k, nil
		}
	}
	d.warn(WarnUnknownValue, element, orig)
	return d.in.get(v), nil
}

// once reports whether the single-valued element with this bit is met for
// the first time; if not, the element is to be skipped.
func (d *decoder) once(bit uint, element string) bool {
	if d.seen&(1<<bit) != 0 {
		d.warn(WarnDuplicate, element, "repeated; the first is kept")
		return false
	}
	d.seen |= 1 << bit
	return true
}

// Bits for once.
const (
	bVersion = iota
	bOrgName
	bEmail
	bExtra
	bReportID
	bDateRange
	bGenerator
	bDomain
	bADKIM
	bASPF
	bP
	bSP
	bNP
	bPct
	bFO
	bTesting
	bDiscovery
)

// strField reads a single-valued string element into dst.
func (d *decoder) strField(dst *string, bit uint, element string) error {
	if !d.once(bit, element) {
		return d.skip()
	}
	v, err := d.text(element)
	if err != nil {
		return err
	}
	*dst = string(v)
	return nil
}

// enumField reads a single-valued enumerated element into dst.
func enumField[T ~string](d *decoder, dst *T, bit uint, element string, known []string) error {
	if !d.once(bit, element) {
		return d.skip()
	}
	v, err := d.enum(element, known)
	*dst = T(v)
	return err
}

func (d *decoder) feedback() error {
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		switch k {
		case tokText:
			d.stray(pFeedback)
			continue
		case tokEnd:
			if !d.metaDone {
				if err := d.finishMeta(); err != nil {
					return err
				}
			}
			if d.nrec == 0 {
				d.warn(WarnNoRecords, pFeedback, "report has no records")
			}
			if d.nrec > 0 && d.dropped == d.nrec {
				// Nothing of the report would be stored: refuse it, so
				// that it is seen, rather than store an empty report.
				return &Refusal{Reason: Invalid, Element: d.badRec.Element,
					Detail: fmt.Sprintf("every record (%d) is unusable; the first: %s", d.nrec, d.badRec.Detail)}
			}
			return nil
		case tokEOF:
			return d.s.malformed("unexpected end of document")
		}
		local := string(d.s.local)
		if d.metaDone {
			switch local {
			case "version", "report_metadata", "policy_published":
				d.warn(WarnLateMetadata, pFeedback+"/"+local, "after the first record; ignored")
				err = d.skip()
				if err != nil {
					return err
				}
				continue
			}
		}
		switch local {
		case "record":
			err = d.record()
		case "version":
			err = d.strField(&d.meta.Version, bVersion, pVersion)
		case "report_metadata":
			err = d.reportMetadata()
		case "policy_published":
			err = d.policyPublished()
		case "extension":
			err = d.skip()
		default:
			err = d.unknown(pFeedback)
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) reportMetadata() error {
	m := &d.meta
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		switch k {
		case tokText:
			d.stray(pMeta)
			continue
		case tokEnd:
			return nil
		}
		switch string(d.s.local) {
		case "org_name":
			err = d.strField(&m.OrgName, bOrgName, pOrgName)
		case "email":
			err = d.strField(&m.Email, bEmail, pEmail)
		case "extra_contact_info":
			err = d.strField(&m.ExtraContactInfo, bExtra, pExtra)
		case "report_id":
			err = d.strField(&m.ReportID, bReportID, pReportID)
		case "date_range":
			if d.once(bDateRange, pDateRange) {
				err = d.dateRange()
			} else {
				err = d.skip()
			}
		case "error":
			var v []byte
			if v, err = d.text(pError); err == nil && len(v) > 0 {
				if len(m.Errors) < maxListItems {
					m.Errors = append(m.Errors, string(v))
				} else {
					d.warn(WarnTooManyResults, pError, fmt.Sprintf("more than %d; the rest dropped", maxListItems))
				}
			}
		case "generator":
			err = d.strField(&m.Generator, bGenerator, pGenerator)
		default:
			err = d.unknown(pMeta)
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) dateRange() error {
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		switch k {
		case tokText:
			d.stray(pDateRange)
			continue
		case tokEnd:
			return nil
		}
		switch string(d.s.local) {
		case "begin":
			err = d.timestamp(&d.meta.Begin, 0, pBegin)
		case "end":
			err = d.timestamp(&d.meta.End, 1, pEnd)
		default:
			err = d.unknown(pDateRange)
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) timestamp(dst *time.Time, i int, element string) error {
	if d.haveDate[i] {
		d.warn(WarnDuplicate, element, "repeated; the first is kept")
		return d.skip()
	}
	v, err := d.text(element)
	if err != nil {
		return err
	}
	n, ok := parseUint(v)
	if !ok || n > maxDate {
		return d.invalid(element, "%s is not a Unix time", quote(v))
	}
	*dst = time.Unix(n, 0).UTC()
	d.haveDate[i] = true
	return nil
}

func (d *decoder) policyPublished() error {
	p := &d.meta.Policy
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		switch k {
		case tokText:
			d.stray(pPolicy)
			continue
		case tokEnd:
			return nil
		}
		switch string(d.s.local) {
		case "domain":
			if d.once(bDomain, pPolDomain) {
				var v []byte
				if v, err = d.text(pPolDomain); err == nil {
					lowerASCII(v)
					p.Domain = string(v)
				}
			} else {
				err = d.skip()
			}
		case "adkim":
			err = enumField(d, &p.ADKIM, bADKIM, pADKIM, alignments)
		case "aspf":
			err = enumField(d, &p.ASPF, bASPF, pASPF, alignments)
		case "p":
			err = enumField(d, &p.P, bP, pP, dispositions)
		case "sp":
			err = enumField(d, &p.SP, bSP, pSP, dispositions)
		case "np":
			err = enumField(d, &p.NP, bNP, pNP, dispositions)
		case "pct":
			err = d.pct()
		case "fo":
			err = d.strField(&p.FO, bFO, pFO)
		case "testing":
			err = enumField(d, &p.Testing, bTesting, pTesting, testingValues)
		case "discovery_method":
			err = enumField(d, &p.DiscoveryMethod, bDiscovery, pDiscovery, discoveries)
		default:
			err = d.unknown(pPolicy)
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) pct() error {
	if !d.once(bPct, pPct) {
		return d.skip()
	}
	v, err := d.text(pPct)
	if err != nil {
		return err
	}
	n, ok := parseUint(v)
	if !ok || n > 100 {
		d.warn(WarnBadValue, pPct, quote(v)+" is not a percentage")
		return nil
	}
	pct := int(n)
	d.meta.Policy.Pct = &pct
	return nil
}

// finishMeta checks the metadata and hands it to onMeta.
func (d *decoder) finishMeta() error {
	m := &d.meta
	switch {
	case m.ReportID == "":
		return &Refusal{Reason: Invalid, Element: pReportID, Detail: "missing or empty"}
	case m.Policy.Domain == "":
		return &Refusal{Reason: Invalid, Element: pPolDomain, Detail: "missing or empty"}
	case !d.haveDate[0]:
		return &Refusal{Reason: Invalid, Element: pBegin, Detail: "missing"}
	case !d.haveDate[1]:
		return &Refusal{Reason: Invalid, Element: pEnd, Detail: "missing"}
	case m.Begin.After(m.End):
		return &Refusal{Reason: Invalid, Element: pDateRange, Detail: fmt.Sprintf("begin %d is after end %d", m.Begin.Unix(), m.End.Unix())}
	}
	// A missing version is no warning: most reporters leave it out.
	if m.OrgName == "" {
		who := m.Reporter()
		if who == "" {
			return &Refusal{Reason: Invalid, Element: pOrgName,
				Detail: "missing or empty, and so are email and extra_contact_info: nothing names the reporter"}
		}
		d.warn(WarnEmptyOrgName, pOrgName, "missing or empty; the reporter is taken to be "+quote([]byte(who)))
	}
	if m.End.Sub(m.Begin) > 24*time.Hour {
		d.warn(WarnLongDateRange, pDateRange, fmt.Sprintf("%s long", m.End.Sub(m.Begin)))
	}
	d.metaDone = true
	if d.onMeta != nil {
		return d.onMeta(m)
	}
	return nil
}

// recordState tracks the required parts of one record.
type recordState struct {
	ip, count, policy, headerFrom bool // seen, even when bad
	// bad says why the record cannot be stored: a source_ip or count that
	// does not parse.
	bad *Refusal
}

func (d *decoder) record() error {
	if !d.metaDone {
		if err := d.finishMeta(); err != nil {
			return err
		}
	}
	d.nrec++
	if d.nrec > d.lim.MaxRecords {
		return &Refusal{Reason: TooManyRecords, Element: pRecord, Detail: fmt.Sprintf("more than %d records", d.lim.MaxRecords)}
	}
	var rec Record
	var st recordState
	d.dkimTmp, d.spfTmp, d.reasonTmp = d.dkimTmp[:0], d.spfTmp[:0], d.reasonTmp[:0]
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		if k == tokText {
			d.stray(pRecord)
			continue
		}
		if k == tokEnd {
			break
		}
		switch string(d.s.local) {
		case "row":
			err = d.row(&rec, &st)
		case "identifiers":
			err = d.identifiers(&rec.Identifiers, &st)
		case "auth_results":
			err = d.authResults()
		default:
			err = d.unknown(pRecord)
		}
		if err != nil {
			return err
		}
	}
	switch {
	case st.bad != nil:
	case !st.ip:
		st.bad = d.invalid(pSourceIP, "missing")
	case !st.count:
		st.bad = d.invalid(pCount, "missing")
	}
	if st.bad != nil {
		// One bad record costs that record, not the report.
		d.dropped++
		if d.badRec == nil {
			d.badRec = st.bad
		}
		d.warn(WarnBadRecord, st.bad.Element, st.bad.Detail+"; the record is dropped")
		return nil
	}
	if !st.policy {
		d.warn(WarnMissing, pPolEval, "missing")
	}
	if !st.headerFrom {
		d.warn(WarnMissing, pHeaderFrom, "missing or empty")
	}
	rec.PolicyEvaluated.Reasons = carve(&d.reasonArena, d.reasonTmp)
	rec.AuthResults.DKIM = carve(&d.dkimArena, d.dkimTmp)
	rec.AuthResults.SPF = carve(&d.spfArena, d.spfTmp)
	if d.onRecord != nil {
		return d.onRecord(rec)
	}
	return nil
}

func (d *decoder) row(rec *Record, st *recordState) error {
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		switch k {
		case tokText:
			d.stray(pRow)
			continue
		case tokEnd:
			return nil
		}
		switch string(d.s.local) {
		case "source_ip":
			if st.ip {
				d.warn(WarnDuplicate, pSourceIP, "repeated; the first is kept")
				err = d.skip()
				break
			}
			var v []byte
			if v, err = d.text(pSourceIP); err != nil {
				return err
			}
			ip, ok := parseIP(v)
			st.ip = true
			if !ok {
				if st.bad == nil {
					st.bad = d.invalid(pSourceIP, "%s is not an IP address", quote(v))
				}
				break
			}
			rec.SourceIP = ip
		case "count":
			if st.count {
				d.warn(WarnDuplicate, pCount, "repeated; the first is kept")
				err = d.skip()
				break
			}
			var v []byte
			if v, err = d.text(pCount); err != nil {
				return err
			}
			n, ok := parseUint(v)
			st.count = true
			if !ok {
				if st.bad == nil {
					st.bad = d.invalid(pCount, "%s is not a non-negative integer", quote(v))
				}
				break
			}
			rec.Count = n
		case "policy_evaluated":
			st.policy = true
			err = d.policyEvaluated(&rec.PolicyEvaluated)
		default:
			err = d.unknown(pRow)
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) policyEvaluated(pe *PolicyEvaluated) error {
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		switch k {
		case tokText:
			d.stray(pPolEval)
			continue
		case tokEnd:
			return nil
		}
		var v string
		switch string(d.s.local) {
		case "disposition":
			v, err = d.enum(pDisposition, dispositions)
			pe.Disposition = Disposition(v)
		case "dkim":
			v, err = d.enum(pEvalDKIM, dmarcResults)
			pe.DKIM = DMARCResult(v)
		case "spf":
			v, err = d.enum(pEvalSPF, dmarcResults)
			pe.SPF = DMARCResult(v)
		case "reason":
			err = d.reason()
		default:
			err = d.unknown(pPolEval)
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) reason() error {
	var r PolicyOverrideReason
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		if k == tokText {
			d.stray(pReason)
			continue
		}
		if k == tokEnd {
			break
		}
		switch string(d.s.local) {
		case "type":
			r.Type, err = d.enum(pReasonType, reasonTypes)
		case "comment":
			r.Comment, err = d.str(pReasonCmt)
		default:
			err = d.unknown(pReason)
		}
		if err != nil {
			return err
		}
	}
	switch {
	case r.Type == "" && r.Comment == "":
		d.warn(WarnEmptyReason, pReason, "empty reason dropped")
		return nil
	case r.Type == "":
		d.warn(WarnEmptyReason, pReason, "reason without a type")
	}
	if len(d.reasonTmp) >= maxListItems {
		d.warn(WarnTooManyResults, pReason, fmt.Sprintf("more than %d in a record; the rest dropped", maxListItems))
		return nil
	}
	d.reasonTmp = append(d.reasonTmp, r)
	return nil
}

func (d *decoder) identifiers(id *Identifiers, st *recordState) error {
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		switch k {
		case tokText:
			d.stray(pIdentifiers)
			continue
		case tokEnd:
			return nil
		}
		switch string(d.s.local) {
		case "header_from":
			id.HeaderFrom, err = d.domain(pHeaderFrom)
			st.headerFrom = id.HeaderFrom != ""
		case "envelope_from":
			id.EnvelopeFrom, err = d.domain(pEnvFrom)
		case "envelope_to":
			id.EnvelopeTo, err = d.domain(pEnvTo)
		default:
			err = d.unknown(pIdentifiers)
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) authResults() error {
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		switch k {
		case tokText:
			d.stray(pAuth)
			continue
		case tokEnd:
			return nil
		}
		switch string(d.s.local) {
		case "dkim":
			err = d.dkim()
		case "spf":
			err = d.spf()
		default:
			err = d.unknown(pAuth)
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) dkim() error {
	var a DKIMAuth
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		if k == tokText {
			d.stray(pDKIM)
			continue
		}
		if k == tokEnd {
			break
		}
		var v string
		switch string(d.s.local) {
		case "domain":
			a.Domain, err = d.domain(pDKIMDomain)
		case "selector":
			a.Selector, err = d.str(pDKIMSelector)
		case "result":
			v, err = d.enum(pDKIMResult, dkimResults)
			a.Result = DKIMResult(v)
		case "human_result":
			a.HumanResult, err = d.str(pDKIMHuman)
		default:
			err = d.unknown(pDKIM)
		}
		if err != nil {
			return err
		}
	}
	if len(d.dkimTmp) >= maxListItems {
		d.warn(WarnTooManyResults, pDKIM, fmt.Sprintf("more than %d in a record; the rest dropped", maxListItems))
		return nil
	}
	d.dkimTmp = append(d.dkimTmp, a)
	return nil
}

func (d *decoder) spf() error {
	var a SPFAuth
	for {
		k, err := d.s.next()
		if err != nil {
			return err
		}
		if k == tokText {
			d.stray(pSPF)
			continue
		}
		if k == tokEnd {
			break
		}
		var v string
		switch string(d.s.local) {
		case "domain":
			a.Domain, err = d.domain(pSPFDomain)
		case "scope":
			a.Scope, err = d.enum(pSPFScope, spfScopes)
		case "result":
			v, err = d.enum(pSPFResult, spfResults)
			a.Result = SPFResult(v)
		case "human_result":
			a.HumanResult, err = d.str(pSPFHuman)
		default:
			err = d.unknown(pSPF)
		}
		if err != nil {
			return err
		}
	}
	if len(d.spfTmp) >= maxListItems {
		d.warn(WarnTooManyResults, pSPF, fmt.Sprintf("more than %d in a record; the rest dropped", maxListItems))
		return nil
	}
	d.spfTmp = append(d.spfTmp, a)
	return nil
}
