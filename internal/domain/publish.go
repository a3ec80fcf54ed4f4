package domain

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dmarc"
	"github.com/rampartmail/rampart/internal/domain/domaindb"
	"github.com/rampartmail/rampart/internal/spfanswer"
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
	// NSPF are the legacy form's records of netblocks and pinned includes:
	// the first at <name>._nspf.<edge zone>, the k-th (from 2) at
	// _<k>.<name>._nspf.<edge zone>, each one 512-octet answer.
	NSPF []string
	// RSPF is the record at <name>._rspf.<edge zone>, the current form's
	// redirect target.
	RSPF string
	// HELOStep says RSPF holds the HELO step: an enabled sender may be
	// recognised by its HELO name and handed over to its own include.
	// HELOLabels is the N of its %{hN}.
	HELOStep   bool
	HELOLabels int
	// Lookups is the worst cost of the current form, in DNS-querying
	// terms (RFC 7208 §4.6.4); LegacyLookups that of the legacy form.
	Lookups, LegacyLookups int
	// Unknown are the enabled senders whose includes were never resolved,
	// so that their cost is not known: Lookups and LegacyLookups count each
	// at one term per include (the includes themselves), a lower bound,
	// and no change may be judged by them while any is listed.
	Unknown []UnknownSender

	DKIM []DKIMRecord
	// BIMI is the TXT record at default._bimi.<name>; "" while withheld.
	BIMI string
	// BIMIWithheld says why BIMI is not served, when it is not.
	BIMIWithheld string
}

