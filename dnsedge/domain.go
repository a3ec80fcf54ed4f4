package dnsedge

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/gaissmai/bart"

	"github.com/rampartmail/rampart/internal/spfanswer"
)

// Bounds on one edge_domain row. The API writes far smaller rows; the bounds
// keep every answer inside a TCP message and a damaged row or snapshot file
// from costing unbounded memory.
const (
	// maxDMARCLen bounds the DMARC TXT value.
	maxDMARCLen = 8192
	// maxTXTLen bounds the other TXT values: one _nspf record, _rspf,
	// BIMI, one DKIM key.
	maxTXTLen = 8192
	// maxNSPFLen and maxNSPFRecords bound the nspf column: its records,
	// one per line.
	maxNSPFLen     = 1 << 18
	maxNSPFRecords = 1024
	// maxNetblocks, maxDomainServices and maxSelectors bound the lists.
	maxNetblocks      = 4096
	maxDomainServices = 1024
	maxSelectors      = 256
	// maxDKIMJSON bounds the dkim column as text.
	maxDKIMJSON = 1 << 20
	// maxServiceName bounds an edge_service name.
	maxServiceName = 128
)

// modeBlocked is the mode of a domain that sends no mail: it answers SPF
// "-all" and a revoked DKIM key for every selector. modeRemoved is the mode
// of a domain removed from Rampart, kept for a grace period: its SPF names
// answer what its row says (authorising nothing), and its report
// authorisation is withdrawn.
const (
	modeBlocked = "blocked"
	modeRemoved = "removed"
)

// row is one edge_domain row as read from PostgreSQL or the snapshot file.
type row struct {
	name    string
	serial  int64
	mode    string
	dmarc   string
	deleted bool
	// netblocks are the domain's own networks, answered in SPF as ip4:/ip6:
	// of the querying address.
	netblocks []netip.Prefix
	// services are the domain's enabled senders, by edge_service name, in
	// the order the HELO match tries them.
	services []string
	// nspf holds the TXT values in the _nspf subtree, one per line: the
	// first at <name>._nspf.<edge zone>, the k-th (from 2) at
	// _<k>.<name>._nspf.<edge zone>; "" for none.
	nspf string
	// rspf is the TXT value at <name>._rspf.<edge zone>, the redirect
	// target of the current SPF form; "" for a row compiled before it
	// existed, answered from the mode alone.
	rspf string
	// dkim is the JSON array of the records under _domainkey.<name>, as
	// stored: [{"selector": "s1", "txt": "v=DKIM1; ..."},
	// {"selector": "s2", "cname": "s2.vendor.example"}].
	dkim string
	// bimi is the TXT value at default._bimi.<name>; "" while withheld.
	bimi string
}

// domain is one hosted domain as the index serves it. It is built once, when
// its row enters an index, and never changed: later indexes share it.
type domain struct {
	// row is the validated row (netblocks masked), kept for the snapshot
	// file; name is lower case without a trailing dot.
	row
	blocked, removed bool
	// dmarcTXT, rspfTXT and bimiTXT are the values cut into character-strings
	// (see txtStrings); nil when the value is empty and no TXT record
	// exists. nspfTXT are the _nspf records so cut, the first at
	// <name>._nspf.
	dmarcTXT []string
	rspfTXT  []string
	bimiTXT  []string
	nspfTXT  [][]string
	// nets holds the netblocks for the SPF answers; nil when there are none.
	nets *bart.Lite
	// selectors holds the records under _domainkey.<name> by selector, and
	// selectorParents the empty non-terminals that selectors with dots
	// create ("b" for selector "a.b").
	selectors       map[string]dkimNode
	selectorParents map[string]bool
}

// dkimNode is the record at <selector>._domainkey.<domain>: a hosted key's
// TXT or a vendor-rotated key's CNAME.
type dkimNode struct {
	txt   []string
	cname string // fully qualified, lower case
}

// dkimEntry is one element of the dkim column.
type dkimEntry struct {
	Selector string `json:"selector"`
	TXT      string `json:"txt"`
	CNAME    string `json:"cname"`
}

