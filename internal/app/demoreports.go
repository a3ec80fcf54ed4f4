package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/internal/ingest"
)

// DemoDays is how many days of aggregate reports the demo domain has: the
// days before today.
const DemoDays = 20

// demoNetblock is the demo domain's own servers.
const demoNetblock = "192.0.2.0/24"

// demoRecord is one record of a demo report: a source, its volume and how
// it authenticated.
type demoRecord struct {
	ip    string
	count int
	// dkimAligned, spfAligned: policy_evaluated.
	dkimAligned, spfAligned bool
	// auth is the record's auth_results.
	auth string
}

// demoReporter is a receiver sending the demo domain reports, with its
// share of the domain's mail in percent.
type demoReporter struct {
	org, email string
	share      int
}

var demoReporters = []demoReporter{
	{"google.com", "noreply-dmarc-support@google.com", 70},
	{"Outlook.com", "dmarcreport@microsoft.com", 30},
}

// demoRecords are the demo domain's senders on one day for one reporter
// (share percent of the mail): its own servers, Google Workspace and
// SendGrid pass; Mandrill (Mailchimp Transactional) signs as itself and
// fails DMARC for most of its mail; a mailing list forwards a little; a
// few messages come from nobody the domain knows.
func demoRecords(domain string, day time.Time, share int) []demoRecord {
	n := func(base int) int {
		// A weekly rhythm, quieter at weekends.
		v := base * share / 100
		if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
			v = v * 2 / 5
		}
		return max(v+day.YearDay()%5, 1)
	}
	spf := func(d, result string) string {
		return `<spf><domain>` + d + `</domain><scope>mfrom</scope><result>` + result + `</result></spf>`
	}
	dkim := func(d, selector, result string) string {
		return `<dkim><domain>` + d + `</domain><selector>` + selector + `</selector><result>` + result + `</result></dkim>`
	}
	recs := []demoRecord{
		{ip: "192.0.2.25", count: n(60), spfAligned: true, auth: spf(domain, "pass")},
		{ip: "209.85.220.41", count: n(170), dkimAligned: true, spfAligned: true, auth: dkim(domain, "google", "pass") + spf(domain, "pass")},
		{ip: "149.72.123.4", count: n(110), dkimAligned: true,
			auth: dkim(domain, "s1", "pass") + dkim("sendgrid.net", "smtpapi", "pass") + spf("bounces.sendgrid.net", "pass")},
		{ip: "198.2.178.12", count: n(30), auth: dkim("mandrillapp.com", "mandrill", "pass") + spf("mandrillapp.com", "pass")},
		{ip: "198.2.178.12", count: 3 * share / 100, dkimAligned: true,
			auth: dkim(domain, "mte1", "pass") + dkim("mandrillapp.com", "mandrill", "pass") + spf("mandrillapp.com", "pass")},
		{ip: "198.51.100.7", count: n(4), auth: dkim("lists.example.org", "s2024", "pass") + spf(domain, "fail")},
	}
	if day.YearDay()%3 == 0 {
		recs = append(recs, demoRecord{ip: "203.0.113.66", count: n(5), auth: spf(domain, "fail")})
	}
	return recs
}

// demoReport is one reporter's aggregate report of one day for domain.
func demoReport(domain string, day time.Time, r demoReporter) []byte {
	result := map[bool]string{true: "pass", false: "fail"}
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata>
    <org_name>%s</org_name>
    <email>%s</email>
    <report_id>demo-%s-%s</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range>
  </report_metadata>
  <policy_published><domain>%s</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct></policy_published>`,
		r.org, r.email, strings.ToLower(r.org), day.Format("20060102"), day.Unix(), day.Unix()+86399, domain)
	for _, rec := range demoRecords(domain, day, r.share) {
		if rec.count <= 0 {
			continue
		}
		fmt.Fprintf(&b, `
  <record>
    <row><source_ip>%s</source_ip><count>%d</count>
      <policy_evaluated><disposition>none</disposition><dkim>%s</dkim><spf>%s</spf></policy_evaluated></row>
    <identifiers><header_from>%s</header_from></identifiers>
    <auth_results>%s</auth_results>
  </record>`, rec.ip, rec.count, result[rec.dkimAligned], result[rec.spfAligned], domain, rec.auth)
	}
	b.WriteString("\n</feedback>\n")
	return []byte(b.String())
}

// SeedDemoReports gives the demo domain DemoDays days of aggregate reports
// before now's day, through the ingest path every report takes (Accept, as
// `rampart import` does; the workers store them). A report depends only on
// its day, so a restart stores only the days that are new: the others are
// the same bytes, which Accept takes as duplicates. It returns the blobs
// enqueued.
func SeedDemoReports(ctx context.Context, store *ingest.Store, now time.Time, log *slog.Logger) ([]uuid.UUID, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	var queued []uuid.UUID
	for ago := DemoDays; ago >= 1; ago-- {
		day := today.AddDate(0, 0, -ago)
		for _, r := range demoReporters {
			acc, err := store.Accept(ctx, ingest.Incoming{
				Source: ingest.SourceImport, Raw: demoReport(DemoDomain, day, r),
				Filename: fmt.Sprintf("demo-%s-%s.xml", strings.ToLower(r.org), day.Format(time.DateOnly)),
			})
			if err != nil {
				return nil, fmt.Errorf("seed demo reports: %w", err)
			}
			if !acc.Duplicate {
				queued = append(queued, acc.BlobID)
			}
		}
	}
	if len(queued) > 0 {
		log.Info("seeded demo reports", "domain", DemoDomain, "inputs", len(queued))
	}
	return queued, nil
}