// UnknownSender is an enabled sender whose includes' cost is not known.
type UnknownSender struct {
	Slug, Name string
	Includes   []string
	// Error is why its includes last failed to resolve; "" if they were
	// never tried.
	Error string
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
	pinLookups := 0
	for i, pin := range pins {
		includes[i] = pin.Include
		pinLookups += int(pin.Lookups)
	}
	heloLabels, heloLookups, senderLookups := 0, 0, 0
	for _, sd := range senders {
		// While unknown, at least the includes themselves: one term each
		// (and one for a service without any, as before it was measured).
		cost := max(1, len(sd.SpfIncludes))
		switch {
		case sd.SpfLookups != nil:
			cost = int(*sd.SpfLookups)
		case len(sd.SpfIncludes) > 0:
			p.Unknown = append(p.Unknown, UnknownSender{Slug: sd.Slug, Name: sd.Name, Includes: sd.SpfIncludes, Error: sd.ResolveError})
		}
		senderLookups = max(senderLookups, cost)
		if len(sd.SpfIncludes) == 0 {
			continue
		}
		for _, suf := range sd.HeloSuffixes {
			if suf = spfanswer.NormalizeSuffix(suf); suf != "" {
				heloLabels = max(heloLabels, strings.Count(suf, ".")+1)
				heloLookups = max(heloLookups, cost)
			}
		}
	}
	heloStep := heloLabels > 0
	zone := strings.TrimSuffix(s.cfg.EdgeZone, ".")
	p.NSPF = NSPFRecords(d.Mode, d.Name, zone, p.Netblocks, includes)
	p.RSPF = RSPFRecord(d.Mode, d.Name, zone, includes, heloLabels)
	p.HELOStep = heloStep && d.Mode != Blocked
	p.HELOLabels = heloLabels
	// The current form: the include and the redirect, the pins, and the
	// HELO step with the costliest sender it may hand over to. The legacy
	// form: its two includes, the costliest sender, the pins, and one
	// include per further _nspf record.
	p.Lookups = 2 + pinLookups
	if heloStep {
		p.Lookups += 1 + heloLookups
	}
	p.LegacyLookups = 2 + senderLookups + pinLookups + len(p.NSPF) - 1
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

// NSPFRecords composes the legacy form's _nspf records: the domain's
// netblocks and pinned includes, literally, for receivers and vendor set-up
// checkers that do not expand macros. They always exist for a hosted
// domain, because an include of a name without an SPF record is a permerror
// for the whole record. Each record is one answer of at most
// spfanswer.MaxResponse octets: when the terms do not fit in one, each
// record but the last ends in an include of the next, at
// _<k>.<name>._nspf.<zone>.
func NSPFRecords(mode Mode, name, zone string, netblocks []netip.Prefix, includes []string) []string {
	if mode == Blocked {
		return []string{spfanswer.FailRecord}
	}
	terms := make([]string, 0, len(netblocks)+len(includes))
	for _, n := range netblocks {
		t := "ip4:"
		if !n.Addr().Is4() {
			t = "ip6:"
		}
		if n.IsSingleIP() {
			t += n.Addr().String()
		} else {
			t += n.String()
		}
		terms = append(terms, t)
	}
	for _, inc := range includes {
		terms = append(terms, "include:"+inc)
	}
	var records []string
	for k := 1; ; k++ {
		owner := NSPFName(name, zone, k)
		next := "include:" + NSPFName(name, zone, k+1)
		var b strings.Builder
		b.WriteString("v=spf1")
		n := 0
		for n < len(terms) {
			last := n == len(terms)-1
			tail := " -all"
			if !last {
				// Room for the chain to the next record, should the
				// terms after this one not fit.
				tail = " " + next + " -all"
			}
			if spfanswer.ResponseSize(owner, b.String()+" "+terms[n]+tail) > spfanswer.MaxResponse && n > 0 {
				break
			}
			b.WriteString(" " + terms[n])
			n++
		}
		terms = terms[n:]
		if len(terms) == 0 {
			b.WriteString(" -all")
			return append(records, b.String())
		}
		b.WriteString(" " + next + " -all")
		records = append(records, b.String())
	}
}

// NSPFName is the name of the k-th _nspf record of name (from 1).
func NSPFName(name, zone string, k int) string { return spfanswer.NSPFName(name, zone, k) }

// RSPFName is the current form's redirect target for name.
func RSPFName(name, zone string) string { return spfanswer.RSPFName(name, zone) }

// RSPFRecord composes the record at <name>._rspf.<zone>, where the
// receiver's evaluation ends when the address was none of the domain's:
// "v=spf1 -all" for a blocked domain; else the pinned includes, the HELO
// step and a soft fail. The HELO step, present when heloLabels > 0 (an
// enabled sender may be recognised by its HELO), names the rightmost
// heloLabels labels of the HELO, %{hN}, the most labels of the senders'
// HELO suffixes: enough to match every suffix, and without the address, so
// that a resolver caches one answer for every host of a sender, and a long
// HELO is cut short by the macro rather than the 253-octet rule.
func RSPFRecord(mode Mode, name, zone string, includes []string, heloLabels int) string {
	if mode == Blocked {
		return spfanswer.FailRecord
	}
	var b strings.Builder
	b.WriteString("v=spf1")
	for _, inc := range includes {
		b.WriteString(" include:" + inc)
	}
	if heloLabels > 0 {
		b.WriteString(" include:" + spfanswer.HELOStepTarget(heloLabels, name, zone))
	}
	b.WriteString(" ~all")
	return b.String()
}

// RemovedSPF is the record at a removed domain's _nspf and _rspf names
// during its grace period: it authorises nothing and is no error.
const RemovedSPF = spfanswer.RemovedRecord

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
	if err := p.fits(d.Name, s.cfg.EdgeZone); err != nil {
		return err
	}
	q := domaindb.New(tx)
	serial, err := q.UpsertEdgeDomain(ctx, domaindb.UpsertEdgeDomainParams{
		Name: d.Name, Mode: string(d.Mode), Dmarc: p.DMARC, Netblocks: p.Netblocks,
		Services: p.Services, Nspf: strings.Join(p.NSPF, "\n"), Rspf: p.RSPF, Dkim: dkim, Bimi: p.BIMI,
	})
	if err != nil {
		return fmt.Errorf("compile edge row: %w", err)
	}
	if err := q.NotifyEdge(ctx, strconv.FormatInt(serial, 10)); err != nil {
		return fmt.Errorf("notify edge: %w", err)
	}
	return nil
}

