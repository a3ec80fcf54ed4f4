package attacktest_test

import (
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/attacktest"
)

// TestHarness checks the harness itself: the built binaries start, answer
// over loopback, and their usage can be read from /proc.
func TestHarness(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{SMTP: true})
	require.NotEmpty(t, s.SMTPAddr)
	o := s.API.NewOwner(t, "harness")
	r := s.API.Do(t, o.Token, `{ viewer { user { email } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, o.Email)

	e := attacktest.StartEdge(t, s.DatabaseURL)
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn("ns1."+apitest.EdgeZone), dns.TypeSOA)
	c := &dns.Client{Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(m, e.Addr)
	require.NoError(t, err)
	require.True(t, resp.Authoritative || resp.Rcode != dns.RcodeRefused, "edge answered %v", resp)
	c.Net = "tcp"
	_, _, err = c.Exchange(m, e.TCPAddr)
	require.NoError(t, err)

	for _, p := range []*attacktest.Proc{s.Proc, e.Proc} {
		u := p.Usage(t)
		require.Positive(t, u.PeakRSS, p.Name)
		require.GreaterOrEqual(t, u.PeakRSS, u.RSS, p.Name)
	}
}
