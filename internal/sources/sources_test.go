package sources_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/sources"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	google := sources.Sender{Slug: "google-workspace", Ranges: []netip.Prefix{netip.MustParsePrefix("209.85.128.0/17")},
		DKIMDomains: []string{"gappssmtp.com"}, HostSuffixes: []string{"google.com"}, Selectors: []string{"google"}}
	sendgrid := sources.Sender{Slug: "sendgrid", Ranges: []netip.Prefix{netip.MustParsePrefix("149.72.0.0/16")},
		DKIMDomains: []string{"sendgrid.net"}, HostSuffixes: []string{"sendgrid.net"}}
	base := sources.Facts{
		Domain:    "example.com",
		Netblocks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		Senders:   []sources.Sender{google, sendgrid},
		Keys:      []sources.Key{{Selector: "k1"}, {Selector: "s1", Service: "sendgrid"}},
	}
	for _, tc := range []struct {
		name    string
		edit    func(*sources.Facts)
		class   sources.Class
		service string
	}{
		{"netblock", func(f *sources.Facts) { f.IP = netip.MustParseAddr("192.0.2.7") }, sources.Internal, ""},
		{"netblock wins over a service's signature", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("192.0.2.7")
			f.Signatures = []sources.Signature{{Domain: "sendgrid.net", Selector: "s", Pass: true}}
		}, sources.Internal, ""},
		{"service range", func(f *sources.Facts) { f.IP = netip.MustParseAddr("209.85.220.41") }, sources.Service, "google-workspace"},
		{"service DKIM domain, below it", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.Signatures = []sources.Signature{{Domain: "example-com.20230601.gappssmtp.com", Selector: "20230601", Pass: true}}
		}, sources.Service, "google-workspace"},
		{"failing service signature is no evidence", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.Signatures = []sources.Signature{{Domain: "sendgrid.net", Selector: "s", Pass: false}}
		}, sources.Unidentified, ""},
		{"confirmed PTR under a suffix", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.PTR = "o1.ptr1234.SendGrid.net."
		}, sources.Service, "sendgrid"},
		{"PTR beside a suffix", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.PTR = "evilsendgrid.net"
		}, sources.Unidentified, ""},
		{"own key, aligned", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.Signatures = []sources.Signature{{Domain: "mail.example.com", Selector: "k1", Pass: true}}
		}, sources.Internal, ""},
		{"delegated key", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.Signatures = []sources.Signature{{Domain: "example.com", Selector: "s1", Pass: true}}
		}, sources.Service, "sendgrid"},
		{"aligned with a key the edge does not host", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.Signatures = []sources.Signature{{Domain: "example.com", Selector: "other", Pass: true}}
		}, sources.Internal, ""},
		{"aligned with a service's selector", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.Signatures = []sources.Signature{{Domain: "example.com", Selector: "google", Pass: true}}
		}, sources.Service, "google-workspace"},
		{"aligned in relaxed mode: a sibling subdomain", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.Domain = "news.example.com"
			f.Signatures = []sources.Signature{{Domain: "mail.example.com", Selector: "k1", Pass: true}}
		}, sources.Internal, ""},
		{"unaligned DKIM pass", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.Signatures = []sources.Signature{{Domain: "lists.example.org", Selector: "s", Pass: true}}
		}, sources.Forwarded, ""},
		{"forwarding reason", func(f *sources.Facts) {
			f.IP = netip.MustParseAddr("198.51.100.1")
			f.ForwardReason = true
		}, sources.Forwarded, ""},
		{"nothing", func(f *sources.Facts) { f.IP = netip.MustParseAddr("2001:db8::1") }, sources.Unidentified, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := base
			tc.edit(&f)
			r := sources.Classify(f)
			require.Equal(t, tc.class, r.Class, r.Evidence)
			require.Equal(t, tc.service, r.Service, r.Evidence)
			require.NotEmpty(t, r.Evidence)
		})
	}
}