// fits refuses what the edge could not answer within spfanswer.MaxResponse
// octets: the redirect target grows with the pinned includes.
func (p Published) fits(name, zone string) error {
	zone = strings.TrimSuffix(zone, ".")
	if n := spfanswer.ResponseSize(RSPFName(name, zone), p.RSPF); n > spfanswer.MaxResponse {
		return apperr.Invalid("include", "%s's SPF answer at %s would take %d octets, over the %d that fit in one UDP answer (RFC 7208 §3.4): remove a pinned include or use a shorter one", name, RSPFName(name, zone), n, spfanswer.MaxResponse)
	}
	return nil
}

// EdgeRun is what one MaintainEdge run did.
type EdgeRun struct {
	// Compiled rows were served but compiled before the current form
	// existed; Expired removed domains reached the end of their grace.
	Compiled, Expired int
	// Done is false when the run stopped at its deadline with work left.
	Done bool
}

// maintainBatch bounds the rows one step of MaintainEdge reads.
const maintainBatch = 100

// MaintainEdge is system work for a job: it compiles the served rows
// written before the current SPF form existed (their _rspf record is
// missing), and tombstones removed domains whose grace period is over, in
// steps that commit on their own, starting none after deadline (zero: no
// deadline).
func (s *Service) MaintainEdge(ctx context.Context, deadline time.Time) (EdgeRun, error) {
	var run EdgeRun
	grace := cmp.Or(s.cfg.RemovalGrace, DefaultRemovalGrace)
	more := func() bool { return deadline.IsZero() || time.Now().Before(deadline) }
	for more() {
		ids, err := domaindb.New(s.pool).UncompiledEdgeDomains(ctx, maintainBatch)
		if err != nil {
			return run, fmt.Errorf("list uncompiled edge rows: %w", err)
		}
		for _, id := range ids {
			if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.Republish(ctx, tx, id) }); err != nil {
				return run, err
			}
			run.Compiled++
		}
		if len(ids) < maintainBatch {
			break
		}
	}
	for more() {
		names, err := domaindb.New(s.pool).ExpiredRemovedEdgeDomains(ctx, domaindb.ExpiredRemovedEdgeDomainsParams{
			Before: time.Now().Add(-grace), Max: maintainBatch,
		})
		if err != nil {
			return run, fmt.Errorf("list removed edge rows: %w", err)
		}
		for _, name := range names {
			err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				q := domaindb.New(tx)
				serial, err := q.TombstoneRemovedEdgeDomain(ctx, name)
				if errors.Is(err, pgx.ErrNoRows) {
					return nil // hosted again meanwhile
				}
				if err != nil {
					return fmt.Errorf("tombstone removed edge row: %w", err)
				}
				run.Expired++
				return q.NotifyEdge(ctx, strconv.FormatInt(serial, 10))
			})
			if err != nil {
				return run, err
			}
		}
		if len(names) < maintainBatch {
			run.Done = true
			return run, nil
		}
	}
	return run, nil
}

// fitsEdge refuses a name whose SPF names at the edge would pass 253 octets
// for an IPv6 sender: a receiver would cut the address off the current
// form's first include (RFC 7208 §7.3) and no address could pass.
func fitsEdge(name, zone string) error {
	zone = strings.TrimSuffix(zone, ".")
	if zone == "" {
		return nil
	}
	ip := netip.IPv6Unspecified()
	if _, truncated, ok := spfanswer.ReceiveCurrent(ip, name, zone); !ok || truncated {
		longest := 253 - len(spfanswer.MacroIP(ip)+"."+spfanswer.IPLabel+"."+"."+spfanswer.SPFLabel+"."+zone)
		return apperr.Invalid("name", "%q is too long to host: the edge's SPF name for an IPv6 sender, %%{i}._ip.%s._spf.%s, would pass 253 octets; with this edge zone a domain has at most %d", name, name, zone, longest)
	}
	return nil
}
