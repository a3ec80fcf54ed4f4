package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
)

const applyQ = `mutation($a: ID, $c: DomainConfigInput!, $dry: Boolean, $force: Boolean) {
	applyDomainConfig(accountId: $a, config: $c, dryRun: $dry, force: $force) {
		applied changes { action path before after } warnings
		domain { name verified mode dmarcRecord netblocks { cidr label } senders { slug } spfPins { include } dkimKeys { selector revokedAt } } } }`

type applied struct {
	ApplyDomainConfig *struct {
		Applied bool
		Changes []struct {
			Action, Path  string
			Before, After *string
		}
		Warnings []string
		Domain   *struct {
			Name, Mode, DmarcRecord string
			Verified                bool
			Netblocks               []struct{ Cidr, Label string }
			Senders                 []struct{ Slug string }
			SpfPins                 []struct{ Include string }
			DkimKeys                []struct {
				Selector  string
				RevokedAt *string
			}
		}
	}
}

// paths lists the changes as "ACTION path".
func (a applied) paths() []string {
	var out []string
	for _, c := range a.ApplyDomainConfig.Changes {
		out = append(out, c.Action+" "+c.Path)
	}
	return out
}

// domainSnapshot is what the database holds of a domain's configuration,
// and its edge row's serial, to show that a call wrote nothing.
func domainSnapshot(t *testing.T, env *apitest.Env, name string) string {
	t.Helper()
	var s string
	err := env.Pool.QueryRow(context.Background(), `
		SELECT coalesce((SELECT row_to_json(d)::text FROM domains d WHERE name = $1), 'none')
		 || '|' || coalesce((SELECT string_agg(cidr::text || ' ' || label, ',' ORDER BY cidr) FROM domain_netblocks n JOIN domains d ON d.id = n.domain_id WHERE d.name = $1), '')
		 || '|' || coalesce((SELECT string_agg(service, ',' ORDER BY service) FROM domain_senders s JOIN domains d ON d.id = s.domain_id WHERE d.name = $1), '')
		 || '|' || coalesce((SELECT string_agg(include || ' ' || expires_at::text, ',' ORDER BY include) FROM spf_pins p JOIN domains d ON d.id = p.domain_id WHERE d.name = $1), '')
		 || '|' || coalesce((SELECT string_agg(k.selector || ' ' || coalesce(k.public_key, k.cname_target) || ' ' || coalesce(k.revoked_at::text, ''), ',' ORDER BY k.selector) FROM dkim_keys k JOIN domains d ON d.id = k.domain_id WHERE d.name = $1), '')
		 || '|' || coalesce((SELECT serial::text FROM edge_domain WHERE name = $1), 'no edge row')`, name).Scan(&s)
	require.NoError(t, err)
	return s
}

