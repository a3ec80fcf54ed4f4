package graph_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
)

func rsaKey(t *testing.T, bits int) (b64, pemText string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(der), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// edgeDKIM reads the DKIM records compiled into the edge row.
func edgeDKIM(t *testing.T, env *apitest.Env, name string) []map[string]string {
	t.Helper()
	var raw []byte
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT dkim FROM edge_domain WHERE name = $1`, name).Scan(&raw))
	var out []map[string]string
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

func TestDKIMKeys(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "DKIM")
	const d = "dkim-example.com"
	env.AddVerifiedDomain(t, o, d)
	add := func(vars map[string]any) *apitest.Response {
		vars["d"] = d
		return env.Do(t, o.Token, `mutation($d: String!, $s: String!, $k: String, $c: String, $svc: ID) {
			addDkimKey(domain: $d, selector: $s, publicKey: $k, cnameTarget: $c, service: $svc) {
				warnings key { selector kind keyType bits cnameTarget service { slug } revokedAt } } }`, vars)
	}
	k2048, _ := rsaKey(t, 2048)
	_, pem1024 := rsaKey(t, 1024)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	r := add(map[string]any{"s": "S2048", "k": k2048})
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"warnings":[]`)
	require.Contains(t, r.Raw, `"selector":"s2048","kind":"HOSTED","keyType":"rsa","bits":2048`)
	r = add(map[string]any{"s": "old", "k": pem1024})
	r.NoErrors(t)
	require.Contains(t, r.Raw, "2048", "a 1024-bit key is accepted with a warning")
	r = add(map[string]any{"s": "ed", "k": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub)})
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"keyType":"ed25519","bits":null`)
	r = add(map[string]any{"s": "s1", "c": "s1.domainkey.u123.wl.sendgrid.net", "svc": "sendgrid"})
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"kind":"CNAME","keyType":null,"bits":null,"cnameTarget":"s1.domainkey.u123.wl.sendgrid.net","service":{"slug":"sendgrid"}`)

	for _, tc := range []struct {
		vars map[string]any
		code string
	}{
		{map[string]any{"s": "bad", "k": "MIIB!!!notbase64"}, "BAD_USER_INPUT"},
		{map[string]any{"s": "bad_selector", "k": k2048}, "BAD_USER_INPUT"},
		{map[string]any{"s": "both", "k": k2048, "c": "x.example.net"}, "BAD_USER_INPUT"},
		{map[string]any{"s": "none"}, "BAD_USER_INPUT"},
		{map[string]any{"s": "s2048", "k": k2048}, "CONFLICT"},
		{map[string]any{"s": "svc", "c": "x.example.net", "svc": "no-such"}, "BAD_USER_INPUT"},
	} {
		add(tc.vars).RequireCode(t, tc.code)
	}

	records := edgeDKIM(t, env, d)
	require.Len(t, records, 4)
	require.Equal(t, map[string]string{"selector": "ed", "txt": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub)}, records[0])
	require.Equal(t, map[string]string{"selector": "s1", "cname": "s1.domainkey.u123.wl.sendgrid.net"}, records[2])
	require.Equal(t, map[string]string{"selector": "s2048", "txt": "v=DKIM1; k=rsa; p=" + k2048}, records[3])

	r = env.Do(t, o.Token, `mutation { revokeDkimKey(domain: "`+d+`", selector: "old") { revokedAt } }`, nil)
	r.NoErrors(t)
	require.NotContains(t, r.Raw, `"revokedAt":null`)
	require.Equal(t, map[string]string{"selector": "old", "txt": "v=DKIM1; p="}, edgeDKIM(t, env, d)[1])
	env.Do(t, o.Token, `mutation { removeDkimKey(domain: "`+d+`", selector: "ed") { dkimKeys { selector } } }`, nil).NoErrors(t)
	require.Len(t, edgeDKIM(t, env, d), 3)
	env.Do(t, o.Token, `mutation { removeDkimKey(domain: "`+d+`", selector: "ed") { name } }`, nil).RequireCode(t, "NOT_FOUND")

	// A blocked domain revokes every key it has.
	env.Do(t, o.Token, `mutation { setDomainMode(name: "`+d+`", mode: BLOCKED) { name } }`, nil).NoErrors(t)
	for _, rec := range edgeDKIM(t, env, d) {
		require.Equal(t, "v=DKIM1; p=", rec["txt"], rec["selector"])
	}
	r = env.Do(t, o.Token, `{ domain(name: "`+d+`") { dnsSetup { dkim { served { name type value } } } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"name":"s1._domainkey.dkim-example.com.","type":"TXT","value":"v=DKIM1; p="}`)
}