// hasNSPF reports whether the domain has a name in the _nspf subtree of the
// edge zone: a stored value, or "v=spf1 -all" when blocked.
func (d *domain) hasNSPF() bool { return d.nspf != "" || d.blocked }

// The _rspf answers of a row compiled before the column existed.
var (
	rspfSending = []string{spfanswer.NeutralRecord}
	rspfRemoved = []string{spfanswer.RemovedRecord}
)

// rspfAnswer is the record at <name>._rspf.<edge zone>: the stored one, or
// what the mode alone says; always "v=spf1 -all" for a blocked domain.
func (d *domain) rspfAnswer() []string {
	switch {
	case d.blocked:
		return spfFail
	case d.rspfTXT != nil:
		return d.rspfTXT
	case d.removed:
		return rspfRemoved
	}
	return rspfSending
}

// nspfAnswer is the k-th record (from 1) in the _nspf subtree, or nil.
func (d *domain) nspfAnswer(k int) []string {
	switch {
	case d.blocked:
		if k == 1 {
			return spfFail
		}
	case k >= 1 && k <= len(d.nspfTXT):
		return d.nspfTXT[k-1]
	}
	return nil
}

// newDomain validates r and builds the domain it describes.
func newDomain(r row) (*domain, error) {
	if err := checkHostName(r.name); err != nil {
		return nil, fmt.Errorf("name %q: %w", r.name, err)
	}
	// _dmarc.<name>. must fit the 255-octet wire limit: 7 + len + 2.
	if len(r.name) > 253-len("_dmarc.") {
		return nil, fmt.Errorf("name %q too long for _dmarc.<name>", r.name)
	}
	if r.serial <= 0 {
		return nil, fmt.Errorf("domain %q: serial %d not positive", r.name, r.serial)
	}
	if r.mode == "" || len(r.mode) > 32 || strings.ContainsFunc(r.mode, func(c rune) bool { return c < 'a' || c > 'z' }) {
		return nil, fmt.Errorf("domain %q: invalid mode %q", r.name, r.mode)
	}
	for _, v := range []struct {
		what  string
		value string
		max   int
	}{{"dmarc", r.dmarc, maxDMARCLen}, {"nspf", r.nspf, maxNSPFLen}, {"rspf", r.rspf, maxTXTLen}, {"bimi", r.bimi, maxTXTLen}} {
		if len(v.value) > v.max {
			return nil, fmt.Errorf("domain %q: %s value of %d bytes exceeds %d", r.name, v.what, len(v.value), v.max)
		}
	}
	d := &domain{
		blocked:  r.mode == modeBlocked,
		removed:  r.mode == modeRemoved,
		dmarcTXT: txtStrings(r.dmarc),
		rspfTXT:  txtStrings(r.rspf),
		bimiTXT:  txtStrings(r.bimi),
	}
	if r.nspf != "" {
		if n := strings.Count(r.nspf, "\n") + 1; n > maxNSPFRecords {
			return nil, fmt.Errorf("domain %q: %d nspf records exceed %d", r.name, n, maxNSPFRecords)
		}
		for rec := range strings.SplitSeq(r.nspf, "\n") {
			if rec == "" || len(rec) > maxTXTLen {
				return nil, fmt.Errorf("domain %q: nspf record of %d bytes: empty or over %d", r.name, len(rec), maxTXTLen)
			}
			d.nspfTXT = append(d.nspfTXT, txtStrings(rec))
		}
	}

	if len(r.netblocks) > maxNetblocks {
		return nil, fmt.Errorf("domain %q: %d netblocks exceed %d", r.name, len(r.netblocks), maxNetblocks)
	}
	if len(r.netblocks) > 0 {
		nets := make([]netip.Prefix, len(r.netblocks))
		d.nets = new(bart.Lite)
		for i, p := range r.netblocks {
			if !p.IsValid() || p.Addr().Zone() != "" {
				return nil, fmt.Errorf("domain %q: invalid netblock %v", r.name, p)
			}
			nets[i] = p.Masked()
			d.nets.Insert(nets[i])
		}
		r.netblocks = nets
	} else {
		r.netblocks = nil // one form for "none", whatever the source
	}

	if len(r.services) > maxDomainServices {
		return nil, fmt.Errorf("domain %q: %d services exceed %d", r.name, len(r.services), maxDomainServices)
	}
	for _, s := range r.services {
		if err := checkServiceName(s); err != nil {
			return nil, fmt.Errorf("domain %q: %w", r.name, err)
		}
	}
	if len(r.services) == 0 {
		r.services = nil
	}

	if err := d.parseDKIM(r.name, r.dkim); err != nil {
		return nil, fmt.Errorf("domain %q: dkim: %w", r.name, err)
	}
	d.row = r
	return d, nil
}

