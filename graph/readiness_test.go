package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/spf"
)

// A source of a day's report in the readiness tests.
type daySource struct {
	ip    string
	count int
	// pass: DMARC passes (the sender's kind decides SPF or DKIM).
	pass bool
	// kind: internal (the domain's own SPF), sendgrid (aligned DKIM s1,
	// SendGrid's own SPF), mandrill (Mandrill's DKIM and SPF, unaligned),
	// spoof (SPF fails, no DKIM).
	kind string
}

// dayReport is one reporter's aggregate report of one day for domain.
func dayReport(domain, id string, day time.Time, srcs []daySource) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>receiver.example</org_name><email>dmarc@receiver.example</email><report_id>%s</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>%s</domain><p>none</p></policy_published>`, id, day.Unix(), day.Unix()+86399, domain)
	for _, s := range srcs {
		if s.count == 0 {
			continue
		}
		result := map[bool]string{true: "pass", false: "fail"}
		var dkim, spfEval, auth string
		switch s.kind {
		case "internal":
			dkim, spfEval = "fail", result[s.pass]
			auth = `<spf><domain>` + domain + `</domain><result>` + result[s.pass] + `</result></spf>`
		case "sendgrid":
			dkim, spfEval = result[s.pass], "fail"
			auth = `<dkim><domain>` + domain + `</domain><selector>s1</selector><result>` + result[s.pass] + `</result></dkim>` +
				`<dkim><domain>sendgrid.net</domain><selector>smtpapi</selector><result>pass</result></dkim>` +
				`<spf><domain>bounces.sendgrid.net</domain><result>pass</result></spf>`
		case "mandrill":
			dkim, spfEval = "fail", "fail"
			auth = `<dkim><domain>mandrillapp.com</domain><selector>mandrill</selector><result>pass</result></dkim>` +
				`<spf><domain>mandrillapp.com</domain><result>pass</result></spf>`
		case "spoof":
			dkim, spfEval = "fail", "fail"
			auth = `<spf><domain>` + domain + `</domain><result>fail</result></spf>`
		}
		fmt.Fprintf(&b, `
  <record><row><source_ip>%s</source_ip><count>%d</count>
    <policy_evaluated><disposition>none</disposition><dkim>%s</dkim><spf>%s</spf></policy_evaluated></row>
    <identifiers><header_from>%s</header_from></identifiers>
    <auth_results>%s</auth_results></record>`, s.ip, s.count, dkim, spfEval, domain, auth)
	}
	b.WriteString("\n</feedback>\n")
	return []byte(b.String())
}

// readinessDays uploads one report a day for each of the days ago (today
// is 0) with the sources srcs gives, waits until every one is stored and
// classifies them.
func readinessDays(t *testing.T, env *apitest.Env, o apitest.Owner, domain string, days []int, srcs func(ago int) []daySource) {
	t.Helper()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	files := map[string][]byte{}
	for _, ago := range days {
		id := fmt.Sprintf("%s-%d", domain, ago)
		files[id+".xml"] = dayReport(domain, id, today.AddDate(0, 0, -ago), srcs(ago))
	}
	uploadFiles(t, env, o.Token, files)
	want := fmt.Sprintf(`{"data":{"domain":{"reports":{"totalCount":%d}}}}`, len(days))
	pollUntil(t, env, o.Token, `{ domain(name: "`+domain+`") { reports { totalCount } } }`,
		func(r *apitest.Response) bool { return r.Raw == want })
	classifyNow(t, env)
}

func span(from, to int) []int {
	var out []int
	for d := from; d >= to; d-- {
		out = append(out, d)
	}
	return out
}

type readinessReason struct {
	Code      string  `json:"code"`
	Sender    *string `json:"sender"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Blocks    string  `json:"blocks"`
	Message   string  `json:"message"`
}

type readinessResult struct {
	Verdict string            `json:"verdict"`
	Reasons []readinessReason `json:"reasons"`
	Senders []struct {
		Key          string  `json:"key"`
		Name         string  `json:"name"`
		Authorized   bool    `json:"authorized"`
		Messages     int64   `json:"messages"`
		Passed       int64   `json:"passed"`
		PassRate     float64 `json:"passRate"`
		Threshold    float64 `json:"threshold"`
		OwnThreshold bool    `json:"ownThreshold"`
		FirstSeen    string  `json:"firstSeen"`
		New          bool    `json:"new"`
	} `json:"senders"`
	From                 string  `json:"from"`
	To                   string  `json:"to"`
	Days                 int     `json:"days"`
	Messages             int64   `json:"messages"`
	UnidentifiedMessages int64   `json:"unidentifiedMessages"`
	ForwardedMessages    int64   `json:"forwardedMessages"`
	UnidentifiedShare    float64 `json:"unidentifiedShare"`
	Threshold            float64 `json:"threshold"`
}

