package domainconfig

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/rampartmail/rampart/internal/dmarc"
	"github.com/rampartmail/rampart/internal/domain"
)

func TestDiff(t *testing.T) {
	sending, blocked := domain.Sending, domain.Blocked
	reject := dmarc.Reject
	base := domain.Policy{P: dmarc.None, Percent: 100, ADKIM: dmarc.Relaxed, ASPF: dmarc.Relaxed}
	tight := base
	tight.P, tight.SP, tight.Percent = dmarc.Quarantine, &reject, 50
	nb := func(s, label string) Netblock { return Netblock{Prefix: netip.MustParsePrefix(s), Label: label} }
	until := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	key := func(sel, pk string, revoked bool) Key { return Key{Selector: sel, PublicKey: pk, Revoked: revoked} }
	cur := State{
		Exists: true, Mode: &sending, Policy: &base,
		Netblocks: []Netblock{nb("192.0.2.0/24", "office"), nb("198.51.100.0/24", "")},
		Senders:   []string{"google", "mailchimp"},
		Pins:      []Pin{{Include: "a.example", ExpiresAt: until}},
		Keys:      []Key{key("s1", "AAAA", false), key("s2", "BBBB", false), key("old", "CCCC", false)},
	}
	for _, tc := range []struct {
		name string
		cur  State
		want State
		out  []Change
	}{
		{"nothing declared", cur, State{}, nil},
		{"all in place", cur, State{Mode: &sending, Policy: &base, Netblocks: cur.Netblocks, Senders: []string{"mailchimp", "google"}, Pins: cur.Pins, Keys: cur.Keys}, nil},
		{"empty lists remove everything", cur, State{Netblocks: []Netblock{}, Senders: []string{}, Pins: []Pin{}, Keys: []Key{}}, []Change{
			{Remove, "netblocks[192.0.2.0/24]", "192.0.2.0/24 office", ""},
			{Remove, "netblocks[198.51.100.0/24]", "198.51.100.0/24", ""},
			{Remove, "senders[google]", "google", ""},
			{Remove, "senders[mailchimp]", "mailchimp", ""},
			{Remove, "spfPins[a.example]", "a.example until 2027-01-02T03:04:05Z", ""},
			{Remove, "dkimKeys[s1]", "key AAAA", ""},
			{Remove, "dkimKeys[s2]", "key BBBB", ""},
			{Remove, "dkimKeys[old]", "key CCCC", ""},
		}},
		{"add, remove and update", cur, State{
			Mode: &blocked, Policy: &tight,
			Netblocks: []Netblock{nb("192.0.2.0/24", "hq"), nb("2001:db8::/32", "v6")},
			Senders:   []string{"google", "sendgrid"},
			Pins:      []Pin{{Include: "a.example", ExpiresAt: until.Add(time.Hour)}},
			Keys:      []Key{key("s1", "AAAA", true), key("s2", "DDDD", false), {Selector: "s3", CNAMETarget: "s3.vendor.example", Service: "sendgrid"}},
		}, []Change{
			{Update, "mode", "SENDING", "BLOCKED"},
			{Update, "policy.p", "none", "quarantine"},
			{Add, "policy.sp", "", "reject"},
			{Update, "policy.pct", "100", "50"},
			{Remove, "netblocks[198.51.100.0/24]", "198.51.100.0/24", ""},
			{Update, "netblocks[192.0.2.0/24]", "192.0.2.0/24 office", "192.0.2.0/24 hq"},
			{Add, "netblocks[2001:db8::/32]", "", "2001:db8::/32 v6"},
			{Remove, "senders[mailchimp]", "mailchimp", ""},
			{Add, "senders[sendgrid]", "", "sendgrid"},
			{Update, "spfPins[a.example]", "a.example until 2027-01-02T03:04:05Z", "a.example until 2027-01-02T04:04:05Z"},
			{Remove, "dkimKeys[old]", "key CCCC", ""},
			{Update, "dkimKeys[s1]", "key AAAA", "key AAAA revoked"},
			{Update, "dkimKeys[s2]", "key BBBB", "key DDDD"},
			{Add, "dkimKeys[s3]", "", "CNAME s3.vendor.example service sendgrid"},
		}},
		{"a new domain", State{Mode: &sending, Policy: &base}, State{Senders: []string{"google"}}, []Change{
			{Add, "domain", "", ""},
			{Add, "senders[google]", "", "google"},
		}},
		{"loosening removes a tag", State{Exists: true, Policy: &tight}, State{Policy: &base}, []Change{
			{Update, "policy.p", "quarantine", "none"},
			{Remove, "policy.sp", "reject", ""},
			{Update, "policy.pct", "50", "100"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(tc.cur, tc.want)
			if !reflect.DeepEqual(got, tc.out) {
				t.Errorf("Diff:\n got %q\nwant %q", got, tc.out)
			}
		})
	}
}

func TestPart(t *testing.T) {
	for path, part := range map[string]string{
		"domain": "domain", "mode": "mode", "policy.p": "policy", "netblocks[10.0.0.0/8]": "netblocks",
		"senders[google]": "senders", "spfPins[a.example]": "spfPins", "dkimKeys[s1.x]": "dkimKeys",
	} {
		if got := (Change{Path: path}).Part(); got != part {
			t.Errorf("Part(%q) = %q, want %q", path, got, part)
		}
	}
}