func TestApplyDomainConfig(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	env.DNS.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ~all")
	env.DNS.Set("mailgun.org", "v=spf1 ip4:198.51.100.0/24 ~all")
	edge := env.StartEdge(t, filepath.Join(t.TempDir(), "snap"))
	addr := edge.UDPAddr().String()
	o := env.NewOwner(t, "Automation")
	const d = "apply-example.com"
	env.Prove(t, o.Token, o.AccountID.String(), d)
	k1, _ := rsaKey(t, 2048)
	k2, _ := rsaKey(t, 2048)
	until := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	config := map[string]any{
		"name": d, "mode": "SENDING",
		"policy":    map[string]any{"p": "NONE", "rua": []string{"dmarc@apply-example.com"}},
		"netblocks": []map[string]any{{"cidr": "192.0.2.0/24", "label": "office"}, {"cidr": "203.0.113.9"}},
		"senders":   []string{"sendgrid", "mailgun"},
		"spfPins":   []map[string]any{{"include": "spf.vendor.example", "expiresAt": until}},
		"dkimKeys":  []map[string]any{{"selector": "s1", "publicKey": k1}, {"selector": "s2", "cnameTarget": "s2.dkim.sendgrid.net", "service": "sendgrid"}},
	}
	apply := func(token string, c map[string]any, dry bool) (*apitest.Response, applied) {
		t.Helper()
		r := env.Do(t, token, applyQ, map[string]any{"a": o.AccountID.String(), "c": c, "dry": dry})
		var a applied
		if len(r.Errors) == 0 {
			r.Decode(t, &a)
		}
		return r, a
	}

	// A dry run on a domain the account does not hold: the whole diff,
	// and nothing written.
	before := domainSnapshot(t, env, d)
	require.Contains(t, before, "none|")
	r, a := apply(o.Token, config, true)
	r.NoErrors(t)
	require.False(t, a.ApplyDomainConfig.Applied)
	require.Nil(t, a.ApplyDomainConfig.Domain)
	require.Equal(t, []string{
		"ADD domain", "ADD policy.rua",
		"ADD netblocks[192.0.2.0/24]", "ADD netblocks[203.0.113.9/32]",
		"ADD senders[sendgrid]", "ADD senders[mailgun]",
		"ADD spfPins[spf.vendor.example]",
		"ADD dkimKeys[s1]", "ADD dkimKeys[s2]",
	}, a.paths())
	require.Equal(t, before, domainSnapshot(t, env, d), "a dry run writes nothing")

	// Apply: the domain is claimed (verified, its proof is published) and
	// configured, and the edge serves it.
	r, a = apply(o.Token, config, false)
	r.NoErrors(t)
	require.True(t, a.ApplyDomainConfig.Applied)
	require.Len(t, a.ApplyDomainConfig.Changes, 9)
	dom := a.ApplyDomainConfig.Domain
	require.NotNil(t, dom)
	require.True(t, dom.Verified)
	require.Equal(t, "SENDING", dom.Mode)
	require.Len(t, dom.Netblocks, 2)
	require.Len(t, dom.Senders, 2)
	require.Len(t, dom.SpfPins, 1)
	require.Len(t, dom.DkimKeys, 2)
	require.Contains(t, dom.DmarcRecord, "mailto:dmarc@apply-example.com")
	waitTXT(t, addr, "_dmarc."+d, dns.RcodeSuccess, dom.DmarcRecord)
	rcode, txt := queryTXT(t, addr, "s1._domainkey."+d)
	require.Equal(t, dns.RcodeSuccess, rcode)
	require.Contains(t, txt, k1)

	// Re-applying the same configuration changes nothing and writes
	// nothing: no edge serial bump.
	applied1 := domainSnapshot(t, env, d)
	require.NotContains(t, applied1, "no edge row")
	r, a = apply(o.Token, config, false)
	r.NoErrors(t)
	require.False(t, a.ApplyDomainConfig.Applied)
	require.Empty(t, a.ApplyDomainConfig.Changes)
	require.NotNil(t, a.ApplyDomainConfig.Domain)
	require.Equal(t, applied1, domainSnapshot(t, env, d))

	// A changed configuration: undeclared netblocks, senders and keys go,
	// a key is replaced, a label changes; a part left out (the pins) is
	// left alone. The dry run shows it and writes nothing.
	changed := map[string]any{
		"name":      d,
		"netblocks": []map[string]any{{"cidr": "192.0.2.0/24", "label": "hq"}},
		"senders":   []string{"sendgrid"},
		"dkimKeys":  []map[string]any{{"selector": "s1", "publicKey": k2}},
	}
	r, a = apply(o.Token, changed, true)
	r.NoErrors(t)
	want := []string{
		"REMOVE netblocks[203.0.113.9/32]", "UPDATE netblocks[192.0.2.0/24]",
		"REMOVE senders[mailgun]",
		"REMOVE dkimKeys[s2]", "UPDATE dkimKeys[s1]",
	}
	require.Equal(t, want, a.paths())
	require.Equal(t, "192.0.2.0/24 office", *a.ApplyDomainConfig.Changes[1].Before)
	require.Equal(t, "192.0.2.0/24 hq", *a.ApplyDomainConfig.Changes[1].After)
	require.Nil(t, a.ApplyDomainConfig.Changes[0].After)
	require.Equal(t, applied1, domainSnapshot(t, env, d), "a dry run writes nothing")
	r, a = apply(o.Token, changed, false)
	r.NoErrors(t)
	require.True(t, a.ApplyDomainConfig.Applied)
	require.Equal(t, want, a.paths())
	dom = a.ApplyDomainConfig.Domain
	require.Equal(t, []struct{ Cidr, Label string }{{"192.0.2.0/24", "hq"}}, dom.Netblocks)
	require.Equal(t, []struct{ Slug string }{{"sendgrid"}}, dom.Senders)
	require.Len(t, dom.SpfPins, 1, "the pins were left out, and are left alone")
	require.Len(t, dom.DkimKeys, 1)
	waitTXT(t, addr, "s2._domainkey."+d, dns.RcodeNameError, "")
	require.Eventually(t, func() bool {
		_, txt := queryTXT(t, addr, "s1._domainkey."+d)
		return strings.Contains(txt, k2)
	}, 2*time.Second, 20*time.Millisecond)
	applied2 := domainSnapshot(t, env, d)
	require.NotEqual(t, applied1, applied2)

	// Revoking a key keeps it; an empty list removes every pin.
	r, a = apply(o.Token, map[string]any{"name": d, "spfPins": []any{}, "dkimKeys": []map[string]any{{"selector": "s1", "publicKey": k2, "revoked": true}}}, false)
	r.NoErrors(t)
	require.Equal(t, []string{"REMOVE spfPins[spf.vendor.example]", "UPDATE dkimKeys[s1]"}, a.paths())
	require.Empty(t, a.ApplyDomainConfig.Domain.SpfPins)
	require.NotNil(t, a.ApplyDomainConfig.Domain.DkimKeys[0].RevokedAt)
	applied2 = domainSnapshot(t, env, d)

	// A failing part leaves nothing changed: the netblock and the key
	// before the unknown sender are not kept.
	r, _ = apply(o.Token, map[string]any{"name": d,
		"netblocks": []map[string]any{{"cidr": "10.1.0.0/16"}},
		"senders":   []string{"sendgrid", "no-such-service"},
		"dkimKeys":  []map[string]any{{"selector": "s1", "publicKey": k2, "revoked": true}, {"selector": "s3", "publicKey": k1}},
	}, false)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "senders[no-such-service].service", r.Errors[0].Extensions["field"], r.Raw)
	require.Equal(t, applied2, domainSnapshot(t, env, d))
	// So does an SPF record past the lookup limit: eleven pins.
	var pins []map[string]any
	for i := range 11 {
		pins = append(pins, map[string]any{"include": fmt.Sprintf("spf%d.vendor.example", i), "expiresAt": until})
	}
	r, _ = apply(o.Token, map[string]any{"name": d, "mode": "BLOCKED", "spfPins": pins}, false)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "DNS lookups")
	require.Equal(t, applied2, domainSnapshot(t, env, d))
	// Validation errors name the path.
	r, _ = apply(o.Token, map[string]any{"name": d, "netblocks": []map[string]any{{"cidr": "192.0.2.0/24"}, {"cidr": "192.0.2.1/24"}}}, true)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "netblocks[1].cidr", r.Errors[0].Extensions["field"], r.Raw)
	r, _ = apply(o.Token, map[string]any{"name": d, "policy": map[string]any{"pct": 101}}, true)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "policy.pct", r.Errors[0].Extensions["field"], r.Raw)

	// Readiness: tightening to reject without reports is refused, unless
	// forced; nothing is written by the refusal.
	reject := map[string]any{"name": d, "policy": map[string]any{"p": "REJECT"}, "netblocks": []map[string]any{}}
	r, _ = apply(o.Token, reject, false)
	r.RequireCode(t, "READINESS")
	require.Equal(t, applied2, domainSnapshot(t, env, d))
	r = env.Do(t, o.Token, applyQ, map[string]any{"a": o.AccountID.String(), "c": reject, "force": true})
	r.NoErrors(t)
	var forced applied
	r.Decode(t, &forced)
	require.Equal(t, []string{"UPDATE policy.p", "REMOVE netblocks[192.0.2.0/24]"}, forced.paths())
	require.True(t, strings.HasPrefix(forced.ApplyDomainConfig.Domain.DmarcRecord, "v=DMARC1; p=reject"), forced.ApplyDomainConfig.Domain.DmarcRecord)
}