const readinessQuery = `query($d: String!) { domain(name: $d) { readiness {
	verdict reasons { code sender value threshold blocks message }
	senders { key name authorized messages passed passRate threshold ownThreshold firstSeen new }
	from to days messages unidentifiedMessages forwardedMessages unidentifiedShare threshold
	rules { windowDays newSenderDays minDays minMessages quarantineUnidentified rejectUnidentified } } } }`

func getReadiness(t *testing.T, env *apitest.Env, token, domain string) readinessResult {
	t.Helper()
	r := env.Do(t, token, readinessQuery, map[string]any{"d": domain})
	r.NoErrors(t)
	var out struct {
		Domain struct {
			Readiness readinessResult `json:"readiness"`
		} `json:"domain"`
	}
	r.Decode(t, &out)
	return out.Domain.Readiness
}

func reasonCodes(r readinessResult) []string {
	var out []string
	for _, rs := range r.Reasons {
		s := rs.Code + "/" + rs.Blocks
		if rs.Sender != nil {
			s += "/" + *rs.Sender
		}
		out = append(out, s)
	}
	return out
}

// TestReadiness: the verdict from real reports, classified, over real
// GraphQL: each reason, the quarantine and reject verdicts, the thresholds,
// and the guard on updateDmarcPolicy (refused with READINESS, forced and
// recorded, loosening, BLOCKED exempt).
func TestReadiness(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 1 })
	ctx := context.Background()
	world := vendorZone(t)
	_, err := env.Services(t).Senders.ResolveRanges(ctx, spf.NewDNSResolver(world.Addr))
	require.NoError(t, err)
	o := env.NewOwner(t, "Readiness")
	setup := func(d string, sendgrid bool) {
		env.AddVerifiedDomain(t, o, d)
		env.Do(t, o.Token, `mutation { addNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name } }`, nil).NoErrors(t)
		if sendgrid {
			env.Do(t, o.Token, `mutation { enableSender(domain: "`+d+`", service: "sendgrid") { name } }`, nil).NoErrors(t)
		}
	}

	// ready: 10 days, from 19 to 10 days ago, the domain's own servers and
	// SendGrid, which fails once.
	const ready = "ready-example.com"
	setup(ready, true)
	readinessDays(t, env, o, ready, span(19, 10), func(ago int) []daySource {
		srcs := []daySource{{ip: "192.0.2.10", count: 20, pass: true, kind: "internal"}, {ip: "149.72.1.1", count: 30, pass: true, kind: "sendgrid"}}
		if ago == 15 {
			srcs[1].count = 29
			srcs = append(srcs, daySource{ip: "149.72.1.2", count: 1, kind: "sendgrid"})
		}
		return srcs
	})
	r := getReadiness(t, env, o.Token, ready)
	today := time.Now().UTC()
	require.Equal(t, "READY_FOR_REJECT", r.Verdict, "%+v", r.Reasons)
	require.Empty(t, r.Reasons)
	require.Equal(t, today.Format(time.DateOnly), r.To)
	require.Equal(t, today.AddDate(0, 0, -29).Format(time.DateOnly), r.From)
	require.Equal(t, 10, r.Days)
	require.Equal(t, int64(500), r.Messages)
	require.Equal(t, int64(0), r.UnidentifiedMessages)
	require.InDelta(t, 95, r.Threshold, 0)
	require.Len(t, r.Senders, 2)
	require.Equal(t, "internal", r.Senders[0].Key)
	require.Equal(t, int64(200), r.Senders[0].Messages)
	require.InDelta(t, 100, r.Senders[0].PassRate, 1e-9)
	require.Equal(t, "sendgrid", r.Senders[1].Key)
	require.True(t, r.Senders[1].Authorized)
	require.Equal(t, int64(300), r.Senders[1].Messages)
	require.Equal(t, int64(299), r.Senders[1].Passed)
	require.Equal(t, today.AddDate(0, 0, -19).Format(time.DateOnly), r.Senders[1].FirstSeen)
	require.False(t, r.Senders[1].New)

	// The thresholds change the verdict: the domain's, then the sender's
	// own.
	env.Do(t, o.Token, `mutation { setReadinessThreshold(domain: "`+ready+`", threshold: 100) { readinessThreshold } }`, nil).NoErrors(t)
	r = getReadiness(t, env, o.Token, ready)
	require.Equal(t, "NOT_READY", r.Verdict)
	require.Equal(t, []string{"SENDER_FAILING/QUARANTINE/sendgrid"}, reasonCodes(r))
	require.InDelta(t, 100*299/300.0, r.Reasons[0].Value, 1e-9)
	require.InDelta(t, 100, r.Reasons[0].Threshold, 0)
	require.Contains(t, r.Reasons[0].Message, "SendGrid passes DMARC for 99.67% of its 300 messages; it needs 100%: align its SPF or DKIM with the domain first.")
	env.Do(t, o.Token, `mutation { setSenderThreshold(domain: "`+ready+`", service: "sendgrid", threshold: 99.5) { name } }`, nil).NoErrors(t)
	r = getReadiness(t, env, o.Token, ready)
	require.Equal(t, "READY_FOR_REJECT", r.Verdict, "%+v", r.Reasons)
	require.True(t, r.Senders[1].OwnThreshold)
	require.InDelta(t, 99.5, r.Senders[1].Threshold, 0)
	require.InDelta(t, 100, r.Senders[0].Threshold, 0)
	for _, bad := range []string{
		`setReadinessThreshold(domain: "` + ready + `", threshold: 49.9) { name }`,
		`setReadinessThreshold(domain: "` + ready + `", threshold: 100.5) { name }`,
		`setSenderThreshold(domain: "` + ready + `", service: "sendgrid", threshold: 20) { name }`,
	} {
		env.Do(t, o.Token, `mutation { `+bad+` }`, nil).RequireCode(t, "BAD_USER_INPUT")
	}
	env.Do(t, o.Token, `mutation { setSenderThreshold(domain: "`+ready+`", service: "mandrill", threshold: 90) { name } }`, nil).RequireCode(t, "NOT_FOUND")

	// Ready for reject: the policy tightens without force, and the change
	// is recorded as not forced.
	env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+ready+`", policy: {p: REJECT}) { dmarcPolicy { p } } }`, nil).NoErrors(t)
	var changes int
	var forced bool
	var verdict, from, to string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) OVER (), forced, verdict, from_policy, to_policy FROM policy_changes c
		JOIN domains d ON d.id = c.domain_id WHERE d.name = $1 AND c.actor_user_id = $2`, ready, o.UserID).Scan(&changes, &forced, &verdict, &from, &to))
	require.Equal(t, 1, changes)
	require.False(t, forced)
	require.Equal(t, "READY_FOR_REJECT", verdict)
	require.Equal(t, "p=none; pct=100", from)
	require.Equal(t, "p=reject; pct=100", to)

	// notready: Mandrill, not enabled, fails DMARC for all its mail; a
	// little unidentified mail stays under 2%.
	const notReady = "notready-example.com"
	setup(notReady, true)
	readinessDays(t, env, o, notReady, span(19, 10), func(ago int) []daySource {
		srcs := []daySource{
			{ip: "192.0.2.10", count: 20, pass: true, kind: "internal"},
			{ip: "149.72.1.1", count: 30, pass: true, kind: "sendgrid"},
			{ip: "198.2.128.5", count: 10, kind: "mandrill"},
		}
		if ago == 12 {
			srcs = append(srcs, daySource{ip: "203.0.113.9", count: 10, kind: "spoof"})
		}
		return srcs
	})
	r = getReadiness(t, env, o.Token, notReady)
	require.Equal(t, "NOT_READY", r.Verdict)
	require.Equal(t, []string{"SENDER_FAILING/QUARANTINE/mandrill"}, reasonCodes(r))
	require.Equal(t, int64(610), r.Messages)
	require.Equal(t, int64(10), r.UnidentifiedMessages)
	require.InDelta(t, 100*10/610.0, r.UnidentifiedShare, 1e-9)
	require.Len(t, r.Senders, 3)
	require.Equal(t, "mandrill", r.Senders[2].Key)
	require.False(t, r.Senders[2].Authorized)
	require.Equal(t, int64(100), r.Senders[2].Messages)
	require.Zero(t, r.Senders[2].PassRate)
	require.Contains(t, r.Reasons[0].Message, "not enabled for the domain")

	// Tightening is refused with the reasons; force changes it and is
	// recorded; loosening is allowed; BLOCKED is exempt.
	for _, change := range []string{`{p: QUARANTINE}`, `{sp: REJECT}`, `{np: QUARANTINE}`} {
		res := env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+notReady+`", policy: `+change+`) { name } }`, nil)
		res.RequireCode(t, "READINESS")
		ext := res.Errors[0].Extensions
		require.Equal(t, "NOT_READY", ext["verdict"], change)
		var reasons []readinessReason
		raw, err := json.Marshal(ext["reasons"])
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &reasons))
		require.Len(t, reasons, 1)
		require.Equal(t, "SENDER_FAILING", reasons[0].Code)
		require.Equal(t, "mandrill", *reasons[0].Sender)
		require.Equal(t, "QUARANTINE", reasons[0].Blocks)
		require.Contains(t, res.Errors[0].Message, "Mandrill")
		require.Contains(t, res.Errors[0].Message, "force: true")
	}
	res := env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+notReady+`", policy: {p: QUARANTINE, pct: 25}, force: true) { dmarcPolicy { p pct } } }`, nil)
	res.NoErrors(t)
	require.Contains(t, res.Raw, `"dmarcPolicy":{"p":"QUARANTINE","pct":25}`)
	var reasonsJSON string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT forced, verdict, from_policy, to_policy, reasons::text FROM policy_changes c
		JOIN domains d ON d.id = c.domain_id WHERE d.name = $1 AND c.actor_user_id = $2`, notReady, o.UserID).Scan(&forced, &verdict, &from, &to, &reasonsJSON))
	require.True(t, forced)
	require.Equal(t, "NOT_READY", verdict)
	require.Equal(t, "p=none; pct=100", from)
	require.Equal(t, "p=quarantine; pct=25", to)
	require.Contains(t, reasonsJSON, `"sender": "mandrill"`)
	res = env.Do(t, o.Token, `{ domain(name: "`+notReady+`") { policyChanges { actor from to verdict forced reasons { code sender blocks } } } }`, nil)
	res.NoErrors(t)
	require.JSONEq(t, `{"domain": {"policyChanges": [{"actor": "`+o.Email+`", "from": "p=none; pct=100", "to": "p=quarantine; pct=25",
		"verdict": "NOT_READY", "forced": true, "reasons": [{"code": "SENDER_FAILING", "sender": "mandrill", "blocks": "QUARANTINE"}]}]}}`, string(res.Data))
	// A larger pct tightens too.
	env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+notReady+`", policy: {pct: 50}) { name } }`, nil).RequireCode(t, "READINESS")
	// Loosening (and changes that tighten nothing) are allowed, and not
	// recorded.
	env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+notReady+`", policy: {pct: 10, adkim: STRICT}) { name } }`, nil).NoErrors(t)
	env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+notReady+`", policy: {p: NONE, pct: 100}) { name } }`, nil).NoErrors(t)
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM policy_changes c JOIN domains d ON d.id = c.domain_id WHERE d.name = $1`, notReady).Scan(&changes))
	require.Equal(t, 1, changes)
	res = env.Do(t, o.Token, `mutation { setDomainMode(name: "`+notReady+`", mode: BLOCKED) { dmarcPolicy { p } } }`, nil)
	res.NoErrors(t)
	require.Contains(t, res.Raw, `"p":"REJECT"`)
	env.Do(t, o.Token, `mutation { setDomainMode(name: "`+notReady+`", mode: SENDING) { name } }`, nil).NoErrors(t)

	// quarantine: 3.2% of the mail is unidentified: quarantine, not
	// reject.
	const quarantine = "quarantine-example.com"
	setup(quarantine, false)
	readinessDays(t, env, o, quarantine, span(19, 10), func(int) []daySource {
		return []daySource{{ip: "192.0.2.10", count: 30, pass: true, kind: "internal"}, {ip: "203.0.113.9", count: 1, kind: "spoof"}}
	})
	r = getReadiness(t, env, o.Token, quarantine)
	require.Equal(t, "READY_FOR_QUARANTINE", r.Verdict)
	require.Equal(t, []string{"UNIDENTIFIED_SHARE/REJECT"}, reasonCodes(r))
	require.InDelta(t, 100*10/310.0, r.Reasons[0].Value, 1e-9)
	require.InDelta(t, 2, r.Reasons[0].Threshold, 0)
	env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+quarantine+`", policy: {p: QUARANTINE}) { name } }`, nil).NoErrors(t)
	env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+quarantine+`", policy: {p: REJECT}) { name } }`, nil).RequireCode(t, "READINESS")

	// fresh: SendGrid and unidentified mail only in the last 5 days: a
	// new sender, and more than 5% unidentified.
	const fresh = "fresh-example.com"
	setup(fresh, true)
	readinessDays(t, env, o, fresh, span(19, 0), func(ago int) []daySource {
		srcs := []daySource{{ip: "192.0.2.10", count: 20, pass: true, kind: "internal"}}
		if ago < 5 {
			srcs = append(srcs, daySource{ip: "149.72.1.1", count: 30, pass: true, kind: "sendgrid"}, daySource{ip: "203.0.113.9", count: 10, kind: "spoof"})
		}
		return srcs
	})
	r = getReadiness(t, env, o.Token, fresh)
	require.Equal(t, "NOT_READY", r.Verdict)
	require.Equal(t, []string{"NEW_SENDER/QUARANTINE/sendgrid", "UNIDENTIFIED_SHARE/QUARANTINE"}, reasonCodes(r))
	require.True(t, r.Senders[1].New)
	require.InDelta(t, 5, r.Reasons[0].Value, 0, "first seen 5 days ago, today included")

	// little: 3 days, 60 messages: too little data.
	const little = "little-example.com"
	setup(little, false)
	readinessDays(t, env, o, little, span(2, 0), func(int) []daySource {
		return []daySource{{ip: "192.0.2.10", count: 20, pass: true, kind: "internal"}}
	})
	r = getReadiness(t, env, o.Token, little)
	require.Equal(t, "NOT_READY", r.Verdict)
	require.Equal(t, []string{"TOO_FEW_DAYS/QUARANTINE", "TOO_FEW_MESSAGES/QUARANTINE", "NEW_SENDER/QUARANTINE/internal"}, reasonCodes(r))
	require.Contains(t, r.Reasons[0].Message, "Too little data")

	// A stranger sees nothing and changes nothing.
	stranger := env.NewOwner(t, "Stranger")
	env.Do(t, stranger.Token, readinessQuery, map[string]any{"d": notReady}).RequireCode(t, "NOT_FOUND")
	env.Do(t, stranger.Token, `{ domain(name: "`+notReady+`") { policyChanges { actor } } }`, nil).RequireCode(t, "NOT_FOUND")
	env.Do(t, o.Token, `{ domain(name: "`+notReady+`") { policyChanges(last: 101) { actor } } }`, nil).RequireCode(t, "BAD_USER_INPUT")
	env.Do(t, stranger.Token, `mutation { setReadinessThreshold(domain: "`+notReady+`", threshold: 50) { name } }`, nil).RequireCode(t, "NOT_FOUND")
	env.Do(t, stranger.Token, `mutation { setSenderThreshold(domain: "`+notReady+`", service: "sendgrid", threshold: 50) { name } }`, nil).RequireCode(t, "NOT_FOUND")
	env.Do(t, stranger.Token, `mutation { updateDmarcPolicy(name: "`+notReady+`", policy: {p: REJECT}, force: true) { name } }`, nil).RequireCode(t, "NOT_FOUND")
}

// classifyNow classifies every source that is due now, including what the
// server's own sources.classify job has in flight: the classifier takes
// its queue with SKIP LOCKED, so a run of the test's own passes over a day
// the job holds and may return before the job has committed its classes.
// It runs until nothing due is left queued (a day waiting for reverse
// names has its turn later, and is not waited for).
func classifyNow(t *testing.T, env *apitest.Env) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run, err := env.Services(t).Sources.Run(ctx, time.Time{})
		require.NoError(t, err)
		var due bool
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM classify_days WHERE not_before <= now())
			OR EXISTS (SELECT 1 FROM classify_domains)`).Scan(&due))
		if run.Done && !due {
			return
		}
		require.True(t, time.Now().Before(deadline), "sources still queued after 30 s")
		time.Sleep(20 * time.Millisecond)
	}
}
