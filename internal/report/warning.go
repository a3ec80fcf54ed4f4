package report

// WarningCode names a quirk that was accepted. The values are stable strings.
type WarningCode string

// Warning codes.
const (
	WarnBOM             WarningCode = "bom"              // a byte-order mark before the XML
	WarnEncoding        WarningCode = "encoding"         // a declared encoding other than UTF-8
	WarnInvalidText     WarningCode = "invalid_text"     // invalid UTF-8 or a control character, replaced by U+FFFD
	WarnBadReference    WarningCode = "bad_reference"    // an '&' that starts no valid reference, kept literally
	WarnEmptyOrgName    WarningCode = "empty_org_name"   // org_name empty or missing; the reporter is named by the contact e-mail
	WarnPadded          WarningCode = "padded"           // a value with leading or trailing white space
	WarnCase            WarningCode = "case"             // an enumerated value in another case ("Pass")
	WarnUnknownValue    WarningCode = "unknown_value"    // an enumerated value outside the schema, kept
	WarnBadValue        WarningCode = "bad_value"        // an optional value that does not parse, dropped
	WarnEmptyReason     WarningCode = "empty_reason"     // a reason element without a type
	WarnUnknownElement  WarningCode = "unknown_element"  // an element outside the schema, skipped
	WarnDuplicate       WarningCode = "duplicate"        // a repeated single-valued element; the first wins
	WarnMissing         WarningCode = "missing"          // a schema-required element that is absent or empty
	WarnStrayText       WarningCode = "stray_text"       // text where only elements belong, ignored
	WarnLongDateRange   WarningCode = "long_date_range"  // a date range longer than a day
	WarnNoRecords       WarningCode = "no_records"       // a report without records
	WarnTrailingData    WarningCode = "trailing_data"    // content after the root element, ignored
	WarnLateMetadata    WarningCode = "late_metadata"    // report_metadata or policy_published after a record, ignored
	WarnTooManyResults  WarningCode = "too_many_results" // more list items than kept
	WarnBadRecord       WarningCode = "bad_record"       // a record without a usable source_ip or count, dropped
	WarnSchema          WarningCode = "schema"           // XML Schema markup (xs:schema) around or inside the report, ignored
	WarnTooManyWarnings WarningCode = "too_many_warnings"
)

// Warning is a quirk met while decoding a report that was accepted anyway.
// Warnings are aggregated: one Warning per code and element, with the detail
// of the first occurrence and the number of occurrences.
type Warning struct {
	Code    WarningCode
	Element string // path of the element concerned, e.g. "feedback/record/row/policy_evaluated/dkim"
	Detail  string // the first occurrence
	Count   int
}

// maxWarnings bounds the distinct warnings kept for one report.
const maxWarnings = 64

type warnKey struct {
	code    WarningCode
	element string
}

// warnings aggregates Warning values with bounded memory.
type warnings struct {
	list  []Warning
	index map[warnKey]int
}

func (w *warnings) add(code WarningCode, element, detail string) {
	k := warnKey{code, element}
	if i, ok := w.index[k]; ok {
		w.list[i].Count++
		return
	}
	if w.index == nil {
		w.index = make(map[warnKey]int)
	}
	if len(w.list) >= maxWarnings {
		k = warnKey{code: WarnTooManyWarnings}
		if i, ok := w.index[k]; ok {
			w.list[i].Count++
			return
		}
		element, detail = "", "further distinct warnings dropped"
		code = WarnTooManyWarnings
	}
	w.index[k] = len(w.list)
	w.list = append(w.list, Warning{Code: code, Element: element, Detail: detail, Count: 1})
}