// TestApplyDomainConfigPermissions: each part that changes needs its
// permission, decided before anything is written.
func TestApplyDomainConfigPermissions(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	env.DNS.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ~all")
	o := env.NewOwner(t, "Apply perms")
	const d = "perm-apply-example.com"
	addDomains(t, env, o.Token, o.AccountID, d)
	memberID, member := newMember(t, env, o.AccountID)
	team := newTeam(t, env, o.Token, o.AccountID, "Senders", memberID)
	grant(t, env, o.Token, team, o.AccountID, "MANAGE_SENDERS", map[string]any{"domains": []string{d}})
	do := func(c map[string]any) *apitest.Response {
		return env.Do(t, member, applyQ, map[string]any{"a": o.AccountID.String(), "c": c})
	}
	before := domainSnapshot(t, env, d)
	// A policy change (with senders beside it) is refused whole.
	r := do(map[string]any{"name": d, "senders": []string{"sendgrid"}, "policy": map[string]any{"p": "QUARANTINE"}})
	r.RequireCode(t, "FORBIDDEN")
	require.Contains(t, r.Errors[0].Message, "manage policy")
	require.Equal(t, before, domainSnapshot(t, env, d))
	// So is a mode change, and a domain the team is not granted.
	do(map[string]any{"name": d, "mode": "BLOCKED"}).RequireCode(t, "FORBIDDEN")
	do(map[string]any{"name": "other-apply-example.com", "senders": []string{}}).RequireCode(t, "FORBIDDEN")
	require.Equal(t, before, domainSnapshot(t, env, d))
	// Senders and DKIM keys are the member's to change; a policy declared
	// as it is needs no permission to change it.
	r = do(map[string]any{"name": d, "senders": []string{"sendgrid"}, "policy": map[string]any{"p": "NONE"}, "dkimKeys": []map[string]any{{"selector": "m1", "cnameTarget": "m1.dkim.sendgrid.net"}}})
	r.NoErrors(t)
	var a applied
	r.Decode(t, &a)
	require.Equal(t, []string{"ADD senders[sendgrid]", "ADD dkimKeys[m1]"}, a.paths())
	// A stranger sees no domain and no account.
	s := env.NewOwner(t, "Stranger")
	env.Do(t, s.Token, applyQ, map[string]any{"a": o.AccountID.String(), "c": map[string]any{"name": d, "senders": []string{}}}).RequireCode(t, "NOT_FOUND")
}

