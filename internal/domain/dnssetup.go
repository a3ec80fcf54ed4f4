package domain

import "strings"

// DNSRecord is one resource record, in presentation form.
type DNSRecord struct {
	Name  string
	Type  string
	Value string
	TTL   int
}

// Delegation says how the customer hands one name to the edge: either NS
// records (preferred: the edge is authoritative for the whole zone) or one
// CNAME (for DNS hosts that cannot delegate a subdomain).
type Delegation struct {
	// NameServers are the NS records to publish, one per edge name server.
	NameServers []DNSRecord
	// CNAMEAlternative replaces NameServers where delegation is impossible.
	CNAMEAlternative DNSRecord
	// Served is what the edge answers once the delegation is in place.
	Served DNSRecord
}

// DNSSetup is the set of records the customer publishes for a domain.
type DNSSetup struct {
	DMARC Delegation
}

// setupTTL is the TTL suggested for delegation records: they rarely change.
const setupTTL = 3600

// DNSSetup returns the records the customer must publish in their own zone
// for the edge to serve the domain.
func (s *Service) DNSSetup(d Domain) DNSSetup {
	name := "_dmarc." + d.Name + "."
	var ns []DNSRecord
	for _, n := range s.cfg.NameServers {
		ns = append(ns, DNSRecord{Name: name, Type: "NS", Value: fqdn(n), TTL: setupTTL})
	}
	return DNSSetup{DMARC: Delegation{
		NameServers:      ns,
		CNAMEAlternative: DNSRecord{Name: name, Type: "CNAME", Value: d.Name + "._dmarc." + fqdn(s.cfg.EdgeZone), TTL: setupTTL},
		Served:           DNSRecord{Name: name, Type: "TXT", Value: d.Record().String(), TTL: 300},
	}}
}

func fqdn(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}
