package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dnscheck"
	"github.com/rampartmail/rampart/internal/domain/domaindb"
	"github.com/rampartmail/rampart/internal/spfanswer"
)

// What Rampart sees of a domain's own DNS: the SPF record at the apex
// (classified by ClassifySPF) and whether _dmarc and _domainkey are handed
// to the edge. Looked up through the configured resolver (internal/dnscheck,
// as the ownership proofs are) by the job domain.check_published about
// hourly for every verified domain, and on request (checkDnsSetup). A
// lookup that gets no answer (timeout, SERVFAIL) leaves what an earlier
// check found, says so in Problem and brings the next check forward.

// Observed is what the last check saw of a domain's own DNS.
type Observed struct {
	// SPF classifies the apex SPF record; SPFUnknown before any answer.
	SPF SPFStatus
	// SPFRecord is the SPF record seen (with SPFMultiple, every one, one
	// per line), in presentation form; nil when none was seen.
	SPFRecord *string
	// DMARCDelegated: _dmarc.<name> is delegated to the edge's name
	// servers or a CNAME to <name>._dmarc.<edge zone>. DKIMDelegated:
	// _domainkey.<name> is delegated to the edge's name servers. Nil while
	// unknown.
	DMARCDelegated *bool
	DKIMDelegated  *bool
	// CheckedAt is when the last check ran; nil before the first.
	CheckedAt *time.Time
	// Problem says what the last check could not look up ("" when every
	// lookup got an answer).
	Problem string
	// Actions say what the customer should change, in sentences; set by
	// [Service.DNSSetup].
	Actions []string
}

func observedFromRow(r domaindb.Domain) Observed {
	return Observed{
		SPF: SPFStatus(r.SpfPublished), SPFRecord: r.SpfPublishedRecord,
		DMARCDelegated: r.DmarcDelegated, DKIMDelegated: r.DkimDelegated,
		CheckedAt: r.DnsCheckedAt, Problem: r.DnsCheckProblem,
	}
}

// look is what one look at a domain's own DNS found.
type look struct {
	at time.Time
	// spfKnown: the apex TXT lookup got an answer; spf and spfRecord say
	// what it was, spfEdge lists the SPF records naming the edge zone.
	spfKnown  bool
	spf       SPFStatus
	spfRecord *string
	spfEdge   []string
	// dmarc and dkim: nil when the lookup got no answer.
	dmarc, dkim *delegation
	problems    []string
}

// delegation is what an NS lookup at _dmarc or _domainkey found.
type delegation struct {
	// delegated: handed to the edge (every NS record names an edge name
	// server, or, where allowed, a CNAME to the edge's name for it).
	delegated bool
	// edge describes how the name still points at the edge ("" when it
	// does not), e.g. "NS ns1.edge.example".
	edge string
}

// lookDNS looks up, concurrently and within ctx, the apex TXT records of
// name and the NS records of _dmarc.<name> and _domainkey.<name>.
func (s *Service) lookDNS(ctx context.Context, name string) look {
	l := look{at: time.Now()}
	var (
		wg                sync.WaitGroup
		txt, dmarc, dkim  dnscheck.Result
		dmarcName, dkName = "_dmarc." + name, "_domainkey." + name
	)
	wg.Go(func() { txt = s.cfg.Checker.TXT(ctx, name) })
	wg.Go(func() { dmarc = s.cfg.Checker.Lookup(ctx, dmarcName, dns.TypeNS) })
	wg.Go(func() { dkim = s.cfg.Checker.Lookup(ctx, dkName, dns.TypeNS) })
	wg.Wait()

	zone := strings.ToLower(strings.TrimSuffix(s.cfg.EdgeZone, "."))
	if txt.Status.Definitive() {
		l.spfKnown = true
		txts := txt.TXT()
		l.spf = ClassifySPF(name, zone, txts)
		records := SPFRecords(txts)
		shown := make([]string, len(records))
		for i, r := range records {
			shown[i] = printable(r)
			if shapeOf(r, name, zone).edge {
				l.spfEdge = append(l.spfEdge, shown[i])
			}
		}
		if len(shown) > 0 {
			rec := strings.Join(shown, "\n")
			l.spfRecord = &rec
		}
	} else {
		l.problems = append(l.problems, txt.Describe())
	}
	// A CNAME at _dmarc may stand in for the delegation.
	l.dmarc = s.delegationOf(dmarc, name+"._dmarc."+zone, zone)
	if l.dmarc == nil {
		l.problems = append(l.problems, dmarc.Describe())
	}
	l.dkim = s.delegationOf(dkim, "", zone)
	if l.dkim == nil {
		l.problems = append(l.problems, dkim.Describe())
	}
	return l
}

