package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/dmarc"
	"github.com/rampartmail/rampart/internal/domain/domaindb"
)

// RevokedDKIM is the DKIM record of a revoked key (RFC 6376 §3.6.1: an
// empty p= means revoked), served for every selector of a blocked domain.
const RevokedDKIM = "v=DKIM1; p="

// Published is everything the edge serves for a domain, as compiled from
// the domain's rows: the edge_domain row's content.
type Published struct {
	DMARC     string
	Netblocks []netip.Prefix
	// Services are the enabled senders' slugs, in the order the edge tries
	// their HELO suffixes.
	Services []string
	// NSPF is the TXT record at <name>._nspf.<edge zone>.
	NSPF string
	DKIM []DKIMRecord
	// BIMI is the TXT record at default._bimi.<name>; "" while withheld.
	BIMI string
	// BIMIWithheld says why BIMI is not served, when it is not.
	BIMIWithheld string
}

// DKIMRecord is one name under _domainkey.<name>: a TXT record or a CNAME.
type DKIMRecord struct {
	Selector string `json:"selector"`
	TXT      string `json:"txt,omitempty"`
	CNAME    string `json:"cname,omitempty"`
}

// Compile reads a domain's records inside tx and composes what the edge
// serves.
func (s *Service) Compile(ctx context.Context, tx pgx.Tx, d Domain) (Published, error) {
	q := domaindb.New(tx)
	p := Published{DMARC: d.Record(s.cfg.ReportsDomain).String()}
	nets, err := q.DomainNetblocks(ctx, d.ID)
	if err != nil {
		return p, fmt.Errorf("load netblocks: %w", err)
	}
	senders, err := q.DomainSenders(ctx, d.ID)
	if err != nil {
		return p, fmt.Errorf("load senders: %w", err)
	}
	pins, err := q.DomainPins(ctx, d.ID)
	if err != nil {
		return p, fmt.Errorf("load SPF pins: %w", err)
	}
	keys, err := q.DomainDKIMKeys(ctx, d.ID)
	if err != nil {
		return p, fmt.Errorf("load DKIM keys: %w", err)
	}
	p.Netblocks = []netip.Prefix{}
	for _, n := range nets {
		p.Netblocks = append(p.Netblocks, n.Cidr)
	}
	p.Services = []string{}
	for _, sd := range senders {
		p.Services = append(p.Services, sd.Slug)
	}
	includes := make([]string, len(pins))
	for i, pin := range pins {
		includes[i] = pin.Include
	}
	p.NSPF = NSPFRecord(d.Mode, p.Netblocks, includes)
	p.DKIM = []DKIMRecord{}
	for _, k := range keys {
		r := DKIMRecord{Selector: k.Selector}
		switch {
		case d.Mode == Blocked || k.RevokedAt != nil:
			r.TXT = RevokedDKIM
		case k.CnameTarget != nil:
			r.CNAME = *k.CnameTarget
		default:
			r.TXT = *k.Record
		}
		p.DKIM = append(p.DKIM, r)
	}
	p.BIMI, p.BIMIWithheld = bimiRecord(d)
	return p, nil
}

// NSPFRecord composes the _nspf record: the domain's netblocks and pinned
// includes, literally, for receivers and vendor set-up checkers that do not
// expand macros. It always exists for a hosted domain, because an include
// of a name without an SPF record is a permerror for the whole record.
func NSPFRecord(mode Mode, netblocks []netip.Prefix, includes []string) string {
	if mode == Blocked {
		return "v=spf1 -all"
	}
	var b strings.Builder
	b.WriteString("v=spf1")
	for _, n := range netblocks {
		if n.Addr().Is4() {
			b.WriteString(" ip4:")
		} else {
			b.WriteString(" ip6:")
		}
		if n.IsSingleIP() {
			b.WriteString(n.Addr().String())
		} else {
			b.WriteString(n.String())
		}
	}
	for _, inc := range includes {
		b.WriteString(" include:" + inc)
	}
	b.WriteString(" -all")
	return b.String()
}

// bimiRecord composes the BIMI record, or says why it is withheld: BIMI is
// only honoured (and only published here) at DMARC enforcement.
func bimiRecord(d Domain) (record, withheld string) {
	if d.BIMI == nil {
		return "", "no BIMI logo is set"
	}
	if d.Mode == Blocked {
		return "", "the domain is blocked: it sends no mail"
	}
	p := d.Effective()
	if p.P != dmarc.Quarantine && p.P != dmarc.Reject {
		return "", "the DMARC policy is p=" + string(p.P) + "; BIMI needs p=quarantine or p=reject"
	}
	if p.Percent != 100 {
		return "", "the DMARC policy applies to pct=" + strconv.Itoa(p.Percent) + "; BIMI needs pct=100"
	}
	if p.SP != nil && *p.SP == dmarc.None {
		return "", "the subdomain policy is sp=none; BIMI needs subdomains at enforcement too"
	}
	r := "v=BIMI1; l=" + d.BIMI.LogoURL
	r += "; a=" + d.BIMI.EvidenceURL
	return r, ""
}

// publish compiles the domain into its edge row and notifies the edges. An
// unverified claim is never compiled: the edge row of its name belongs to
// the verified claim on it, if any, and the edge serves nothing for a
// name nobody has proven to control.
func (s *Service) publish(ctx context.Context, tx pgx.Tx, d Domain) error {
	if !d.Verified() {
		return nil
	}
	p, err := s.Compile(ctx, tx, d)
	if err != nil {
		return err
	}
	dkim, err := json.Marshal(p.DKIM)
	if err != nil {
		return fmt.Errorf("encode DKIM records: %w", err)
	}
	q := domaindb.New(tx)
	serial, err := q.UpsertEdgeDomain(ctx, domaindb.UpsertEdgeDomainParams{
		Name: d.Name, Mode: string(d.Mode), Dmarc: p.DMARC, Netblocks: p.Netblocks,
		Services: p.Services, Nspf: p.NSPF, Dkim: dkim, Bimi: p.BIMI,
	})
	if err != nil {
		return fmt.Errorf("compile edge row: %w", err)
	}
	if err := q.NotifyEdge(ctx, strconv.FormatInt(serial, 10)); err != nil {
		return fmt.Errorf("notify edge: %w", err)
	}
	return nil
}
