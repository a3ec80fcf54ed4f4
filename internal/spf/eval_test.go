package spf

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func testZone() zone {
	return zone{}.
		add("example.com", "TXT v=spf1 ip4:192.0.2.0/24 include:_spf.vendor.example -all exp=why.example.com", "TXT google-site-verification=abc").
		add("why.example.com", "TXT %{i} is not allowed to send mail for %{d} (%{r})").
		add("_spf.vendor.example", "TXT v=spf1 a:mail.vendor.example mx ~all").
		add("vendor.example").
		add("_spf.vendor.example", "MX mx1.vendor.example", "MX mx2.vendor.example").
		add("mail.vendor.example", "A 198.51.100.10", "AAAA 2001:db8::10").
		add("mx1.vendor.example", "A 198.51.100.20").
		add("mx2.vendor.example", "TIMEOUT").
		add("two.example", "TXT v=spf1 -all", "TXT v=spf1 +all").
		add("slow.example", "TIMEOUT").
		add("voids.example", "TXT v=spf1 a:n1.example a:n2.example a:n3.example ?all").
		add("bounce.example", "TXT v=spf1 a -all", "A 203.0.113.5").
		add("loop.example", "TXT v=spf1 include:loop.example").
		add("redir.example", "TXT v=spf1 ip4:192.0.2.200 redirect=example.com")
}

func newChecker(z zone) *Checker {
	return &Checker{Resolver: z, Receiver: "mx.rampart.example", Trace: true}
}

func TestCheckHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ip, domain string
		result           Result
		mech, dom, exp   string
		lookups, voids   int
		errIs            error
	}{
		{name: "ip4 match", ip: "192.0.2.7", domain: "example.com", result: Pass, mech: "ip4:192.0.2.0/24", dom: "example.com"},
		{name: "include a match", ip: "198.51.100.10", domain: "example.com", result: Pass, mech: "include:_spf.vendor.example", dom: "example.com", lookups: 2},
		{name: "include a match ipv6", ip: "2001:db8::10", domain: "example.com", result: Pass, mech: "include:_spf.vendor.example", dom: "example.com", lookups: 2},
		{name: "include mx match", ip: "198.51.100.20", domain: "example.com", result: Pass, mech: "include:_spf.vendor.example", dom: "example.com", lookups: 3},
		{name: "ipv4-mapped client", ip: "::ffff:192.0.2.9", domain: "example.com", result: Pass, mech: "ip4:192.0.2.0/24", dom: "example.com"},
		{name: "mx host times out", ip: "203.0.113.1", domain: "example.com", result: TempError, dom: "example.com", lookups: 3, errIs: errTimeout},
		{name: "two records", ip: "192.0.2.1", domain: "two.example", result: PermError, dom: "two.example", errIs: ErrMultipleRecords},
		{name: "txt timeout", ip: "192.0.2.1", domain: "slow.example", result: TempError, dom: "slow.example", errIs: errTimeout},
		{name: "no such domain", ip: "192.0.2.1", domain: "nowhere.example", result: None, dom: "nowhere.example"},
		{name: "void limit", ip: "192.0.2.1", domain: "voids.example", result: PermError, dom: "voids.example", lookups: 3, voids: 3, errIs: ErrTooManyVoidLookups},
		{name: "include loop", ip: "192.0.2.1", domain: "loop.example", result: PermError, dom: "loop.example", lookups: 11, errIs: ErrTooManyLookups},
		{name: "redirect", ip: "192.0.2.8", domain: "redir.example", result: Pass, mech: "ip4:192.0.2.0/24", dom: "example.com", lookups: 1},
		{name: "single label", ip: "192.0.2.1", domain: "localhost", result: None, dom: "localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := newChecker(testZone()).CheckHost(context.Background(), netip.MustParseAddr(tt.ip), tt.domain, "user@"+tt.domain, "helo.example")
			require.Equal(t, tt.result, out.Result, "err %v", out.Err)
			require.Equal(t, tt.mech, out.Mechanism)
			require.Equal(t, tt.dom, out.Domain)
			require.Equal(t, tt.lookups, out.Lookups)
			require.Equal(t, tt.voids, out.VoidLookups)
			if tt.errIs != nil {
				require.ErrorIs(t, out.Err, tt.errIs)
			} else {
				require.NoError(t, out.Err)
			}
			require.NotEmpty(t, out.Trace)
			require.Equal(t, tt.result, out.Trace[len(out.Trace)-1].Result)
		})
	}
}

