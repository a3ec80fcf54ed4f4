package report_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/report"
)

// decoded is one report found in an input, with its warnings.
type decoded struct {
	report   *report.Report
	warnings []report.Warning
}

// parse runs the whole pipeline: Extract, then Decode each attachment.
func parse(raw []byte, limits report.Limits) ([]decoded, error) {
	atts, err := report.Extract(raw, limits)
	if err != nil {
		return nil, err
	}
	var out []decoded
	for _, a := range atts {
		r, err := a.Open()
		if err != nil {
			return nil, err
		}
		rep, warns, err := report.Decode(r, limits)
		if err != nil {
			return nil, err
		}
		out = append(out, decoded{rep, warns})
	}
	return out, nil
}

func warningCodes(ws []report.Warning) []report.WarningCode {
	var codes []report.WarningCode
	for _, w := range ws {
		codes = append(codes, w.Code)
	}
	return codes
}

// TestTestdata runs every sample file through the pipeline. The expected
// numbers were counted from the files with grep, not with this package.
func TestTestdata(t *testing.T) {
	t.Parallel()
	type want struct {
		refused  report.Reason // empty: accepted
		element  string        // for refusals about an element
		records  int
		messages int64
		org      string
		id       string
		warnings []report.WarningCode // must be among the warnings
	}
	nice := want{records: 20, messages: 3047, org: "google.com", id: "11038226378739404135"}
	test := want{records: 2, messages: 7, org: "Test Inc.", id: "1.id.0", warnings: []report.WarningCode{report.WarnPadded}}
	cases := map[string]want{
		"addisonfoods.xml":          {records: 1, messages: 1, org: "addisonfoods.com", id: "3ceb5548498640beaeb47327e202b0b9"},
		"empty-org-name.xml":        {records: 1, messages: 1, org: "", id: "example.com:1538463741", warnings: []report.WarningCode{report.WarnEmptyOrgName}},
		"empty-reason.xml":          {records: 1, messages: 2, org: "example.org", id: "20240125141224705995", warnings: []report.WarningCode{report.WarnEmptyReason}},
		"empty.xml":                 {refused: report.NoReport},
		"example-net.xml":           {records: 1, messages: 1, org: "example.net", id: "b043f0e264cf4ea995e93765242f6dfb", warnings: []report.WarningCode{report.WarnStrayText}},
		"fastmail.xml.gz":           {records: 1, messages: 1, org: "FastMail Pty Ltd", id: "102675056"},
		"google-zip-attachment.eml": {records: 1, messages: 1, org: "google.com", id: "949348866075514174"},
		"infonacot.xml.zip":         {records: 1, messages: 1, org: "XYZ Corporation", id: "2940"},
		"invalid-xml.xml":           {refused: report.Malformed},
		"nice-input.xml":            nice,
		"nice-input.xml.gz":         nice,
		"nice-input.xml.zip":        nice,
		"old-draft-schema.xml":      {records: 1, messages: 2, org: "acme.com", id: "9391651994964116463"},
		"outlook.xml":               {records: 1, messages: 1, org: "Outlook.com", id: "cfeafefe4129445e8c81018bd9177197"},
		"rfc9990-example-net.xml":   {records: 2, messages: 7, org: "example.net", id: "dmarcbis-test-report-001"},
		"rfc9990-sample.xml":        {records: 1, messages: 123, org: "Sample Reporter", id: "3v98abbp8ya9n3va8yr8oa3ya"},
		"veeam.xml":                 {records: 1, messages: 1, org: "veeam.com", id: "sonexushealth.com:1530233361"},
		"archives/test.xml":         test,
		"archives/test.xml.gz":      test,
		"archives/test.xml.gz.gz":   test,
		"archives/test.xml.zip":     test,
		"archives/test2.xml":        {records: 2, messages: 12, org: "Test Inc.", id: "1.id.0", warnings: []report.WarningCode{report.WarnLongDateRange}},
		"archives/test_empty.xml":   {refused: report.Invalid, element: "feedback/record/row/source_ip"},
	}

	// Every sample file must have a case.
	var files []string
	require.NoError(t, filepath.WalkDir("testdata", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), "LICENSE") || strings.HasPrefix(path, filepath.Join("testdata", "fuzz")) || d.Name() == "README.md" {
			return err
		}
		files = append(files, filepath.ToSlash(strings.TrimPrefix(path, "testdata"+string(filepath.Separator))))
		return nil
	}))
	var names []string
	for name := range cases {
		names = append(names, name)
	}
	slices.Sort(files)
	slices.Sort(names)
	require.Equal(t, files, names, "every file in testdata needs a case")

	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join("testdata", name))
			require.NoError(t, err)
			got, err := parse(raw, report.Limits{})
			if w.refused != "" {
				require.Error(t, err)
				var ref *report.Refusal
				require.True(t, errors.As(err, &ref), "error %v is not a Refusal", err)
				require.Equal(t, w.refused, ref.Reason, "%v", err)
				require.Equal(t, w.element, ref.Element, "%v", err)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, 1)
			rep := got[0].report
			require.Len(t, rep.Records, w.records)
			require.Equal(t, w.messages, rep.MessageCount())
			require.Equal(t, w.org, rep.OrgName)
			require.Equal(t, w.id, rep.ReportID)
			require.NotEmpty(t, rep.Policy.Domain)
			require.False(t, rep.Begin.After(rep.End))
			codes := warningCodes(got[0].warnings)
			for _, c := range w.warnings {
				require.Contains(t, codes, c)
			}
			// Most reporters leave the version out: that is no warning.
			require.NotContains(t, codes, report.WarningCode("missing_version"))
			for _, rec := range rep.Records {
				require.True(t, rec.SourceIP.IsValid())
			}
		})
	}
}