// requireNoData checks that a refused request leaked nothing: data is
// null, or (Mutation fields being nullable) an object whose every field is
// null.
func requireNoData(t *testing.T, r *apitest.Response, msgAndArgs ...any) {
	t.Helper()
	if string(r.Data) == "null" {
		return
	}
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(r.Data, &fields), msgAndArgs...)
	require.NotEmpty(t, fields, msgAndArgs...)
	for name, v := range fields {
		require.Equal(t, "null", string(v), append([]any{"field " + name}, msgAndArgs...)...)
	}
}

// TestMutationBatch: one operation with several mutations reports each
// result, the ones that succeeded beside a failure, and the failure with
// its path. Every Mutation field is nullable for that.
func TestMutationBatch(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Batch")
	addDomains(t, env, o.Token, o.AccountID, "batch-one-example.com", "batch-two-example.com")
	r := env.Do(t, o.Token, `mutation {
		first: addNetblock(domain: "batch-one-example.com", cidr: "192.0.2.0/24") { name netblocks { cidr } }
		second: addNetblock(domain: "batch-one-example.com", cidr: "192.0.2.1/24") { name }
		third: applyDomainConfig(config: {name: "batch-two-example.com", netblocks: [{cidr: "198.51.100.0/24"}]}) { applied changes { action path } } }`, nil)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Len(t, r.Errors, 1)
	require.Equal(t, []any{"second"}, r.Errors[0].Path)
	require.JSONEq(t, `{
		"first": {"name": "batch-one-example.com", "netblocks": [{"cidr": "192.0.2.0/24"}]},
		"second": null,
		"third": {"applied": true, "changes": [{"action": "ADD", "path": "netblocks[198.51.100.0/24]"}]}}`, string(r.Data))
	// The first and third were made.
	r = env.Do(t, o.Token, `{ a: domain(name: "batch-one-example.com") { netblocks { cidr } } b: domain(name: "batch-two-example.com") { netblocks { cidr } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"a": {"netblocks": [{"cidr": "192.0.2.0/24"}]}, "b": {"netblocks": [{"cidr": "198.51.100.0/24"}]}}`, string(r.Data))

	// No Mutation field is non-null, or one error would null the others.
	r = env.Do(t, o.Token, `{ __schema { mutationType { fields { name type { kind } } } } }`, nil)
	r.NoErrors(t)
	var s struct {
		Schema struct {
			MutationType struct {
				Fields []struct {
					Name string
					Type struct{ Kind string }
				}
			}
		} `json:"__schema"`
	}
	r.Decode(t, &s)
	require.Greater(t, len(s.Schema.MutationType.Fields), 40)
	for _, f := range s.Schema.MutationType.Fields {
		require.NotEqual(t, "NON_NULL", f.Type.Kind, "Mutation.%s", f.Name)
	}
}
