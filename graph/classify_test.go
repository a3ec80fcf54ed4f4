package graph_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/spf"
)

// classifyXML is a report whose sources are of every class.
func classifyXML(domain string) string {
	rec := func(ip, count, dkim, spfResult, auth string) string {
		return `
  <record><row><source_ip>` + ip + `</source_ip><count>` + count + `</count>
    <policy_evaluated><disposition>none</disposition><dkim>` + dkim + `</dkim><spf>` + spfResult + `</spf></policy_evaluated></row>
    <identifiers><header_from>` + domain + `</header_from></identifiers>
    <auth_results>` + auth + `</auth_results></record>`
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>receiver.example</org_name><email>dmarc@receiver.example</email><report_id>classify-1</report_id>
    <date_range><begin>1764201600</begin><end>1764287999</end></date_range></report_metadata>
  <policy_published><domain>` + domain + `</domain><p>none</p></policy_published>` +
		rec("192.0.2.10", "7", "pass", "pass", `<spf><domain>`+domain+`</domain><result>pass</result></spf>`) +
		rec("149.72.1.1", "5", "fail", "pass", `<spf><domain>bounces.sendgrid.net</domain><result>pass</result></spf>`) +
		rec("198.51.100.5", "3", "fail", "fail", `<dkim><domain>lists.example.org</domain><selector>s1</selector><result>pass</result></dkim>`) +
		rec("198.51.100.6", "2", "pass", "fail", `<dkim><domain>`+domain+`</domain><selector>mykey</selector><result>pass</result></dkim>`) +
		rec("198.51.100.8", "6", "pass", "fail", `<dkim><domain>`+domain+`</domain><selector>google</selector><result>pass</result></dkim>`) +
		rec("203.0.113.9", "4", "fail", "fail", `<spf><domain>spoof.example</domain><result>fail</result></spf>`) + `
</feedback>`
}

// TestClassifySources: every source of a stored report is classified with
// its evidence (a netblock, a service's range, forwarding, an aligned key
// of the domain's own, nothing), and a change to the domain's netblocks
// queues the domain and reclassifies its history.
func TestClassifySources(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 1 })
	ctx := context.Background()
	world := vendorZone(t)
	_, err := env.Services(t).Senders.ResolveRanges(ctx, spf.NewDNSResolver(world.Addr))
	require.NoError(t, err)
	o := env.NewOwner(t, "Classify")
	const d = "classify-example.com"
	env.AddVerifiedDomain(t, o, d)
	env.Do(t, o.Token, `mutation { addNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name } }`, nil).NoErrors(t)
	uploadFiles(t, env, o.Token, map[string][]byte{"classify.xml": []byte(classifyXML(d))})
	pollUntil(t, env, o.Token, `{ domain(name: "`+d+`") { reports { totalCount } } }`,
		func(r *apitest.Response) bool { return r.Raw == `{"data":{"domain":{"reports":{"totalCount":1}}}}` })

	classes := func() map[string][2]string {
		t.Helper()
		// The server's own classify job may hold a due day (locked, so
		// this run skips it) while it classifies it: run until none of
		// the domain's days is due, each held one having been committed.
		for deadline := time.Now().Add(10 * time.Second); ; {
			run, err := env.Services(t).Sources.Run(ctx, time.Time{})
			require.NoError(t, err)
			require.True(t, run.Done)
			var due bool
			require.NoError(t, env.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM classify_days c JOIN domains d ON d.id = c.domain_id
				WHERE d.name = $1 AND c.not_before <= now())`, d).Scan(&due))
			if !due {
				break
			}
			require.True(t, time.Now().Before(deadline), "a day of the domain is still due after 10 s")
			time.Sleep(20 * time.Millisecond)
		}
		rows, err := env.Pool.Query(ctx, `SELECT host(c.source_ip), c.class, c.service, c.evidence FROM source_classes c
			JOIN domains d ON d.id = c.domain_id WHERE d.name = $1`, d)
		require.NoError(t, err)
		out := map[string][2]string{}
		for rows.Next() {
			var ip, class, service, evidence string
			require.NoError(t, rows.Scan(&ip, &class, &service, &evidence))
			require.NotEmpty(t, evidence)
			out[ip] = [2]string{class, service}
		}
		require.NoError(t, rows.Err())
		return out
	}
	require.Equal(t, map[string][2]string{
		"192.0.2.10":   {"internal", ""},
		"149.72.1.1":   {"service", "sendgrid"},
		"198.51.100.5": {"forwarded", ""},
		"198.51.100.6": {"internal", ""},
		"198.51.100.8": {"service", "google-workspace"}, // the catalog's selector, signing as the domain
		"203.0.113.9":  {"unidentified", ""},
	}, classes())

	// The day waits for its sources' reverse names (the enrichment runs in
	// this set-up: a resolver is configured); once they are looked up, it
	// is classified again: a confirmed PTR name under a service's suffix.
	var waiting bool
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM classify_days c JOIN domains d ON d.id = c.domain_id
		WHERE d.name = $1 AND c.not_before > now())`, d).Scan(&waiting))
	require.True(t, waiting, "the day waits for the reverse names")
	_, err = env.Pool.Exec(ctx, `INSERT INTO ip_enrichment (ip, ptr, ptr_confirmed, looked_up_at, expires_at, last_seen)
		SELECT ip::inet, CASE WHEN ip = '203.0.113.9' THEN 'o7.ptr42.sendgrid.net' END, ip = '203.0.113.9', now(), now() + interval '1 day', current_date
		FROM unnest(ARRAY['192.0.2.10', '149.72.1.1', '198.51.100.5', '198.51.100.6', '198.51.100.8', '203.0.113.9']) AS ip
		ON CONFLICT (ip) DO UPDATE SET ptr = EXCLUDED.ptr, ptr_confirmed = EXCLUDED.ptr_confirmed, looked_up_at = now()`)
	require.NoError(t, err)
	_, err = env.Pool.Exec(ctx, `UPDATE classify_days SET not_before = now()`) // the retry's time has come
	require.NoError(t, err)
	require.Equal(t, [2]string{"service", "sendgrid"}, classes()["203.0.113.9"])
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM classify_days c JOIN domains d ON d.id = c.domain_id
		WHERE d.name = $1)`, d).Scan(&waiting))
	require.False(t, waiting, "every reverse name known: the day is done")

	// The netblocks change: the report's day, in the past, is classified
	// again.
	env.Do(t, o.Token, `mutation { addNetblock(domain: "`+d+`", cidr: "203.0.113.0/24") { name } }`, nil).NoErrors(t)
	env.Do(t, o.Token, `mutation { removeNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name } }`, nil).NoErrors(t)
	got := classes()
	require.Equal(t, [2]string{"internal", ""}, got["203.0.113.9"], "a netblock is stronger evidence than a PTR name")
	require.Equal(t, [2]string{"unidentified", ""}, got["192.0.2.10"])

	// Nothing queued: a run does nothing.
	run, err := env.Services(t).Sources.Run(ctx, time.Time{})
	require.NoError(t, err)
	require.Equal(t, 0, run.Days)
}