// TestTestdataDetails checks decoded fields of a few samples in depth.
func TestTestdataDetails(t *testing.T) {
	t.Parallel()
	read := func(t *testing.T, name string) *report.Report {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		got, err := parse(raw, report.Limits{})
		require.NoError(t, err)
		require.Len(t, got, 1)
		return got[0].report
	}

	t.Run("rfc9990-sample", func(t *testing.T) {
		t.Parallel()
		rep := read(t, "rfc9990-sample.xml")
		require.Equal(t, report.Namespace9990, rep.Namespace)
		require.Equal(t, "1.0", rep.Version)
		require.Equal(t, "Example DMARC Aggregate Reporter v1.2", rep.Generator)
		require.Equal(t, int64(302832000), rep.Begin.Unix())
		require.Equal(t, int64(302918399), rep.End.Unix())
		p := rep.Policy
		require.Equal(t, "example.com", p.Domain)
		require.Equal(t, report.DispositionQuarantine, p.P)
		require.Equal(t, report.DispositionNone, p.SP)
		require.Equal(t, report.DispositionNone, p.NP)
		require.Equal(t, "n", p.Testing)
		require.Equal(t, "treewalk", p.DiscoveryMethod)
		require.Nil(t, p.Pct)
		rec := rep.Records[0]
		require.Equal(t, "192.0.2.123", rec.SourceIP.String())
		require.Equal(t, int64(123), rec.Count)
		require.Equal(t, report.DispositionPass, rec.PolicyEvaluated.Disposition)
		require.Equal(t, report.DMARCPass, rec.PolicyEvaluated.DKIM)
		require.Equal(t, report.DMARCFail, rec.PolicyEvaluated.SPF)
		require.Equal(t, report.Identifiers{HeaderFrom: "example.com", EnvelopeFrom: "example.com"}, rec.Identifiers)
		require.Equal(t, []report.DKIMAuth{{Domain: "example.com", Selector: "abc123", Result: report.DKIMPass}}, rec.AuthResults.DKIM)
		require.Equal(t, []report.SPFAuth{{Domain: "example.com", Result: report.SPFFail}}, rec.AuthResults.SPF)
	})

	t.Run("rfc9990-example-net", func(t *testing.T) {
		t.Parallel()
		rep := read(t, "rfc9990-example-net.xml")
		require.Equal(t, "2.0", rep.Version)
		require.Equal(t, report.AlignmentStrict, rep.Policy.ADKIM)
		require.Equal(t, "y", rep.Policy.Testing)
		require.Equal(t, report.DispositionReject, rep.Policy.NP)
		require.Equal(t, "1", rep.Policy.FO)
		rec := rep.Records[1]
		require.Equal(t, []report.PolicyOverrideReason{{Type: "other", Comment: "sender not authorized"}}, rec.PolicyEvaluated.Reasons)
		require.Equal(t, []report.SPFAuth{{Domain: "spoofed.example.com", Scope: "mfrom", Result: report.SPFFail}}, rec.AuthResults.SPF)
	})

	t.Run("empty-reason", func(t *testing.T) {
		t.Parallel()
		rep := read(t, "empty-reason.xml")
		rec := rep.Records[0]
		require.Empty(t, rec.PolicyEvaluated.Reasons)
		require.Equal(t, "example.net", rec.Identifiers.EnvelopeTo)
		require.Equal(t, "2048-bit key", rec.AuthResults.DKIM[0].HumanResult)
		require.Equal(t, "https://support.example.org/dmarc", rep.ExtraContactInfo)
		require.Equal(t, 100, *rep.Policy.Pct)
	})

	t.Run("archives/test.xml", func(t *testing.T) {
		t.Parallel()
		rep := read(t, "archives/test.xml.gz.gz")
		require.Equal(t, int64(1524268799), rep.End.Unix())
		require.Len(t, rep.Records[0].AuthResults.DKIM, 2)
		require.Equal(t, "test2.net", rep.Records[0].AuthResults.DKIM[1].Domain)
		require.Equal(t, report.SPFSoftFail, rep.Records[1].AuthResults.SPF[0].Result)
	})
}

// TestTestdataNames checks that attachment names come from the archives.
func TestTestdataNames(t *testing.T) {
	t.Parallel()
	for file, name := range map[string]string{
		"fastmail.xml.gz":           "fastmail.com!example.com!1516060800!1516147199!102675056.xml",
		"infonacot.xml.zip":         "estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml",
		"google-zip-attachment.eml": "google.com!borschow.com!1549929600!1550015999.xml",
		"archives/test.xml.gz.gz":   "test.xml",
	} {
		raw, err := os.ReadFile(filepath.Join("testdata", file))
		require.NoError(t, err)
		atts, err := report.Extract(raw, report.Limits{})
		require.NoError(t, err)
		require.Len(t, atts, 1)
		require.Equal(t, name, atts[0].Name, file)
		r, err := atts[0].Open()
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, r)
		require.NoError(t, err)
	}
}
