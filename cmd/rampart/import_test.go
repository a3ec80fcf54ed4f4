package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
	"github.com/rampartmail/rampart/internal/report/reportgen"
)

func importReport(domain, id string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>receiver.example</org_name><email>dmarc@receiver.example</email><report_id>` + id + `</report_id>
    <date_range><begin>1764201600</begin><end>1764287999</end></date_range></report_metadata>
  <policy_published><domain>` + domain + `</domain><p>none</p></policy_published>
  <record><row><source_ip>192.0.2.10</source_ip><count>4</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>` + domain + `</header_from></identifiers>
    <auth_results><spf><domain>` + domain + `</domain><result>pass</result></spf></auth_results></record>
</feedback>
`
}

// TestImportWait runs the built `rampart import -wait` against a running
// `rampart serve` with workers: it prints what became of each input
// (stored, duplicate, refused with its reason, whether refused by its
// ingest job or at once) and exits 0 only when every input was stored.
func TestImportWait(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{Workers: 2})
	bin, _ := attacktest.Binaries(t)
	o := s.API.NewOwner(t, "Importer")
	const d = "import-wait-example.com"
	s.API.AddVerifiedDomain(t, o, d)

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	run := func(args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"import", "-wait", "-quiet"}, args...)...)
		cmd.Env = []string{"DATABASE_URL=" + s.DatabaseURL}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return out.String(), exit.ExitCode()
		}
		require.NoError(t, err, out.String())
		return out.String(), 0
	}

	good := write("a-good.xml", []byte(importReport(d, "imp-1")))
	out, code := run(good)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "  stored     "+good+": 1 report\n")
	require.Contains(t, out, "stored 1, duplicate 0, refused 0\n")

	tls := write("b-tls.json.gz", reportgen.TLSReport(d))
	nothosted := write("c-elsewhere.xml", []byte(importReport("nobody-hosts-example.com", "imp-2")))
	empty := write("d-empty.xml", nil)
	out, code = run(dir)
	require.Equal(t, 1, code, out)
	for _, line := range []string{
		"  duplicate  " + good + ": already stored\n",
		"  refused    " + tls + ": tls_report: an SMTP TLS report (RFC 8460), not a DMARC aggregate report",
		"  refused    " + nothosted + ": not_hosted: ",
		"  refused    " + empty + ": ",
		"stored 0, duplicate 1, refused 3\n",
		"rampart: import not complete: 3 of 4 inputs were not stored\n",
	} {
		require.Contains(t, out, line)
	}
	require.Equal(t, 1, strings.Count(out, nothosted+": not_hosted"), out)
}
