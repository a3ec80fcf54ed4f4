//go:build interop

package interop_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// otherRow is a DKIM, DMARC or BIMI case: every library that runs it must
// give Want.
type otherRow struct {
	ID, What, Want string
	// WantBy overrides Want for a library.
	WantBy map[string]string
	Cells  map[string]cell
}

func (r *otherRow) want(lib string) string {
	if w, ok := r.WantBy[lib]; ok {
		return w
	}
	return r.Want
}

// The libraries of the DKIM, DMARC and BIMI matrix.
const (
	libUnbound  = "Unbound (record read)"
	libDkimpy   = "dkimpy"
	libOpendkim = "opendkim-testkey"
	libOpendmrc = "opendmarc-check"
	libMailauth = "mailauth"
)

var otherLibs = []string{libUnbound, libDkimpy, libOpendkim, libOpendmrc, libMailauth}

// runDKIM signs a message with each key (dkimpy), verifies it through the
// lab's resolver with dkimpy and mailauth, checks each key with
// opendkim-testkey, and reads the DMARC and BIMI records with Unbound,
// opendmarc-check and mailauth.
func (l *lab) runDKIM() []*otherRow {
	t := l.t
	dir := filepath.Join(l.dir, "dkim")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	scripts := filepath.Join(repoRoot(), "scripts", "interop")
	var rows []*otherRow
	row := func(id, what, want string) *otherRow {
		r := &otherRow{ID: id, What: what, Want: want, Cells: map[string]cell{}}
		rows = append(rows, r)
		return r
	}

	type msg struct {
		ID       string `json:"id"`
		Domain   string `json:"domain"`
		Selector string `json:"selector"`
		Key      string `json:"key"`
		Type     string `json:"type"`
		In       string `json:"in"`
		Out      string `json:"out"`
	}
	var msgs []msg
	byKey := map[string]*otherRow{}
	for _, k := range l.keys {
		r := row("dkim-"+k.Selector, "DKIM signature, selector "+k.Selector+": "+k.What, "pass")
		byKey[k.Selector] = r
		keyPEM := filepath.Join(dir, k.Selector+".pem")
		keyPy := filepath.Join(dir, k.Selector+".dkimpy")
		require.NoError(t, os.WriteFile(keyPEM, k.privPEM, 0o600))
		require.NoError(t, os.WriteFile(keyPy, k.privDkimpy, 0o600))
		in := filepath.Join(dir, k.Selector+".eml")
		body := fmt.Sprintf("From: Alice <alice@%s>\r\nTo: bob@receiver.example\r\nSubject: interop %s\r\n"+
			"Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <%s@%s>\r\n\r\nSigned with selector %s.\r\n",
			dSend, k.Selector, k.Selector, dSend, k.Selector)
		require.NoError(t, os.WriteFile(in, []byte(body), 0o644))
		msgs = append(msgs, msg{k.Selector, dSend, k.Selector, keyPy, k.Type, in, filepath.Join(dir, k.Selector+".signed.eml")})

		// The record as a resolver hands it out equals the published key.
		got, err := l.lookupTXT(k.Selector + "._domainkey." + dSend)
		r.Cells[libUnbound] = recordCell(got, err, k.record)

		// opendkim-testkey: the published key matches the private key.
		{
			out, err := runTool(30*time.Second, nil, "", "/usr/sbin/opendkim-testkey", "-x", l.opendkimConf(dir), "-d", dSend, "-s", k.Selector, "-k", keyPEM, "-vvv")
			c := cell{Got: "pass", Detail: oneLine(out)}
			if err != nil || !strings.Contains(out, "key OK") {
				c.Got = "fail"
				t.Logf("opendkim-testkey %s: %v\n%s", k.Selector, err, out)
			}
			r.Cells[libOpendkim] = c
		}
	}
	py, err := runJSON(5*time.Minute, map[string]any{"resolver": l.resolver(), "messages": msgs}, nil,
		"/usr/bin/python3", filepath.Join(scripts, "dkimpy.py"))
	require.NoError(t, err)
	for id, c := range py {
		byKey[id].Cells[libDkimpy] = c
	}

	dmarcNS := row("dmarc-ns", "DMARC record, _dmarc delegated to the edge by NS (p=reject)", "pass")
	dmarcCNAME := row("dmarc-cname", "DMARC record, _dmarc CNAME to the edge zone", "pass")
	dmarcBlocked := row("dmarc-blocked", "DMARC record of the BLOCKED domain (the lock-down policy), _dmarc CNAME to the edge zone; "+
		"mailauth: a message from its former netblock fails DMARC", "pass")
	dmarcBlocked.WantBy = map[string]string{libMailauth: "fail"}
	bimi := row("bimi", "BIMI record (DMARC at enforcement), _bimi delegated by NS", "pass")
	for _, x := range []struct {
		r    *otherRow
		name string
		want string
	}{
		{dmarcNS, "_dmarc." + dSend, l.dmarc[dSend]},
		{dmarcCNAME, "_dmarc." + dCNAME, l.dmarc[dCNAME]},
		{dmarcBlocked, "_dmarc." + dBlock, l.dmarc[dBlock]},
		{bimi, "default._bimi." + dSend, l.bimi},
	} {
		got, err := l.lookupTXT(x.name)
		x.r.Cells[libUnbound] = recordCell(got, err, x.want)
	}
	for _, x := range []struct {
		r      *otherRow
		domain string
	}{{dmarcNS, dSend}, {dmarcCNAME, dCNAME}, {dmarcBlocked, dBlock}} {
		if !l.netns {
			x.r.Cells[libOpendmrc] = cell{Got: "not run", Detail: "reads /etc/resolv.conf: runs only in the lab's network namespace"}
			continue
		}
		out, err := runTool(30*time.Second, nil, "", "/usr/sbin/opendmarc-check", x.domain)
		x.r.Cells[libOpendmrc] = opendmarcCell(out, err, l.dmarc[x.domain])
	}

	// mailauth authenticates each signed message as received from the
	// domain's own netblock: DKIM, and for dSend's messages DMARC and BIMI.
	if err := l.mailauthReady(); err != nil {
		for _, r := range rows {
			r.Cells[libMailauth] = cell{Got: "not run", Detail: err.Error()}
		}
		return rows
	}
	type amsg struct {
		ID     string `json:"id"`
		File   string `json:"file"`
		IP     string `json:"ip"`
		HELO   string `json:"helo"`
		Sender string `json:"sender"`
	}
	var am []amsg
	for _, m := range msgs {
		am = append(am, amsg{m.ID, m.Out, ipNet4, heloGood, "alice@" + dSend})
	}
	// Unsigned messages: DMARC rests on SPF alone.
	for _, d := range []string{dCNAME, dBlock} {
		f := filepath.Join(dir, d+".eml")
		body := fmt.Sprintf("From: Alice <alice@%s>\r\nTo: bob@receiver.example\r\nSubject: interop\r\n"+
			"Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <unsigned@%s>\r\n\r\nNot signed.\r\n", d, d)
		require.NoError(t, os.WriteFile(f, []byte(body), 0o644))
		am = append(am, amsg{d, f, ipNet4, heloGood, "alice@" + d})
	}
	ma, err := runJSON(5*time.Minute, map[string]any{"resolver": l.resolver(), "messages": am}, l.nodeEnv(),
		"/usr/bin/node", filepath.Join(scripts, "mailauth.js"))
	require.NoError(t, err)
	for id, c := range ma {
		parts := map[string]string{}
		for _, f := range strings.Fields(c.Got) {
			if k, v, ok := strings.Cut(f, "="); ok {
				parts[k] = v
			}
		}
		if c.Got == "exception" {
			parts = map[string]string{"dkim": "exception", "dmarc": "exception"}
		}
		switch id {
		case dCNAME:
			dmarcCNAME.Cells[libMailauth] = cell{Got: parts["dmarc"], Detail: "unsigned message from " + ipNet4 + ": " + c.Got}
			continue
		case dBlock:
			dmarcBlocked.Cells[libMailauth] = cell{Got: parts["dmarc"], Detail: "unsigned message from " + ipNet4 + ": " + c.Got}
			continue
		}
		byKey[id].Cells[libMailauth] = cell{Got: parts["dkim"], Detail: c.Detail}
		if id == "r2048" {
			dmarcNS.Cells[libMailauth] = cell{Got: parts["dmarc"], Detail: "message signed with r2048, from " + ipNet4}
			bimi.Cells[libMailauth] = cell{Got: parts["bimi"], Detail: c.Detail}
		}
	}
	return rows
}

