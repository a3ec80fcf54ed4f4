package spfanswer

import "strings"

// MaxResponse is the largest SPF response the edge gives, in octets: RFC
// 7208 §3.4 asks that an SPF record's answer fit in a 512-octet UDP
// message, so that no receiver needs TCP for it.
const MaxResponse = 512

// ResponseSize is the size in octets of the DNS response that carries txt
// as the one TXT record at qname (presentation form, without escapes, with
// or without the trailing dot): header, question, the answer record with
// its owner compressed to a pointer, and an EDNS OPT record, which the
// edge adds when the query has one.
func ResponseSize(qname, txt string) int {
	if n := len(qname); n > 0 && qname[n-1] == '.' {
		qname = qname[:n-1]
	}
	const (
		header   = 12
		qfixed   = 4      // QTYPE, QCLASS
		rrfixed  = 2 + 10 // owner pointer; TYPE, CLASS, TTL, RDLENGTH
		opt      = 11     // root owner, TYPE, CLASS, TTL, RDLENGTH
		maxChunk = 255
	)
	wireName := len(qname) + 2 // length octets of the labels and the root
	if qname == "" {
		wireName = 1
	}
	chunks := (len(txt) + maxChunk - 1) / maxChunk
	if chunks == 0 {
		chunks = 1
	}
	return header + wireName + qfixed + rrfixed + chunks + len(txt) + opt
}

// HandoverRecord is the answer that hands a query over to an enabled
// sender's own SPF records, when only the HELO names it: an include of each
// of the sender's includes, in order, so that any of them may pass.
func HandoverRecord(includes ...string) string {
	var b strings.Builder
	b.WriteString("v=spf1")
	for _, inc := range includes {
		b.WriteString(" include:" + inc)
	}
	b.WriteString(" -all")
	return b.String()
}

// HandoverFits reports whether the handover to includes fits MaxResponse
// octets whatever name was asked: the longest question has 253 octets.
func HandoverFits(includes ...string) bool {
	return ResponseSize(longestName, HandoverRecord(includes...)) <= MaxResponse
}

// longestName stands for a 253-octet name asked.
var longestName = func() string {
	b := make([]byte, maxName)
	for i := range b {
		b[i] = 'a'
		if i%64 == 63 {
			b[i] = '.'
		}
	}
	return string(b)
}()
