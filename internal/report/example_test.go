package report_test

import (
	"bytes"
	"compress/gzip"
	"fmt"

	"github.com/rampartmail/rampart/internal/report"
)

func Example() {
	const xmlReport = `<?xml version="1.0"?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>Example Reporter</org_name>
    <report_id>r-1</report_id>
    <date_range><begin>1718236800</begin><end>1718323199</end></date_range>
  </report_metadata>
  <policy_published><domain>example.com</domain><p>reject</p></policy_published>
  <record>
    <row>
      <source_ip>192.0.2.1</source_ip><count>12</count>
      <policy_evaluated><disposition>none</disposition><dkim>Pass</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.com</header_from></identifiers>
  </record>
</feedback>`
	var raw bytes.Buffer
	zw := gzip.NewWriter(&raw)
	zw.Name = "reporter!example.com!1718236800!1718323199.xml"
	_, _ = zw.Write([]byte(xmlReport))
	_ = zw.Close()

	limits := report.Limits{} // the defaults
	atts, err := report.Extract(raw.Bytes(), limits)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range atts {
		r, err := a.Open()
		if err != nil {
			fmt.Println(err)
			return
		}
		warnings, err := report.DecodeStream(r, limits,
			func(m *report.Metadata) error {
				fmt.Printf("%s: report %s from %s for %s\n", a.Name, m.ReportID, m.OrgName, m.Policy.Domain)
				return nil
			},
			func(rec report.Record) error {
				fmt.Printf("%s sent %d, dkim %s\n", rec.SourceIP, rec.Count, rec.PolicyEvaluated.DKIM)
				return nil
			})
		if reason, ok := report.ReasonOf(err); ok {
			fmt.Println("refused:", reason)
			return
		}
		for _, w := range warnings {
			fmt.Printf("warning %s at %s: %s\n", w.Code, w.Element, w.Detail)
		}
	}
	// Output:
	// reporter!example.com!1718236800!1718323199.xml: report r-1 from Example Reporter for example.com
	// 192.0.2.1 sent 12, dkim pass
	// warning case at feedback/record/row/policy_evaluated/dkim: "Pass"
}