// lookupTXT asks the lab's Unbound for the TXT records of name, following
// CNAMEs, and joins them.
func (l *lab) lookupTXT(name string) (string, error) {
	r, err := ask(l.resolver(), name, dns.TypeTXT)
	if err != nil {
		return "", err
	}
	if r.Rcode != dns.RcodeSuccess {
		return "", fmt.Errorf("%s", dns.RcodeToString[r.Rcode])
	}
	return strings.Join(txtOf(r), " | "), nil
}

func recordCell(got string, err error, want string) cell {
	switch {
	case err != nil:
		return cell{Got: "fail", Detail: err.Error()}
	case got != want:
		return cell{Got: "fail", Detail: oneLine("got " + got + ", want " + want)}
	}
	return cell{Got: "pass", Detail: oneLine(got)}
}

// opendmarcCell judges opendmarc-check's report of a domain's record: it
// must find a record and read its policy as the one published.
func opendmarcCell(out string, err error, record string) cell {
	c := cell{Got: "pass", Detail: oneLine(out)}
	if err != nil {
		c.Got = "fail"
		return c
	}
	p := ""
	for _, tag := range strings.Split(record, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(tag), "="); ok && k == "p" {
			p = v
		}
	}
	if !strings.Contains(strings.ToLower(out), "policy") || (p != "" && !strings.Contains(strings.ToLower(out), p)) {
		c.Got = "fail"
	}
	return c
}

// opendkimConf writes a configuration for opendkim-testkey: its libunbound
// resolves from the root by itself unless told to forward, as an opendkim
// operator does with ResolverConfiguration, to the site's resolver.
func (l *lab) opendkimConf(dir string) string {
	conf := filepath.Join(dir, "opendkim.conf")
	ub := filepath.Join(dir, "opendkim-unbound.conf")
	if _, err := os.Stat(conf); err == nil {
		return conf
	}
	host, port, _ := strings.Cut(l.resolver(), ":")
	require.NoError(l.t, os.WriteFile(ub, []byte(fmt.Sprintf("server:\n\tdo-not-query-localhost: no\nforward-zone:\n\tname: \".\"\n\tforward-addr: %s@%s\n", host, port)), 0o644))
	require.NoError(l.t, os.WriteFile(conf, []byte("ResolverConfiguration "+ub+"\n"), 0o644))
	return conf
}
