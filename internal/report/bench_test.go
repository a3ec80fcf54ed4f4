package report_test

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/report"
	"github.com/rampartmail/rampart/internal/report/reportgen"
)

const benchRecords = 100_000

var benchReport = sync.OnceValue(func() []byte { return reportgen.GenerateReport(benchRecords) })

func reportRecordsPerSecond(b *testing.B, perOp int) {
	b.ReportMetric(float64(perOp)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecode streams a 100k-record report through DecodeStream.
func BenchmarkDecode(b *testing.B) {
	data := benchReport()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		_, err := report.DecodeStream(bytes.NewReader(data), report.Limits{}, nil, func(report.Record) error { n++; return nil })
		if err != nil || n != benchRecords {
			b.Fatal(n, err)
		}
	}
	reportRecordsPerSecond(b, benchRecords)
}

// BenchmarkDecodeCollect decodes a 100k-record report into a Report.
func BenchmarkDecodeCollect(b *testing.B) {
	data := benchReport()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rep, _, err := report.Decode(bytes.NewReader(data), report.Limits{})
		if err != nil || len(rep.Records) != benchRecords {
			b.Fatal(err)
		}
	}
	reportRecordsPerSecond(b, benchRecords)
}

// BenchmarkExtractDecodeGzip is the parsing half of ingestion end to end:
// a gzipped 100k-record report unwrapped, inflated and decoded.
func BenchmarkExtractDecodeGzip(b *testing.B) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write(benchReport())
	require.NoError(b, err)
	require.NoError(b, zw.Close())
	raw := gz.Bytes()
	b.SetBytes(int64(len(benchReport())))
	b.ReportAllocs()
	for b.Loop() {
		atts, err := report.Extract(raw, report.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		r, err := atts[0].Open()
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		if _, err := report.DecodeStream(r, report.Limits{}, nil, func(report.Record) error { n++; return nil }); err != nil || n != benchRecords {
			b.Fatal(n, err)
		}
	}
	reportRecordsPerSecond(b, benchRecords)
}

// BenchmarkEncodingXMLBaseline is what this package replaces: encoding/xml
// with DecodeElement per record. It is kept to show the gap.
func BenchmarkEncodingXMLBaseline(b *testing.B) {
	type record struct {
		SourceIP    string `xml:"row>source_ip"`
		Count       int64  `xml:"row>count"`
		Disposition string `xml:"row>policy_evaluated>disposition"`
		DKIM        string `xml:"row>policy_evaluated>dkim"`
		SPF         string `xml:"row>policy_evaluated>spf"`
		HeaderFrom  string `xml:"identifiers>header_from"`
		AuthDKIM    []struct {
			Domain   string `xml:"domain"`
			Selector string `xml:"selector"`
			Result   string `xml:"result"`
		} `xml:"auth_results>dkim"`
		AuthSPF []struct {
			Domain string `xml:"domain"`
			Result string `xml:"result"`
		} `xml:"auth_results>spf"`
	}
	data := benchReport()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		d := xml.NewDecoder(bytes.NewReader(data))
		n := 0
		for {
			tok, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "record" {
				var r record
				if err := d.DecodeElement(&r, &se); err != nil {
					b.Fatal(err)
				}
				n++
			}
		}
		if n != benchRecords {
			b.Fatal(n)
		}
	}
	reportRecordsPerSecond(b, benchRecords)
}
