//go:build interop

package interop_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
)

// world is the DNS outside Rampart's edge as the lab's NSD serves it:
// zones by name, each a list of records in zone-file form.
type world map[string][]string

// add adds a record to the zone that holds name (the longest zone name that
// is a suffix of it).
func (w world) add(name, typ, value string) {
	name = dns.Fqdn(name)
	best := ""
	for z := range w {
		if dns.IsSubDomain(dns.Fqdn(z), name) && len(z) > len(best) {
			best = z
		}
	}
	if best == "" {
		panic("no zone for " + name)
	}
	w[best] = append(w[best], fmt.Sprintf("%s 60 IN %s %s", name, typ, value))
}

// txt adds a TXT record, split into strings of at most 255 octets.
func (w world) txt(name, value string) {
	var parts []string
	for len(value) > 255 {
		parts, value = append(parts, value[:255]), value[255:]
	}
	parts = append(parts, value)
	for i, p := range parts {
		parts[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
	}
	w.add(name, "TXT", strings.Join(parts, " "))
}

// freePort returns a loopback UDP and TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			_ = pc.Close()
			return port
		}
	}
	t.Fatal("no free loopback port")
	return 0
}

// nsd is NSD serving a world on a loopback port.
type nsd struct {
	dir  string
	port int
	proc *attacktest.Proc
}

func startNSD(t *testing.T, dir string, port int, w world) *nsd {
	t.Helper()
	n := &nsd{dir: dir, port: port}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "zones"), 0o755))
	var conf strings.Builder
	fmt.Fprintf(&conf, "server:\n\tip-address: 127.0.0.1@%d\n\tport: %d\n\tserver-count: 1\n\tusername: \"\"\n\tchroot: \"\"\n", port, port)
	fmt.Fprintf(&conf, "\tzonesdir: %q\n\tdatabase: \"\"\n\tzonelistfile: %q\n\txfrdfile: %q\n\tpidfile: %q\n",
		filepath.Join(dir, "zones"), filepath.Join(dir, "zone.list"), filepath.Join(dir, "xfrd.state"), filepath.Join(dir, "nsd.pid"))
	conf.WriteString("\tverbosity: 1\n\tdo-ip6: no\n\trrl-ratelimit: 0\n\trrl-whitelist-ratelimit: 0\n\tzonefiles-write: 0\n")
	conf.WriteString("remote-control:\n\tcontrol-enable: no\n")
	names := make([]string, 0, len(w))
	for z := range w {
		names = append(names, z)
	}
	sort.Strings(names)
	for _, z := range names {
		zf := dns.Fqdn(z)
		body := fmt.Sprintf("$TTL 60\n%s 60 IN SOA ns.%s hostmaster.%s 1 3600 600 86400 60\n%s 60 IN NS ns.%s\nns.%s 60 IN A 127.0.0.1\n",
			zf, zf, zf, zf, zf, zf)
		body += strings.Join(w[z], "\n") + "\n"
		file := strings.TrimSuffix(z, ".") + ".zone"
		require.NoError(t, os.WriteFile(filepath.Join(dir, "zones", file), []byte(body), 0o644))
		fmt.Fprintf(&conf, "zone:\n\tname: %q\n\tzonefile: %q\n", zf, file)
	}
	cf := filepath.Join(dir, "nsd.conf")
	require.NoError(t, os.WriteFile(cf, []byte(conf.String()), 0o644))
	out, err := runTool(10*time.Second, nil, "", "/usr/sbin/nsd-checkconf", cf)
	require.NoError(t, err, "nsd-checkconf: %s", out)
	n.proc = attacktest.Start(t, "nsd", "/usr/sbin/nsd", nil, "-d", "-c", cf)
	waitServes(t, fmt.Sprintf("127.0.0.1:%d", port), names[0])
	return n
}

// waitServes waits up to 10 s until a server answers the SOA of name.
func waitServes(t *testing.T, addr, name string) {
	t.Helper()
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeSOA)
	var last string
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(100 * time.Millisecond) {
		r, _, err := c.Exchange(m, addr)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = dns.RcodeToString[r.Rcode]
		}
	}
	t.Fatalf("%s does not answer SOA %s: %s", addr, name, last)
}

// stub is a name Unbound sends straight to an authoritative server.
type stub struct {
	name string
	addr string // 127.0.0.1@port
}

// unbound is an unmodified Unbound with qname minimisation, 0x20 and DNSSEC
// validation (the root trust anchor of the dns-root-data package); the lab's
// zones are unsigned, so they are declared insecure, as a resolver operator
// does for private zones. Every other name goes to a root stub on NSD, which
// refuses it: nothing leaves the machine.
type unbound struct {
	addr string
	proc *attacktest.Proc
}

func startUnbound(t *testing.T, dir string, port, rootPort int, stubs []stub) *unbound {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	var c strings.Builder
	fmt.Fprintf(&c, "server:\n\tinterface: 127.0.0.1@%d\n\tport: %d\n", port, port)
	fmt.Fprintf(&c, "\tdirectory: %q\n\tpidfile: %q\n", dir, filepath.Join(dir, "unbound.pid"))
	c.WriteString(`	username: ""
	chroot: ""
	use-syslog: no
	logfile: ""
	verbosity: 1
	val-log-level: 2
	log-servfail: yes
	do-ip6: no
	do-not-query-localhost: no
	access-control: 127.0.0.0/8 allow
	qname-minimisation: yes
	qname-minimisation-strict: no
	use-caps-for-id: yes
	harden-glue: yes
	harden-dnssec-stripped: yes
	module-config: "validator iterator"
	trust-anchor-file: "/usr/share/dns/root.key"
	num-threads: 1
`)
	for _, s := range stubs {
		fmt.Fprintf(&c, "\tdomain-insecure: %q\n\tlocal-zone: %q transparent\n", dns.Fqdn(s.name), dns.Fqdn(s.name))
	}
	fmt.Fprintf(&c, "stub-zone:\n\tname: \".\"\n\tstub-addr: 127.0.0.1@%d\n", rootPort)
	for _, s := range stubs {
		fmt.Fprintf(&c, "stub-zone:\n\tname: %q\n\tstub-addr: %s\n", dns.Fqdn(s.name), s.addr)
	}
	c.WriteString("remote-control:\n\tcontrol-enable: no\n")
	cf := filepath.Join(dir, "unbound.conf")
	require.NoError(t, os.WriteFile(cf, []byte(c.String()), 0o644))
	out, err := runTool(10*time.Second, nil, "", "/usr/sbin/unbound-checkconf", cf)
	require.NoError(t, err, "unbound-checkconf: %s", out)
	u := &unbound{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	u.proc = attacktest.Start(t, "unbound", "/usr/sbin/unbound", nil, "-d", "-c", cf)
	return u
}
