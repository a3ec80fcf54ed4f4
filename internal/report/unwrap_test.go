package report_test

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"mime/quotedprintable"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/report"
)

func gzipped(t testing.TB, data []byte, name string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	require.NoError(t, err)
	zw.Name = name
	_, err = zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

type zipEntry struct {
	name string
	data []byte
}

func zipped(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		require.NoError(t, err)
		_, err = w.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// rawZip builds a zip whose single entry has the given header and raw
// (already compressed) bytes, so the header can lie.
func rawZip(t testing.TB, fh *zip.FileHeader, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateRaw(fh)
	require.NoError(t, err)
	_, err = w.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

func b64(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}

// mail builds a multipart/mixed message from already formatted parts.
func mail(parts ...string) []byte {
	var b strings.Builder
	b.WriteString("From: noreply-dmarc-support@google.com\r\nTo: dmarc@example.com\r\nSubject: Report domain: example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUNDARY\"\r\n\r\npreamble\r\n")
	for _, p := range parts {
		b.WriteString("--BOUNDARY\r\n" + p + "\r\n")
	}
	b.WriteString("--BOUNDARY--\r\n")
	return []byte(b.String())
}

func part(contentType, disposition, encoding, body string) string {
	h := "Content-Type: " + contentType + "\r\n"
	if disposition != "" {
		h += "Content-Disposition: " + disposition + "\r\n"
	}
	if encoding != "" {
		h += "Content-Transfer-Encoding: " + encoding + "\r\n"
	}
	return h + "\r\n" + body
}

var textPart = part("text/plain; charset=utf-8", "", "7bit", "This is an aggregate report from google.com.")

func qp(data []byte) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	_, _ = w.Write(data)
	_ = w.Close()
	return b.String()
}

// TestExtractForms: every form reporters send unwraps to the same report.
func TestExtractForms(t *testing.T) {
	t.Parallel()
	xmlDoc := []byte(doc())
	gz := gzipped(t, xmlDoc, "google.com!example.com!1718236800!1718323199.xml")
	zp := zipped(t, zipEntry{"google.com!example.com!1718236800!1718323199.xml", xmlDoc})
	cases := []struct {
		name string
		in   []byte
		file string // expected Attachment.Name
	}{
		{"bare XML", xmlDoc, ""},
		{"bare XML with BOM", append([]byte("\xEF\xBB\xBF"), xmlDoc...), ""},
		{"gzip", gz, "google.com!example.com!1718236800!1718323199.xml"},
		{"gzip without name", gzipped(t, xmlDoc, ""), ""},
		{"double gzip", gzipped(t, gzipped(t, xmlDoc, "r.xml"), "r.xml.gz"), "r.xml"},
		{"gzip with trailing zeros", append(append([]byte{}, gz...), make([]byte, 512)...), "google.com!example.com!1718236800!1718323199.xml"},
		{"concatenated gzip members", append(gzipped(t, xmlDoc[:100], "a.xml"), gzipped(t, xmlDoc[100:], "")...), "a.xml"},
		{"zip", zp, "google.com!example.com!1718236800!1718323199.xml"},
		{"zip with a .gz entry", zipped(t, zipEntry{"r.xml.gz", gzipped(t, xmlDoc, "")}), "r.xml"},
		{"zip in gzip", gzipped(t, zp, ""), "google.com!example.com!1718236800!1718323199.xml"},
		{"zip with directories", zipped(t, zipEntry{"dir/", nil}, zipEntry{"__MACOSX/._r.xml", []byte("junk")}, zipEntry{"dir/r.xml", xmlDoc}), "dir/r.xml"},
		{"mail with zip attachment", mail(textPart,
			part(`application/zip; name="r.zip"`, `attachment; filename="r.zip"`, "base64", b64(zp))), "google.com!example.com!1718236800!1718323199.xml"},
		{"mail with .xml.zip as octet-stream", mail(textPart,
			part(`application/octet-stream`, `attachment; filename="r.xml.zip"`, "base64", b64(zp))), "google.com!example.com!1718236800!1718323199.xml"},
		{"mail with gzip as x-gzip", mail(
			part(`application/x-gzip`, `attachment;\r\n filename="r.xml.gz"`, "base64", b64(gz))), "google.com!example.com!1718236800!1718323199.xml"},
		{"mail with wrong content type", mail(textPart,
			part(`text/plain`, `attachment; filename="report.zip"`, "base64", b64(zp))), "google.com!example.com!1718236800!1718323199.xml"},
		{"mail with zip labelled gzip", mail(
			part(`application/gzip; name="r.xml.gz"`, "", "base64", b64(zp))), "google.com!example.com!1718236800!1718323199.xml"},
		{"mail with RFC 2047 file name", mail(
			part(`application/gzip`, `attachment; filename="=?utf-8?q?r=C3=A9port.xml.gz?="`, "base64", b64(gzipped(t, xmlDoc, "")))), "réport.xml"},
		{"mail with quoted-printable XML", mail(textPart,
			part(`text/xml; charset=utf-8`, `attachment; filename="r.xml"`, "quoted-printable", qp(xmlDoc))), "r.xml"},
		{"mail with nested alternative", mail(
			"Content-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n--ALT\r\n"+textPart+"\r\n--ALT\r\n"+part("text/html", "", "", "<p>report</p>")+"\r\n--ALT--\r\n",
			part(`application/zip`, `attachment; filename="r.zip"`, "base64", b64(zp))), "google.com!example.com!1718236800!1718323199.xml"},
		{"forwarded mail", mail(textPart,
			part("message/rfc822", "", "", strings.ReplaceAll(string(mail(part(`application/zip`, `attachment; filename="r.zip"`, "base64", b64(zp)))), "BOUNDARY", "INNER"))), "google.com!example.com!1718236800!1718323199.xml"},
		{"single-part mail", []byte("From: a@example.net\r\nMIME-Version: 1.0\r\nContent-Type: application/gzip; name=\"r.xml.gz\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(gzipped(t, xmlDoc, ""))), "r.xml"},
		{"mbox export", append([]byte("From MAILER-DAEMON Thu Jun 13 00:00:00 2024\n"), mail(part(`application/zip`, `attachment; filename="r.zip"`, "base64", b64(zp)))...), "google.com!example.com!1718236800!1718323199.xml"},
		{"mail without closing boundary", bytes.TrimSuffix(mail(part(`application/zip`, `attachment; filename="r.zip"`, "base64", b64(zp))), []byte("--BOUNDARY--\r\n")), "google.com!example.com!1718236800!1718323199.xml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			atts, err := report.Extract(c.in, report.Limits{})
			require.NoError(t, err)
			require.Len(t, atts, 1)
			require.Equal(t, c.file, atts[0].Name)
			require.NotEmpty(t, atts[0].Path)
			for range 2 { // an attachment can be opened again
				r, err := atts[0].Open()
				require.NoError(t, err)
				rep, _, err := report.Decode(r, report.Limits{})
				require.NoError(t, err)
				require.Equal(t, "12345", rep.ReportID)
				require.Len(t, rep.Records, 1)
			}
		})
	}
}

func TestExtractSeveralReports(t *testing.T) {
	t.Parallel()
	a, b := []byte(doc()), []byte(doc("12345", "67890"))
	in := mail(part("application/zip", `attachment; filename="r.zip"`, "base64", b64(zipped(t, zipEntry{"a.xml", a}, zipEntry{"b.xml.gz", gzipped(t, b, "")}))),
		part("text/xml", `attachment; filename="c.xml"`, "", string(a)))
	got, err := parse(in, report.Limits{})
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, "12345", got[0].report.ReportID)
	require.Equal(t, "67890", got[1].report.ReportID)
	require.Equal(t, "12345", got[2].report.ReportID)
}

// TestExtractRefusals: each refusal has its own reason.
func TestExtractRefusals(t *testing.T) {
	t.Parallel()
	xmlDoc := []byte(doc())
	nested := xmlDoc
	for range 5 {
		nested = gzipped(t, nested, "")
	}
	var many []zipEntry
	for i := range 1000 {
		many = append(many, zipEntry{fmt.Sprintf("r%d.xml", i), xmlDoc})
	}
	var parts []string
	for range 150 {
		parts = append(parts, textPart)
	}
	deepMail := part("application/zip", `attachment; filename="r.zip"`, "base64", b64(zipped(t, zipEntry{"r.xml", xmlDoc})))
	for i := range 8 {
		deepMail = fmt.Sprintf("Content-Type: multipart/mixed; boundary=\"B%d\"\r\n\r\n--B%d\r\n%s\r\n--B%d--\r\n", i, i, deepMail, i)
	}
	gz := gzipped(t, xmlDoc, "")
	corruptGz := append([]byte{}, gz...)
	for i := 20; i < len(corruptGz)-8; i += 7 {
		corruptGz[i] ^= 0x55
	}
	zp := zipped(t, zipEntry{"r.xml", xmlDoc})
	cases := []struct {
		name   string
		in     []byte
		limits report.Limits
		reason report.Reason
	}{
		{"empty", nil, report.Limits{}, report.NoReport},
		{"too large", gz, report.Limits{MaxCompressed: 100}, report.TooLarge},
		{"bare XML larger than the inflated limit", xmlDoc, report.Limits{MaxCompressed: 100, MaxInflated: 200}, report.TooLarge},
		{"random bytes", []byte("\x00\x01\x02 this is not a report"), report.Limits{}, report.NoReport},
		{"text-only mail", mail(textPart, part("text/html", "", "", "<p>hi</p>")), report.Limits{}, report.NoReport},
		{"mail with a PDF only", mail(textPart, part("application/pdf", `attachment; filename="r.pdf"`, "base64", b64([]byte("%PDF-1.4")))), report.Limits{}, report.NoReport},
		{"gzip nested 5 deep", nested, report.Limits{}, report.TooDeep},
		{"zip with 1000 entries", zipped(t, many...), report.Limits{}, report.TooManyEntries},
		{"zip nested in zip nested in zip with gzip", zipped(t, zipEntry{"a.zip", zipped(t, zipEntry{"b.zip", zipped(t, zipEntry{"c.xml.gz", gz})})}), report.Limits{}, report.TooDeep},
		{"mail with 150 parts", mail(parts...), report.Limits{}, report.TooManyParts},
		{"multipart nested 8 deep", []byte("From: a@example.net\r\nMIME-Version: 1.0\r\n" + deepMail), report.Limits{}, report.TooDeep},
		{"empty zip", zipped(t), report.Limits{}, report.NoReport},
		{"empty gzip", gzipped(t, nil, ""), report.Limits{}, report.NoReport},
		{"truncated zip", zp[:len(zp)-30], report.Limits{}, report.Malformed},
		{"truncated gzip", gz[:len(gz)/2], report.Limits{}, report.Malformed},
		{"corrupt gzip", corruptGz, report.Limits{}, report.Malformed},
		{"gzip with a bad CRC", append(append([]byte{}, gz[:len(gz)-8]...), 0, 0, 0, 0, 0, 0, 0, 0), report.Limits{}, report.Malformed},
		{"zip with a bad CRC", rawZip(t, &zip.FileHeader{Name: "r.xml", Method: zip.Store, CRC32: 1234, UncompressedSize64: uint64(len(xmlDoc))}, xmlDoc), report.Limits{}, report.Malformed},
		{"encrypted zip", rawZip(t, &zip.FileHeader{Name: "r.xml", Method: zip.Store, Flags: 0x1, CRC32: crc32.ChecksumIEEE(xmlDoc)}, xmlDoc), report.Limits{}, report.Unsupported},
		{"bzip2 zip", rawZip(t, &zip.FileHeader{Name: "r.xml", Method: 12}, []byte("BZh91AY&SY")), report.Limits{}, report.Unsupported},
		{"corrupt base64", mail(part("application/zip", `attachment; filename="r.zip"`, "base64", "UEsDB!!!!****\r\n")), report.Limits{}, report.Malformed},
		{"unknown transfer encoding", mail(part("application/zip", `attachment; filename="r.zip"`, "x-uuencode", "begin 644 r.zip\r\n")), report.Limits{}, report.Unsupported},
		{"not a MIME message", []byte("hello\nworld\x00"), report.Limits{}, report.NoReport},
		{"too many reports in one input", mail(
			part("application/zip", `attachment; filename="a.zip"`, "base64", b64(zipped(t, zipEntry{"1.xml", xmlDoc}, zipEntry{"2.xml", xmlDoc}, zipEntry{"3.xml", xmlDoc}, zipEntry{"4.xml", xmlDoc}, zipEntry{"5.xml", xmlDoc}, zipEntry{"6.xml", xmlDoc}))),
			part("application/zip", `attachment; filename="b.zip"`, "base64", b64(zipped(t, zipEntry{"1.xml", xmlDoc}, zipEntry{"2.xml", xmlDoc}, zipEntry{"3.xml", xmlDoc}, zipEntry{"4.xml", xmlDoc}, zipEntry{"5.xml", xmlDoc}, zipEntry{"6.xml", xmlDoc})))),
			report.Limits{}, report.TooManyEntries},
		{"nested zip over the memory budget", zipped(t, zipEntry{"inner.zip", rawZip(t, &zip.FileHeader{Name: "r.xml", Method: zip.Store, CRC32: crc32.ChecksumIEEE(make([]byte, 20000)), UncompressedSize64: 20000, CompressedSize64: 20000}, make([]byte, 20000))}),
			report.Limits{MaxCompressed: 8 << 10}, report.TooLarge},
		{"invalid XML in zip", zipped(t, zipEntry{"r.xml", []byte("<feedback><a></b></feedback>")}), report.Limits{}, report.Malformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(c.in, c.limits)
			require.Error(t, err)
			var ref *report.Refusal
			require.True(t, errors.As(err, &ref), "%v is not a Refusal", err)
			require.Equal(t, c.reason, ref.Reason, "%v", err)
		})
	}
}

// TestExtractLimitsWhileReading: inflation limits hold against archives
// whose headers lie, and apply to every layer.
func TestExtractLimitsWhileReading(t *testing.T) {
	t.Parallel()
	zeros := make([]byte, 8<<20)
	// Zeros are not XML: the decoder would stop at the first byte, so these
	// bombs are drained. The last case is a bomb the decoder must read.
	cases := []struct {
		name   string
		in     []byte
		limits report.Limits
		reason report.Reason
		isXML  bool
	}{
		{"gzip ratio", gzipped(t, zeros, ""), report.Limits{}, report.RatioTooHigh, false},
		{"gzip size", gzipped(t, zeros, ""), report.Limits{MaxInflated: 4 << 20, MaxRatio: 1 << 20}, report.InflatedTooLarge, false},
		{"double gzip ratio", gzipped(t, gzipped(t, zeros, ""), ""), report.Limits{}, report.RatioTooHigh, false},
		{"zip ratio", zipped(t, zipEntry{"r.xml", zeros}), report.Limits{}, report.RatioTooHigh, false},
		{"zip size", zipped(t, zipEntry{"r.xml", zeros}), report.Limits{MaxInflated: 4 << 20, MaxRatio: 1 << 20}, report.InflatedTooLarge, false},
		{"zip header claims 10 bytes", func() []byte {
			var deflated bytes.Buffer
			zw := zip.NewWriter(&deflated)
			w, err := zw.CreateHeader(&zip.FileHeader{Name: "x", Method: zip.Deflate})
			require.NoError(t, err)
			_, err = w.Write(zeros)
			require.NoError(t, err)
			require.NoError(t, zw.Close())
			zr, err := zip.NewReader(bytes.NewReader(deflated.Bytes()), int64(deflated.Len()))
			require.NoError(t, err)
			raw, err := zr.File[0].OpenRaw()
			require.NoError(t, err)
			body, err := io.ReadAll(raw)
			require.NoError(t, err)
			return rawZip(t, &zip.FileHeader{Name: "r.xml", Method: zip.Deflate, UncompressedSize64: 10, CompressedSize64: uint64(len(body)), CRC32: zr.File[0].CRC32}, body)
		}(), report.Limits{MaxInflated: 1 << 20, MaxRatio: 1 << 20}, report.InflatedTooLarge, false},
		{"XML bomb of white space", gzipped(t, append([]byte("<feedback>"), bytes.Repeat([]byte(" "), 8<<20)...), ""), report.Limits{}, report.RatioTooHigh, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			atts, err := report.Extract(c.in, c.limits)
			require.NoError(t, err, "the bomb is found while reading")
			if c.isXML {
				r, err := atts[0].Open()
				require.NoError(t, err)
				_, _, err = report.Decode(r, c.limits)
				require.Equal(t, c.reason, reasonOf(t, err), "%v", err)
			}
			r, err := atts[0].Open()
			require.NoError(t, err)
			_, err = io.Copy(io.Discard, r)
			require.Equal(t, c.reason, reasonOf(t, err), "%v", err)
		})
	}
}