// delegationOf reads an NS lookup: delegated when every NS record names an
// edge name server, or when the name is a CNAME to cname (if not ""). Nil
// when the lookup got no answer.
func (s *Service) delegationOf(r dnscheck.Result, cname, zone string) *delegation {
	if len(r.Chain) > 0 { // a CNAME, whatever its target answered
		target := strings.ToLower(r.Chain[0])
		d := &delegation{delegated: cname != "" && target == cname}
		if inZone(target, zone) {
			d.edge = "CNAME " + target
		}
		return d
	}
	if !r.Status.Definitive() {
		return nil
	}
	d := &delegation{}
	var edge []string
	for _, rr := range r.Records {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		host := strings.ToLower(strings.TrimSuffix(ns.Ns, "."))
		if s.edgeNameServer(host) {
			edge = append(edge, host)
		}
	}
	d.delegated = len(edge) > 0 && len(edge) == len(r.Records)
	if len(edge) > 0 {
		d.edge = "NS " + strings.Join(edge, ", ")
	}
	return d
}

func (s *Service) edgeNameServer(host string) bool {
	for _, n := range s.cfg.NameServers {
		if strings.EqualFold(strings.TrimSuffix(n, "."), host) {
			return true
		}
	}
	return false
}

// Recheck intervals: about hourly after a check where every lookup got an
// answer (spread over five minutes by the domain's id), and after a
// missed answer a minute, doubling up to the hour.
const (
	recheckEvery   = time.Hour
	recheckSpread  = 5 * time.Minute
	recheckFailMin = time.Minute
)

// nextCheck is when the job looks again at a domain after a check at at.
func nextCheck(row domaindb.Domain, l look) time.Time {
	if len(l.problems) == 0 {
		spread := time.Duration(int(row.ID[15])) * recheckSpread / 256
		return l.at.Add(recheckEvery + spread)
	}
	if row.DnsCheckFailures >= 6 {
		return l.at.Add(recheckEvery)
	}
	return l.at.Add(min(recheckFailMin<<row.DnsCheckFailures, recheckEvery))
}

// record stores a look at a domain's DNS.
func (s *Service) record(ctx context.Context, row domaindb.Domain, l look) (domaindb.Domain, error) {
	p := domaindb.RecordDNSCheckParams{
		ID: row.ID, CheckedAt: &l.at, Problem: strings.Join(l.problems, "; "), NextAt: nextCheck(row, l),
		SpfKnown: l.spfKnown, SpfPublished: string(l.spf), SpfPublishedRecord: l.spfRecord,
		DmarcKnown: l.dmarc != nil, DkimKnown: l.dkim != nil,
	}
	if !l.spfKnown {
		p.SpfPublished = string(SPFUnknown)
	}
	if l.dmarc != nil {
		p.DmarcDelegated = &l.dmarc.delegated
	}
	if l.dkim != nil {
		p.DkimDelegated = &l.dkim.delegated
	}
	out, err := domaindb.New(s.pool).RecordDNSCheck(ctx, p)
	if errors.Is(err, pgx.ErrNoRows) {
		return row, notFound(row.Name) // removed meanwhile
	}
	if err != nil {
		return row, fmt.Errorf("record DNS check of %s: %w", row.Name, err)
	}
	return out, nil
}

// CheckDNSSetup looks at the domain's own DNS now, through the configured
// resolver, records what it found and returns the set-up with it. The
// principal must hold [access.ViewReports] on the domain, as for reading
// the set-up: the check changes nothing the customer configured. CONFLICT
// when this server does not check DNS.
func (s *Service) CheckDNSSetup(ctx context.Context, name string) (DNSSetup, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return DNSSetup{}, notFound(name)
	}
	row, err := s.claim(ctx, domaindb.New(s.pool), n, access.ViewReports, name)
	if err != nil {
		return DNSSetup{}, err
	}
	if s.cfg.Checker == nil {
		return DNSSetup{}, apperr.Conflictf("this server does not check DNS (RAMPART_DNS_RESOLVER is off)")
	}
	lctx, cancel := context.WithTimeout(ctx, checkTimeout)
	l := s.lookDNS(lctx, row.Name)
	cancel()
	if row, err = s.record(ctx, row, l); err != nil {
		return DNSSetup{}, err
	}
	return s.DNSSetup(ctx, fromRow(row))
}