func TestBIMI(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "BIMI")
	const d = "bimi-example.com"
	env.AddVerifiedDomain(t, o, d)
	setup := func() string {
		r := env.Do(t, o.Token, `{ domain(name: "`+d+`") { bimi { logoUrl evidenceUrl } dnsSetup { bimi { served { name value } } bimiWithheld } } }`, nil)
		r.NoErrors(t)
		return string(r.Data)
	}
	for _, bad := range []string{
		`setBimi(domain: "` + d + `", logoUrl: "http://example.com/logo.svg")`,
		`setBimi(domain: "` + d + `", logoUrl: "https://example.com/logo.png")`,
		`setBimi(domain: "` + d + `", logoUrl: "https://example.com/a;b.svg")`,
		`setBimi(domain: "` + d + `", logoUrl: "", evidenceUrl: "https://example.com/vmc.pem")`,
	} {
		env.Do(t, o.Token, `mutation { `+bad+` { name } }`, nil).RequireCode(t, "BAD_USER_INPUT")
	}
	env.Do(t, o.Token, `mutation { setBimi(domain: "`+d+`", logoUrl: "https://bimi-example.com/logo.svg", evidenceUrl: "https://bimi-example.com/vmc.pem") { name } }`, nil).NoErrors(t)
	require.JSONEq(t, `{"domain": {"bimi": {"logoUrl": "https://bimi-example.com/logo.svg", "evidenceUrl": "https://bimi-example.com/vmc.pem"},
		"dnsSetup": {"bimi": {"served": []}, "bimiWithheld": "the DMARC policy is p=none; BIMI needs p=quarantine or p=reject"}}}`, setup())

	env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+d+`", policy: {p: QUARANTINE, pct: 50}, force: true) { name } }`, nil).NoErrors(t)
	require.Contains(t, setup(), "BIMI needs pct=100")
	env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+d+`", policy: {p: REJECT, pct: 100, sp: NONE}, force: true) { name } }`, nil).NoErrors(t)
	require.Contains(t, setup(), "sp=none")
	env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "`+d+`", policy: {sp: null}, force: true) { name } }`, nil).NoErrors(t)
	const served = "v=BIMI1; l=https://bimi-example.com/logo.svg; a=https://bimi-example.com/vmc.pem"
	require.JSONEq(t, `{"domain": {"bimi": {"logoUrl": "https://bimi-example.com/logo.svg", "evidenceUrl": "https://bimi-example.com/vmc.pem"},
		"dnsSetup": {"bimi": {"served": [{"name": "default._bimi.bimi-example.com.", "value": "`+served+`"}]}, "bimiWithheld": null}}}`, setup())
	var bimi string
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT bimi FROM edge_domain WHERE name = $1`, d).Scan(&bimi))
	require.Equal(t, served, bimi)

	// Clearing it withdraws the record.
	env.Do(t, o.Token, `mutation { setBimi(domain: "`+d+`", logoUrl: "") { bimi { logoUrl } } }`, nil).NoErrors(t)
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT bimi FROM edge_domain WHERE name = $1`, d).Scan(&bimi))
	require.Empty(t, bimi)
}
