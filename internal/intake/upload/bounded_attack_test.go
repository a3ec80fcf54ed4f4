//go:build attack

package upload_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
)

// TestBoundedAnonymousUploads: 32 concurrent clients without a valid
// credential send large bodies to every upload path (multipart and chunked
// raw to POST /upload; multipart uploadReports to /graphql, with and
// without a Content-Length). The server must answer each without reading
// more than its small pre-authentication limit of the body, and its peak
// resident memory must stay under 200 MB. Before the fix a multipart body
// skipped the limit: gqlgen parsed it, holding a body of unknown length in
// memory, before the caller was authenticated (32 requests: 1.9 GB).
func TestBoundedAnonymousUploads(t *testing.T) {
	const (
		clients  = 32
		bodySize = 96 << 20
		// What one request may make the server read: the 1 MiB pre-auth
		// limit, with room for headers and net/http's drain of an unread
		// body before it closes the connection.
		perRequest = 3 << 19
		maxPeakRSS = 200 << 20
	)
	s := attacktest.StartServe(t, attacktest.ServeOptions{})
	pid := s.Cmd.Process.Pid
	// ExpectContinueTimeout: the requests that ask "Expect: 100-continue"
	// (as curl does for large bodies) wait for the server's word before
	// sending their body, so their 401 always reaches the client; the
	// others send at once, and may see the connection closed first.
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: 30 * time.Second}}
	t.Cleanup(client.CloseIdleConnections)

	multipartBody := func(field string) (io.Reader, int64) {
		head := "--b0undary\r\nContent-Disposition: form-data; name=\"" + field + "\"; filename=\"big.xml\"\r\n" +
			"Content-Type: application/xml\r\n\r\n"
		tail := "\r\n--b0undary--\r\n"
		return io.MultiReader(strings.NewReader(head), io.LimitReader(zeros{}, bodySize), strings.NewReader(tail)),
			int64(len(head) + bodySize + len(tail))
	}
	graphqlBody := func() (io.Reader, int64) {
		ops := `{"query":"mutation($f: [Upload!]!) { uploadReports(files: $f) { blobId } }","variables":{"f":[null]}}`
		head := "--b0undary\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n" + ops + "\r\n" +
			"--b0undary\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n" + `{"0":["variables.f.0"]}` + "\r\n"
		file, n := multipartBody("0")
		return io.MultiReader(strings.NewReader(head), file), int64(len(head)) + n
	}
	type attack struct {
		name, path, contentType string
		body                    func() (io.Reader, int64)
		chunked                 bool
	}
	const formType = "multipart/form-data; boundary=b0undary"
	for _, a := range []attack{
		{"upload multipart", "/upload", formType, func() (io.Reader, int64) { return multipartBody("file") }, false},
		{"upload chunked", "/upload", "application/xml", func() (io.Reader, int64) { return io.LimitReader(zeros{}, bodySize), bodySize }, true},
		{"graphql multipart", "/graphql", formType, graphqlBody, false},
		{"graphql multipart chunked", "/graphql", formType, graphqlBody, true},
	} {
		t.Run(a.name, func(t *testing.T) {
			before := readChars(t, pid)
			var wg sync.WaitGroup
			var mu sync.Mutex
			statuses := map[string]int{}
			for i := range clients {
				wg.Go(func() {
					body, n := a.body()
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Base+a.path, io.NopCloser(body))
					if err != nil {
						panic(err)
					}
					req.ContentLength = n
					if a.chunked {
						req.ContentLength = -1
					}
					req.Header.Set("Content-Type", a.contentType)
					if i%2 == 1 { // half of them with a credential that proves nothing
						req.Header.Set("Authorization", "Bearer rmp_"+strings.Repeat("0", 64))
					}
					if i%4 < 2 { // half of them wait for the server before sending
						req.Header.Set("Expect", "100-continue")
					}
					outcome := "connection closed while sending"
					if resp, err := client.Do(req); err == nil {
						outcome = strconv.Itoa(resp.StatusCode)
						_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
						_ = resp.Body.Close()
					} else if ctx.Err() != nil {
						outcome = "timed out"
					}
					mu.Lock()
					statuses[outcome]++
					mu.Unlock()
				})
			}
			wg.Wait()
			read := readChars(t, pid) - before
			t.Logf("%d requests of %d MB: the server read %.1f MB in all; outcomes %v", clients, bodySize>>20, float64(read)/(1<<20), statuses)
			require.Positive(t, statuses["401"], "no request was answered 401: %v", statuses)
			for outcome := range statuses {
				require.Contains(t, []string{"401", "connection closed while sending"}, outcome, "%v", statuses)
			}
			require.Less(t, read, int64(clients*perRequest), "the server read more than the pre-authentication limit per request")
		})
	}
	peak := s.Proc.Usage(t).PeakRSS
	t.Logf("peak RSS of rampart serve: %.1f MB", float64(peak)/(1<<20))
	require.Less(t, peak, int64(maxPeakRSS))
}

// readChars is what the process has read so far (rchar of /proc/PID/io):
// every read(2), sockets included, which is how Go reads TCP connections.
func readChars(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no rchar in /proc/%d/io", pid)
	return 0
}