// PublishedRun is what one run of [Service.CheckPublished] did.
type PublishedRun struct {
	Checked, Problems int
}

// publishedBatch is how many domains one step of the job checks,
// publishedConcurrency how many at once.
const (
	publishedBatch       = 40
	publishedConcurrency = 8
)

// CheckPublished is the periodic job's work, without a principal: it looks
// at the own DNS of the verified domains whose next check is due, in
// batches, starting no batch after until (each look is bounded by the
// lookup timeout, so a batch ends within five of them).
func (s *Service) CheckPublished(ctx context.Context, until time.Time) (PublishedRun, error) {
	var run PublishedRun
	if s.cfg.Checker == nil {
		return run, nil
	}
	q := domaindb.New(s.pool)
	for time.Now().Before(until) {
		due, err := q.DueDNSChecks(ctx, publishedBatch)
		if err != nil {
			return run, fmt.Errorf("load due DNS checks: %w", err)
		}
		var (
			mu   sync.Mutex
			errs []error
			wg   sync.WaitGroup
			sem  = make(chan struct{}, publishedConcurrency)
		)
		for _, row := range due {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				lctx, cancel := context.WithTimeout(ctx, checkTimeout)
				l := s.lookDNS(lctx, row.Name)
				cancel()
				_, err := s.record(ctx, row, l)
				mu.Lock()
				defer mu.Unlock()
				run.Checked++
				if len(l.problems) > 0 {
					run.Problems++
				}
				if err != nil && !errors.Is(err, apperr.ErrNotFound) {
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return run, err
		}
		if len(due) < publishedBatch {
			break
		}
	}
	return run, nil
}

// DefaultRemovalGrace is how long, by default, the edge keeps answering a
// removed domain's SPF names with a record that authorizes nothing.
const DefaultRemovalGrace = 30 * 24 * time.Hour

// removalCheckTimeout bounds the DNS look made when a domain is removed:
// the removal never waits longer, whatever the resolver does.
const removalCheckTimeout = 3 * time.Second

// removalWarnings looks (within removalCheckTimeout) at what of the
// domain's own DNS still points at the edge, and says what happens to it.
func (s *Service) removalWarnings(ctx context.Context, name string) []string {
	grace := s.cfg.RemovalGrace
	if grace <= 0 {
		grace = DefaultRemovalGrace
	}
	until := time.Now().Add(grace).UTC().Format("2006-01-02")
	spfFate := fmt.Sprintf("For %s (until %s) the edge answers its SPF names with a record that authorizes nothing (neutral), so that your SPF record does not become an error; after that the names vanish and an SPF record still naming the edge is a permerror at every receiver, failing SPF for all your mail.", graceText(grace), until)
	if s.cfg.Checker == nil {
		return []string{"This server does not check DNS, so it cannot tell whether " + name + " still points at Rampart's edge (" + s.cfg.EdgeZone + "): remove the edge from its SPF record and the _dmarc and _domainkey delegations. " + spfFate}
	}
	ctx, cancel := context.WithTimeout(ctx, removalCheckTimeout)
	defer cancel()
	l := s.lookDNS(ctx, name)
	var out []string
	switch {
	case !l.spfKnown:
		out = append(out, "Could not look up the SPF record of "+name+" ("+l.problems[0]+"): if it still names "+s.cfg.EdgeZone+", replace it. "+spfFate)
	case len(l.spfEdge) > 0:
		out = append(out, fmt.Sprintf("The SPF record at %s still points at Rampart's edge (%s): replace it with your own. %s", name, strings.Join(l.spfEdge, " | "), spfFate))
	}
	for _, d := range []struct {
		name, what string
		del        *delegation
	}{
		{"_dmarc." + name, "the edge no longer serves the domain's DMARC record there: publish your own DMARC record at _dmarc." + name + " in place of the delegation", l.dmarc},
		{"_domainkey." + name, "the edge no longer serves the domain's DKIM keys there, so mail signed with them fails DKIM: remove the delegation and publish your own keys", l.dkim},
	} {
		switch {
		case d.del == nil:
			out = append(out, "Could not look up whether "+d.name+" still points at Rampart's edge (the DNS lookup got no answer): if it does, "+d.what+".")
		case d.del.edge != "":
			out = append(out, d.name+" still points at Rampart's edge ("+d.del.edge+"): "+d.what+".")
		}
	}
	return out
}

// graceText says a grace period in days (or hours, under two days).
func graceText(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Round(time.Hour)/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d.Round(24*time.Hour)/(24*time.Hour)))
}