func TestCheckFailExplanationAndTrace(t *testing.T) {
	t.Parallel()
	c := newChecker(testZone())
	// mx2 times out, but the -all is never reached before it: use an address
	// that mx1 does not match, on a zone where mx2 answers.
	z := testZone()
	z["mx2.vendor.example"] = nil
	z.add("mx2.vendor.example", "A 198.51.100.21")
	c.Resolver = z
	out := c.Check(context.Background(), netip.MustParseAddr("203.0.113.9"), "helo.example", "someone@example.com")
	require.Equal(t, Fail, out.Result, "%v", out.Err)
	require.Equal(t, "-all", out.Mechanism)
	require.Equal(t, "203.0.113.9 is not allowed to send mail for example.com (mx.rampart.example)", out.Explanation)
	require.Equal(t, 3, out.Lookups)

	var lines []string
	for _, s := range out.Trace {
		lines = append(lines, strings.Repeat("  ", s.Depth)+s.Domain+" "+s.Term+" -> "+s.Target+" "+s.Result.String()+": "+s.Detail)
	}
	require.Equal(t, []string{
		"example.com  ->  none: record: v=spf1 ip4:192.0.2.0/24 include:_spf.vendor.example -all exp=why.example.com",
		"example.com ip4:192.0.2.0/24 ->  none: 203.0.113.9 is not in 192.0.2.0/24",
		"  _spf.vendor.example  ->  none: record: v=spf1 a:mail.vendor.example mx ~all",
		"  _spf.vendor.example a:mail.vendor.example -> mail.vendor.example none: 1 A records, none matches",
		"  _spf.vendor.example mx -> _spf.vendor.example none: 2 MX hosts, no address matches",
		"  _spf.vendor.example ~all ->  softfail: matches every address",
		"example.com include:_spf.vendor.example -> _spf.vendor.example softfail: included record gives softfail: no match",
		"example.com -all ->  fail: matches every address",
		"example.com exp=why.example.com -> why.example.com none: explanation: 203.0.113.9 is not allowed to send mail for example.com (mx.rampart.example)",
		"example.com  ->  fail: result fail",
	}, lines)
}

func TestCheckBounceUsesHELO(t *testing.T) {
	t.Parallel()
	out := newChecker(testZone()).Check(context.Background(), netip.MustParseAddr("203.0.113.5"), "bounce.example", "")
	require.Equal(t, Pass, out.Result)
	require.Equal(t, "bounce.example", out.Domain)
}

func TestCheckLimitsConfigurable(t *testing.T) {
	t.Parallel()
	c := newChecker(testZone())
	c.MaxVoidLookups = -1
	out := c.CheckHost(context.Background(), netip.MustParseAddr("192.0.2.1"), "voids.example", "a@voids.example", "h")
	require.Equal(t, Neutral, out.Result)
	require.Equal(t, 3, out.VoidLookups)

	c.MaxLookups = 1
	out = c.CheckHost(context.Background(), netip.MustParseAddr("198.51.100.20"), "example.com", "a@example.com", "h")
	require.Equal(t, PermError, out.Result)
	require.ErrorIs(t, out.Err, ErrTooManyLookups)
}

// blockingResolver never answers before its context ends.
type blockingResolver struct{ zone }

func (blockingResolver) LookupTXT(ctx context.Context, _ string) ([]string, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestCheckTimeout(t *testing.T) {
	t.Parallel()
	c := &Checker{Resolver: blockingResolver{}, Timeout: 20 * time.Millisecond}
	out := c.CheckHost(context.Background(), netip.MustParseAddr("192.0.2.1"), "example.com", "a@example.com", "h")
	require.Equal(t, TempError, out.Result)
	require.ErrorIs(t, out.Err, context.DeadlineExceeded)
}

func TestCheckPTRAndValidatedMacro(t *testing.T) {
	t.Parallel()
	z := zone{}.
		add("example.org", "TXT v=spf1 ptr:trusted.example -all exp=msg.example.org").
		add("msg.example.org", "TXT %{p} may not send").
		add(reverseName(netip.MustParseAddr("192.0.2.1")), "PTR host.trusted.example", "PTR other.example").
		add("host.trusted.example", "A 192.0.2.1").
		add(reverseName(netip.MustParseAddr("192.0.2.2")), "PTR forged.trusted.example").
		add("forged.trusted.example", "A 192.0.2.99").
		add(reverseName(netip.MustParseAddr("192.0.2.3")), "PTR mail.example.org").
		add("mail.example.org", "A 192.0.2.3")
	c := newChecker(z)
	ctx := context.Background()

	out := c.CheckHost(ctx, netip.MustParseAddr("192.0.2.1"), "example.org", "a@example.org", "h")
	require.Equal(t, Pass, out.Result)
	require.Equal(t, "ptr:trusted.example", out.Mechanism)

	out = c.CheckHost(ctx, netip.MustParseAddr("192.0.2.2"), "example.org", "a@example.org", "h")
	require.Equal(t, Fail, out.Result)
	require.Equal(t, "unknown may not send", out.Explanation)

	out = c.CheckHost(ctx, netip.MustParseAddr("192.0.2.3"), "example.org", "a@example.org", "h")
	require.Equal(t, Fail, out.Result)
	require.Equal(t, "mail.example.org may not send", out.Explanation)

	// No PTR records at all is a void lookup, not an error.
	out = c.CheckHost(ctx, netip.MustParseAddr("192.0.2.4"), "example.org", "a@example.org", "h")
	require.Equal(t, Fail, out.Result)
	require.Equal(t, 1, out.VoidLookups)
}

func TestCheckMXLimit(t *testing.T) {
	t.Parallel()
	z := zone{}.add("many.example", "TXT v=spf1 mx -all")
	for range 11 {
		z.add("many.example", "MX mx.many.example")
	}
	out := newChecker(z).CheckHost(context.Background(), netip.MustParseAddr("192.0.2.1"), "many.example", "a@many.example", "h")
	require.Equal(t, PermError, out.Result)
	require.ErrorIs(t, out.Err, ErrTooManyMX)
}

func BenchmarkCheckHost(b *testing.B) {
	c := &Checker{Resolver: testZone()}
	ip := netip.MustParseAddr("198.51.100.20")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out := c.CheckHost(ctx, ip, "example.com", "a@example.com", "h"); out.Result != Pass {
			b.Fatal(out.Result, out.Err)
		}
	}
}
