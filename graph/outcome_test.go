package graph_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
)

// uploadFiles posts files to the upload endpoint as the token's account.
func uploadFiles(t *testing.T, env *apitest.Env, token string, files map[string][]byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for name, data := range files {
		fw, err := mw.CreateFormFile("file", name)
		require.NoError(t, err)
		_, _ = fw.Write(data)
	}
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(env.URL, "/graphql")+"/upload", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// pollUntil sends query until done accepts the answer, for 20 seconds.
func pollUntil(t *testing.T, env *apitest.Env, token, query string, done func(*apitest.Response) bool) *apitest.Response {
	t.Helper()
	var r *apitest.Response
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		r = env.Do(t, token, query, nil)
		r.NoErrors(t)
		if done(r) {
			return r
		}
	}
	t.Fatalf("timed out; last answer: %s", r.Raw)
	return nil
}

// TestCountPast32Bits: a report whose record counts sum past 2^32 is
// stored and read back exactly through GraphQL over HTTP, as a JSON number
// (GraphQL's Int would overflow at 2^31).
func TestCountPast32Bits(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 1 })
	o := env.NewOwner(t, "Counts")
	const d = "counts-example.com"
	env.AddVerifiedDomain(t, o, d)
	xml := strings.Replace(aggregateXML(d, "big-1"), "<count>7</count>", "<count>3000000000</count>", 1)
	xml = strings.Replace(xml, "<count>3</count>", "<count>5000000001</count>", 1)
	uploadFiles(t, env, o.Token, map[string][]byte{"big.xml": []byte(xml)})

	const q = `{ domain(name: "` + d + `") { reports { totalCount nodes { messages records duplicates } } } }`
	r := pollUntil(t, env, o.Token, q, func(r *apitest.Response) bool { return strings.Contains(r.Raw, `"totalCount":1`) })
	require.Contains(t, r.Raw, `"messages":8000000001,`, "a JSON number, exact")
	var got struct {
		Domain struct {
			Reports struct {
				Nodes []struct{ Messages, Records, Duplicates int64 }
			}
		}
	}
	r.Decode(t, &got)
	require.Len(t, got.Domain.Reports.Nodes, 1)
	require.Equal(t, int64(8_000_000_001), got.Domain.Reports.Nodes[0].Messages)
	require.Equal(t, int64(2), got.Domain.Reports.Nodes[0].Records)
}