// actions says what the customer should change in their DNS, from the last
// check and the set-up the edge needs.
func (s *Service) actions(d Domain, setup DNSSetup) []string {
	o := d.Observed
	name, zone := d.Name, strings.TrimSuffix(s.cfg.EdgeZone, ".")
	want := "`" + setup.SPF.Value + "`"
	out := []string{}
	if o.SPF == SPFUnknown || o.SPF == "" {
		what := "Rampart has not seen the SPF record at " + name + " yet"
		if s.cfg.Checker == nil {
			what = "This server does not check DNS"
		}
		out = append(out, what+": publish exactly one SPF record there, "+want+".")
	}
	record := ""
	if o.SPFRecord != nil {
		record = *o.SPFRecord
	}
	var sh spfShape
	if o.SPF == SPFLegacy || o.SPF == SPFOther {
		sh = shapeOf(record, name, zone)
	}
	switch o.SPF {
	case SPFLegacy:
		out = append(out, "Replace the SPF record at "+name+" with "+want+". The old form (`include:"+spfanswer.LegacyTarget(zone)+"`) puts the sending server's HELO name into a DNS query: an unusual HELO (empty, ending in a dot, an address literal, too long) makes some receivers' SPF libraries return an error even for your own servers, and the edge cannot make a BLOCKED domain fail through it. The new form tries your netblocks and senders before the HELO is used, and lets the edge decide the final result. The old form keeps working until you change it.")
	case SPFMultiple:
		merge := "Merge the SPF records at " + name + " into one: with more than one, every receiver returns a permanent error (permerror) and SPF fails for all its mail. Publish " + want
		if d.Mode != Blocked {
			merge += ", with any mechanisms of your own (ip4:, include:) placed before redirect= and no all term"
		}
		out = append(out, merge+".")
	case SPFMissing:
		out = append(out, "Publish the SPF record "+want+" as a TXT record at "+name+".")
	case SPFOther:
		switch {
		case d.Mode == Blocked && sh.onlyFail:
			// What a blocked domain's set-up asks for.
		case d.Mode == Blocked:
			out = append(out, "Replace the SPF record at "+name+" with "+want+": the domain is BLOCKED and sends no mail.")
		case sh.current && sh.rspf && sh.all:
			out = append(out, "Remove the all term from the SPF record at "+name+": with it receivers ignore redirect=, and the edge cannot decide the result. The record should read "+want+".")
		case sh.edge:
			out = append(out, "The SPF record at "+name+" names the edge but not in the form it needs: replace it with "+want+" (mechanisms of your own may stay, before redirect=, without an all term).")
		default:
			out = append(out, "The SPF record at "+name+" does not use Rampart's edge, so the netblocks and senders set in Rampart do not reach receivers: replace it with "+want+" (mechanisms of your own may stay, before redirect=, without an all term).")
		}
	}
	if o.DMARCDelegated != nil && !*o.DMARCDelegated {
		out = append(out, "Delegate _dmarc."+name+" to the edge (NS "+nsList(setup.DMARC)+") or publish a CNAME to "+name+"._dmarc."+zone+": until then receivers do not see the DMARC policy set in Rampart and aggregate reports do not reach it.")
	}
	if o.DKIMDelegated != nil && !*o.DKIMDelegated && len(setup.DKIM.Served) > 0 {
		act := "Delegate _domainkey." + name + " to the edge (NS " + nsList(setup.DKIM) + "): until then receivers do not find the DKIM keys hosted in Rampart."
		if len(setup.DKIM.Warnings) > 0 {
			act += " First import the keys of the selectors that sign your mail and are not in Rampart (dkim.warnings), or that mail fails DKIM."
		}
		out = append(out, act)
	}
	return out
}

func nsList(d Delegation) string {
	var names []string
	for _, r := range d.NameServers {
		names = append(names, strings.TrimSuffix(r.Value, "."))
	}
	return strings.Join(names, ", ")
}