func reasonOf(t *testing.T, err error) report.Reason {
	t.Helper()
	require.Error(t, err)
	reason, ok := report.ReasonOf(err)
	require.True(t, ok, "%v is not a Refusal", err)
	return reason
}

// bomb200 gzips a 200 MB stream made of prefix and zeros or spaces.
func bomb200(t *testing.T, prefix string, fill byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	require.NoError(t, err)
	_, err = zw.Write([]byte(prefix))
	require.NoError(t, err)
	chunk := bytes.Repeat([]byte{fill}, 1<<20)
	for range 200 {
		_, err = zw.Write(chunk)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// TestBomb200MB is not parallel: it measures the memory allocated while a
// 200 MB gzip bomb is refused, which other tests running would blur.
func TestBomb200MB(t *testing.T) { // not parallel: measures allocation
	zerosBomb := bomb200(t, "", 0)
	xmlBomb := bomb200(t, "<?xml version='1.0'?><feedback>", ' ')
	zipBomb := func() []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, err := zw.Create("r.xml")
		require.NoError(t, err)
		chunk := make([]byte, 1<<20)
		for range 200 {
			_, err = w.Write(chunk)
			require.NoError(t, err)
		}
		require.NoError(t, zw.Close())
		return b.Bytes()
	}()

	for _, c := range []struct {
		name   string
		in     []byte
		decode bool
	}{
		{"gzip of zeros, drained", zerosBomb, false},
		{"gzip of XML and white space, decoded", xmlBomb, true},
		{"zip of zeros, drained", zipBomb, false},
	} {
		t.Run(c.name, func(t *testing.T) { // not parallel: measures allocation
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()

			atts, err := report.Extract(c.in, report.Limits{})
			require.NoError(t, err)
			r, err := atts[0].Open()
			require.NoError(t, err)
			if c.decode {
				_, _, err = report.Decode(r, report.Limits{})
			} else {
				_, err = io.Copy(io.Discard, r)
			}

			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			reason := reasonOf(t, err)
			require.Contains(t, []report.Reason{report.RatioTooHigh, report.InflatedTooLarge}, reason, "%v", err)
			require.Less(t, elapsed, 5*time.Second)
			allocated := after.TotalAlloc - before.TotalAlloc
			require.Less(t, allocated, uint64(8<<20), "allocated %d bytes", allocated)
			t.Logf("%s refused as %s after %s, %d KB allocated", c.name, reason, elapsed, allocated>>10)
		})
	}
}

// TestExtractDefaultCompressedLimit: compressed input is capped at
// MaxCompressed; a bare XML file, which is not compressed, at MaxInflated.
func TestExtractDefaultCompressedLimit(t *testing.T) {
	t.Parallel()
	big := append([]byte{0x1f, 0x8b}, make([]byte, report.DefaultMaxCompressed)...)
	_, err := report.Extract(big, report.Limits{})
	require.Equal(t, report.TooLarge, reasonOf(t, err))

	bigXML := append([]byte("<feedback>"), bytes.Repeat([]byte(" "), report.DefaultMaxInflated)...)
	_, err = report.Extract(bigXML, report.Limits{})
	require.Equal(t, report.TooLarge, reasonOf(t, err))
}

// TestExtractUncompressedUpToInflatedLimit: a bare XML report larger than
// the compressed-size limit is read, up to the inflated-size limit.
func TestExtractUncompressedUpToInflatedLimit(t *testing.T) {
	t.Parallel()
	d := doc()
	// A comment pads the report past MaxCompressed (25 MB).
	padded := strings.Replace(d, "<feedback>", "<feedback><!--"+strings.Repeat("x", report.DefaultMaxCompressed)+"-->", 1)
	got, err := parse([]byte(padded), report.Limits{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Len(t, got[0].report.Records, 1)
	require.Empty(t, got[0].warnings)

	require.Equal(t, int64(report.DefaultMaxInflated), report.Limits{}.MaxInput([]byte(" \n<?xml")))
	require.Equal(t, int64(report.DefaultMaxCompressed), report.Limits{}.MaxInput([]byte{0x1f, 0x8b}))
	require.Equal(t, int64(report.DefaultMaxCompressed), report.Limits{}.MaxInput([]byte("From: a@example.net")))
}

// TestExtractRepetitiveReport: a legitimate report whose records are all
// alike compresses about 228:1 (226:1 with 10,000 records, 228:1 with
// 100,000: the ratio does not grow with the count), far better than typical
// reports but far worse than a bomb of one repeated byte (about 1025:1,
// refused in TestExtractLimitsWhileReading): it is read whole, gzipped and
// zipped.
func TestExtractRepetitiveReport(t *testing.T) {
	t.Parallel()
	const n = 20_000
	xml := []byte(doc(recordXML, strings.Repeat(recordXML, n)))
	for name, in := range map[string][]byte{
		"gzip": gzipped(t, xml, ""),
		"zip":  zipped(t, zipEntry{"r.xml", xml}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ratio := len(xml) / len(in)
			require.Greater(t, ratio, 200, "the sample must compress as well as a real repetitive report")
			// The former limit, 100:1, refused it.
			_, err := parse(in, report.Limits{MaxRatio: 100})
			require.Equal(t, report.RatioTooHigh, reasonOf(t, err))

			atts, err := report.Extract(in, report.Limits{})
			require.NoError(t, err)
			r, err := atts[0].Open()
			require.NoError(t, err)
			records := 0
			var messages int64
			_, err = report.DecodeStream(r, report.Limits{}, nil, func(rec report.Record) error {
				records++
				messages += rec.Count
				return nil
			})
			require.NoError(t, err, "compressed %d:1", ratio)
			require.Equal(t, n, records)
			require.Equal(t, int64(3*n), messages)
		})
	}
}

// TestExtractCleansNames: names and details that come from the input are
// valid UTF-8 without control characters, safe to log and store.
func TestExtractCleansNames(t *testing.T) {
	t.Parallel()
	atts, err := report.Extract(zipped(t, zipEntry{"a\x00b\xff.xml", []byte(doc())}), report.Limits{})
	require.NoError(t, err)
	require.Equal(t, "a\uFFFDb\uFFFD.xml", atts[0].Name)
	require.True(t, utf8.ValidString(atts[0].Path))

	_, _, err = report.Decode(strings.NewReader("<fe\xffed\x01/>"), report.Limits{})
	var ref *report.Refusal
	require.ErrorAs(t, err, &ref)
	require.True(t, utf8.ValidString(ref.Detail))
	require.NotContains(t, ref.Detail, "\x01")
}
