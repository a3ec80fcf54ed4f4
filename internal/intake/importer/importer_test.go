package importer_test

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rampartmail/rampart/internal/intake/importer"
	"github.com/rampartmail/rampart/internal/intake/intaketest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func xmlReport(id string) string {
	return `<?xml version="1.0"?><feedback><report_metadata><org_name>receiver.test</org_name><report_id>` + id +
		`</report_id></report_metadata><policy_published><domain>example.com</domain></policy_published></feedback>`
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err := w.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

func zipped(t *testing.T, name, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, err := w.Create(name)
	require.NoError(t, err)
	_, err = f.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

func mboxOf(msgs ...string) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("From noreply-dmarc@receiver.test Mon Jan  1 00:00:00 2024\n")
		b.WriteString(m)
		b.WriteString("\n")
	}
	return b.String()
}

func mail(id string) string {
	return "From: noreply-dmarc@receiver.test\nSubject: Report-ID: " + id + "\n\n" + xmlReport(id) + "\n"
}

// folder writes the files under a temporary folder.
func folder(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
	return dir
}

func TestImportFolder(t *testing.T) {
	t.Parallel()
	e := intaketest.New(t)
	dir := folder(t, map[string][]byte{
		"a.xml":             []byte(xmlReport("a")),
		"b.xml.gz":          gz(t, xmlReport("b")),
		"c.zip":             zipped(t, "c.xml", xmlReport("c")),
		"inbox.mbox":        []byte(mboxOf(mail("m1"), mail("m2"), mail("m3"))),
		"sub/copy-of-a.xml": []byte(xmlReport("a")),
		"sub/big.xml":       []byte(strings.Repeat("x", 5000)),
		"sub/empty.xml":     nil,
		".hidden/skip.xml":  []byte(xmlReport("hidden")),
		".DS_Store":         []byte("junk"),
	})
	missing := filepath.Join(dir, "missing.xml")
	var out bytes.Buffer
	im := importer.New(e.Store, importer.Options{MaxSize: 4096, Progress: &out, Display: importer.DisplayLines})
	sum, err := im.Import(context.Background(), []string{dir, missing})
	require.NoError(t, err)

	require.Equal(t, 7, sum.Files)
	require.Equal(t, 9, sum.Inputs, "7 files, one of them an mbox of 3")
	require.Equal(t, 6, sum.Accepted, "a, b, c and the 3 messages")
	require.Equal(t, 1, sum.Duplicates, "the copy of a")
	reasons := map[string]string{}
	for _, r := range sum.Refused {
		rel, err := filepath.Rel(dir, r.Path)
		require.NoError(t, err)
		reasons[rel] = r.Reason
	}
	require.Equal(t, map[string]string{
		"missing.xml":   "no such file or folder",
		"sub/big.xml":   "the file is 4.9 KB; the limit is 4.0 KB",
		"sub/empty.xml": "the report is empty",
	}, reasons)

	blobs := e.Blobs(t)
	require.Len(t, blobs, 6)
	names := map[string]bool{}
	for _, b := range blobs {
		require.Equal(t, "import", b.Source)
		require.Nil(t, b.AccountID)
		require.Empty(t, b.Recipients)
		names[b.Filename] = true
	}
	require.Equal(t, map[string]bool{"a.xml": true, "b.xml.gz": true, "c.zip": true,
		"inbox.mbox#1": true, "inbox.mbox#2": true, "inbox.mbox#3": true}, names)
	for _, b := range blobs {
		if b.Filename == "inbox.mbox#2" {
			require.Equal(t, mail("m2"), string(b.Raw), "one message, without its separator")
		}
	}
	require.Equal(t, 6, e.IngestJobs(t))

	require.Contains(t, out.String(), "import: 100%  7/7 files")

	var printed bytes.Buffer
	sum.Print(&printed)
	require.Contains(t, printed.String(), "Imported 9 inputs from 7 files")
	require.Contains(t, printed.String(), "queued 6 for decoding")
	require.Contains(t, printed.String(), "sub/big.xml: the file is 4.9 KB; the limit is 4.0 KB")

	// Again: everything stored is a duplicate now.
	sum, err = im.Import(context.Background(), []string{dir})
	require.NoError(t, err)
	require.Zero(t, sum.Accepted)
	require.Equal(t, 7, sum.Duplicates)
	require.Equal(t, 6, e.BlobCount(t))
}

func TestImportScopedToAccount(t *testing.T) {
	t.Parallel()
	e := intaketest.New(t)
	dir := folder(t, map[string][]byte{"a.xml": []byte(xmlReport("a"))})
	var out bytes.Buffer
	im := importer.New(e.Store, importer.Options{AccountID: &e.Account, Progress: &out, Display: importer.DisplayBar})
	sum, err := im.Import(context.Background(), []string{filepath.Join(dir, "a.xml")})
	require.NoError(t, err)
	require.Equal(t, 1, sum.Accepted)
	blobs := e.Blobs(t)
	require.Len(t, blobs, 1)
	require.Equal(t, e.Account, *blobs[0].AccountID)
	require.Contains(t, out.String(), "\r[==============================] 100%  1/1 files")
	require.True(t, strings.HasSuffix(out.String(), "\n"))
}

func TestImportStopsWhenTheStoreFails(t *testing.T) {
	t.Parallel()
	e := intaketest.New(t)
	_, err := e.Pool.Exec(context.Background(), `DROP TABLE report_blobs CASCADE`)
	require.NoError(t, err)
	dir := folder(t, map[string][]byte{"a.xml": []byte(xmlReport("a")), "b.xml": []byte(xmlReport("b"))})
	sum, err := importer.New(e.Store, importer.Options{}).Import(context.Background(), []string{dir})
	require.Error(t, err)
	require.Equal(t, 1, sum.Files, "stopped at the first failure")
	require.Zero(t, sum.Accepted)
}