// parseDKIM fills d.selectors and d.selectorParents from the dkim column.
func (d *domain) parseDKIM(name, text string) error {
	if len(text) > maxDKIMJSON {
		return fmt.Errorf("%d bytes exceed %d", len(text), maxDKIMJSON)
	}
	if text == "" {
		return nil
	}
	var entries []dkimEntry
	if err := json.Unmarshal([]byte(text), &entries); err != nil {
		return err
	}
	if len(entries) > maxSelectors {
		return fmt.Errorf("%d selectors exceed %d", len(entries), maxSelectors)
	}
	if len(entries) == 0 {
		return nil
	}
	d.selectors = make(map[string]dkimNode, len(entries))
	for _, e := range entries {
		if err := checkHostName(e.Selector); err != nil {
			return fmt.Errorf("selector %q: %w", e.Selector, err)
		}
		if len(e.Selector)+len("._domainkey.")+len(name) > 253 {
			return fmt.Errorf("selector %q: name too long", e.Selector)
		}
		if _, dup := d.selectors[e.Selector]; dup {
			return fmt.Errorf("selector %q listed twice", e.Selector)
		}
		var n dkimNode
		switch {
		case e.TXT != "" && e.CNAME == "":
			if len(e.TXT) > maxTXTLen {
				return fmt.Errorf("selector %q: key of %d bytes exceeds %d", e.Selector, len(e.TXT), maxTXTLen)
			}
			n.txt = txtStrings(e.TXT)
		case e.CNAME != "" && e.TXT == "":
			target, err := canonicalName(e.CNAME)
			if err != nil {
				return fmt.Errorf("selector %q: cname: %w", e.Selector, err)
			}
			n.cname = target
		default:
			return fmt.Errorf("selector %q: want exactly one of txt and cname", e.Selector)
		}
		d.selectors[e.Selector] = n
	}
	for sel := range d.selectors {
		for i := strings.IndexByte(sel, '.'); i >= 0; {
			p := sel[i+1:]
			if d.selectorParents == nil {
				d.selectorParents = map[string]bool{}
			}
			d.selectorParents[p] = true
			j := strings.IndexByte(p, '.')
			if j < 0 {
				break
			}
			i += j + 1
		}
	}
	return nil
}

// checkServiceName checks an edge_service name as a domain row or the
// snapshot names it.
func checkServiceName(s string) error {
	if s == "" || len(s) > maxServiceName {
		return fmt.Errorf("service name %q: empty or longer than %d bytes", s, maxServiceName)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("service name %q: byte %#x not allowed", s, c)
		}
	}
	return nil
}

// txtStrings cuts s into the character-strings of one TXT record (at most
// 255 bytes each, RFC 1035 §3.3.14) in the escaped form miekg/dns packs.
func txtStrings(s string) []string {
	if s == "" {
		return nil
	}
	out := make([]string, 0, (len(s)+254)/255)
	for len(s) > 0 {
		n := min(len(s), 255)
		out = append(out, escapeTXT(s[:n]))
		s = s[n:]
	}
	return out
}

// escapeTXT escapes the bytes miekg/dns would otherwise interpret when packing
// a TXT character-string: backslash, and bytes outside printable ASCII.
func escapeTXT(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c < ' ' || c > '~' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, `\%03d`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
