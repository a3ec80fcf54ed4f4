package domain

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/domain/domaindb"
)

// DNSRecord is one resource record, in presentation form.
type DNSRecord struct {
	Name  string
	Type  string
	Value string
	TTL   int
}

// Delegation says how the customer hands one name to the edge: NS records
// (preferred: the edge is authoritative for the whole zone) or, where the
// DNS host cannot delegate a subdomain, a CNAME.
type Delegation struct {
	// NameServers are the NS records to publish, one per edge name server.
	NameServers []DNSRecord
	// CNAMEAlternative replaces NameServers where delegation is impossible;
	// nil where no CNAME can stand in (a zone of many names).
	CNAMEAlternative *DNSRecord
	// Served is what the edge answers once the delegation is in place.
	Served []DNSRecord
	// Warnings say what the delegation would break, in sentences: for
	// _domainkey, the selectors seen signing the domain's mail that the
	// edge would not answer (see [Service.unhostedSelectors]).
	Warnings []string
}

// DNSSetup is the set of records the customer publishes for a domain.
type DNSSetup struct {
	// Verification is the ownership proof: until the account has published
	// it (or the operator verified the domain), the edge serves nothing
	// for the domain.
	Verification DNSRecord
	DMARC        Delegation
	// SPF is the apex TXT record.
	SPF DNSRecord
	// LegacySPF is the apex record in the form published before SPF's
	// (LegacySPFRecord): still answered by the edge, to be replaced.
	LegacySPF DNSRecord
	DKIM      Delegation
	BIMI      Delegation
	// BIMIWithheld says why the edge does not serve BIMI now (nil when it does).
	BIMIWithheld *string
	// Published is what the last check saw of the domain's own DNS, with
	// what the customer should change.
	Published Observed
}

// setupTTL is the TTL suggested for delegation records: they rarely change.
const setupTTL = 3600

// servedTTL is the TTL the edge serves records with.
const servedTTL = 300

// DNSSetup returns the records the customer must publish in their own zone
// for the edge to serve the domain, and what the edge serves there. The
// principal must hold [access.ViewReports] on the domain.
func (s *Service) DNSSetup(ctx context.Context, d Domain) (DNSSetup, error) {
	if err := s.authorize(ctx, d, access.ViewReports); err != nil {
		return DNSSetup{}, err
	}
	proof, err := s.Proof(ctx, d)
	if err != nil {
		return DNSSetup{}, err
	}
	var p Published
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		p, err = s.Compile(ctx, tx, d)
		return err
	})
	if err != nil {
		return DNSSetup{}, fmt.Errorf("compile DNS set-up: %w", err)
	}
	apex := d.Name + "."
	setup := DNSSetup{
		Verification: proof,
		DMARC:        s.delegation("_dmarc." + apex),
		DKIM:         s.delegation("_domainkey." + apex),
		BIMI:         s.delegation("_bimi." + apex),
		SPF:          DNSRecord{Name: apex, Type: "TXT", Value: SPFRecord(d.Name, s.cfg.EdgeZone), TTL: setupTTL},
		LegacySPF:    DNSRecord{Name: apex, Type: "TXT", Value: LegacySPFRecord(d.Name, s.cfg.EdgeZone), TTL: setupTTL},
	}
	if d.Mode == Blocked {
		// A domain that sends no mail needs no include: fail everything.
		setup.SPF.Value = "v=spf1 -all"
	}
	setup.DMARC.CNAMEAlternative = &DNSRecord{Name: "_dmarc." + apex, Type: "CNAME", Value: d.Name + "._dmarc." + fqdn(s.cfg.EdgeZone), TTL: setupTTL}
	setup.DMARC.Served = []DNSRecord{{Name: "_dmarc." + apex, Type: "TXT", Value: p.DMARC, TTL: servedTTL}}
	setup.DKIM.Served = []DNSRecord{}
	for _, k := range p.DKIM {
		r := DNSRecord{Name: k.Selector + "._domainkey." + apex, Type: "TXT", Value: k.TXT, TTL: servedTTL}
		if k.CNAME != "" {
			r.Type, r.Value = "CNAME", fqdn(k.CNAME)
		}
		setup.DKIM.Served = append(setup.DKIM.Served, r)
	}
	setup.BIMI.Served = []DNSRecord{}
	if p.BIMI != "" {
		setup.BIMI.Served = append(setup.BIMI.Served, DNSRecord{Name: "default._bimi." + apex, Type: "TXT", Value: p.BIMI, TTL: servedTTL})
	}
	if p.BIMIWithheld != "" {
		setup.BIMIWithheld = &p.BIMIWithheld
	}
	setup.DMARC.Warnings, setup.BIMI.Warnings = []string{}, []string{}
	setup.DKIM.Warnings = []string{}
	if o := d.Observed.DKIMDelegated; o == nil || !*o {
		if setup.DKIM.Warnings, err = s.unhostedSelectors(ctx, d); err != nil {
			return DNSSetup{}, err
		}
	}
	setup.Published = d.Observed
	setup.Published.Actions = s.actions(d, setup)
	return setup, nil
}

// SelectorWindow is how far back [Service.DNSSetup] looks for DKIM
// selectors that a _domainkey delegation would break.
const SelectorWindow = 30

// maxSelectorWarnings bounds the selectors named in the warnings.
const maxSelectorWarnings = 20

// unhostedSelectors warns about the selectors that signed mail as the
// domain itself (d= the domain) in the last [SelectorWindow] days and have
// no key in Rampart (hosted or CNAME): once _domainkey is delegated to the
// edge, their keys stop resolving and that mail fails DKIM.
func (s *Service) unhostedSelectors(ctx context.Context, d Domain) ([]string, error) {
	since := time.Now().UTC().AddDate(0, 0, -(SelectorWindow - 1))
	rows, err := domaindb.New(s.pool).UnhostedSelectors(ctx, domaindb.UnhostedSelectorsParams{
		DomainID: d.ID, Name: d.Name, MaxSelectors: maxSelectorWarnings,
		Since: pgtype.Date{Time: time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC), Valid: true},
	})
	if err != nil {
		return nil, fmt.Errorf("look up unhosted DKIM selectors: %w", err)
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, fmt.Sprintf("Selector %s signed %d message(s) as %s in the last %d days and has no key in Rampart: delegating _domainkey.%s to the edge would make %s._domainkey.%s unresolvable and fail DKIM for that mail. Import its key first (importDkimKey), or add it.",
			r.Selector, r.Messages, d.Name, SelectorWindow, d.Name, r.Selector, d.Name))
	}
	return out, nil
}

func (s *Service) delegation(name string) Delegation {
	var ns []DNSRecord
	for _, n := range s.cfg.NameServers {
		ns = append(ns, DNSRecord{Name: name, Type: "NS", Value: fqdn(n), TTL: setupTTL})
	}
	return Delegation{NameServers: ns}
}

func fqdn(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}
