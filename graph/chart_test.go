package graph_test

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/spf"
)

// svgChart is the part of the chart's SVG the test reads.
type svgChart struct {
	XMLName   xml.Name `xml:"svg"`
	Title     string   `xml:"title"`
	Polylines []struct {
		Category string `xml:"data-category,attr"`
		Points   string `xml:"points,attr"`
	} `xml:"polyline"`
	Texts []string `xml:"text"`
}

// TestPassRateChart: the daily pass-rate chart of a domain's report is an
// SVG for its authenticated readers, one line per category at the rate the
// report gives, parsed here as XML; others are refused.
func TestPassRateChart(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 1 })
	ctx := context.Background()
	_, err := env.Services(t).Senders.ResolveRanges(ctx, spf.NewDNSResolver(vendorZone(t).Addr))
	require.NoError(t, err)
	o := env.NewOwner(t, "Chart")
	stranger := env.NewOwner(t, "Stranger")
	const d = "chart-example.com"
	env.AddVerifiedDomain(t, o, d)
	env.Do(t, o.Token, `mutation { addNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name } }`, nil).NoErrors(t)
	uploadFiles(t, env, o.Token, map[string][]byte{"classify.xml": []byte(classifyXML(d))})
	pollUntil(t, env, o.Token, `{ domain(name: "`+d+`") { reports { totalCount } } }`,
		func(r *apitest.Response) bool { return r.Raw == `{"data":{"domain":{"reports":{"totalCount":1}}}}` })
	classifyNow(t, env)

	get := func(token string, query url.Values) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(env.URL, "/graphql")+"/charts/pass-rate.svg?"+query.Encode(), nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}
	// The report's day (2025-11-27) and the next, without reports.
	q := url.Values{"domain": {d}, "from": {"2025-11-27"}, "to": {"2025-11-28"}}
	code, ctype, body := get(o.Token, q)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "image/svg+xml", ctype)
	var chart svgChart
	require.NoError(t, xml.Unmarshal([]byte(body), &chart), body)
	require.Contains(t, chart.Title, d)
	points := map[string]string{}
	for _, p := range chart.Polylines {
		points[p.Category] = p.Points
	}
	// One day with messages: one point per category, at x = the plot's
	// left edge; y = 24 at 100%, 280 at 0% (the plot is 256 high).
	require.Equal(t, map[string]string{
		"internal":     "48.0,24.0",  // 192.0.2.10 and the domain's own key: all pass
		"service":      "48.0,24.0",  // sendgrid (SPF aligned) and Google's selector: all pass
		"forwarded":    "48.0,280.0", // DKIM passes unaligned: DMARC fails
		"unidentified": "48.0,280.0",
	}, points)
	require.Contains(t, chart.Texts, "2025-11-27")
	require.Contains(t, chart.Texts, "2025-11-28")
	require.Contains(t, chart.Texts, "100%")

	code, _, _ = get("", q)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = get(stranger.Token, q)
	require.Equal(t, http.StatusNotFound, code)
	code, _, body = get(o.Token, url.Values{"domain": {d}, "days": {"12"}})
	require.Equal(t, http.StatusBadRequest, code, body)
	code, _, _ = get(o.Token, url.Values{"domain": {d}, "days": {"7"}})
	require.Equal(t, http.StatusOK, code)
}
