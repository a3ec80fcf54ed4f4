package spf

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Default limits of RFC 7208 §4.6.4.
const (
	DefaultMaxLookups     = 10
	DefaultMaxVoidLookups = 2
	// DefaultTimeout is the time allowed for one evaluation; RFC 7208
	// §4.6.4 asks for a limit of at least 20 seconds.
	DefaultTimeout = 20 * time.Second
	// maxNames is the number of MX or PTR names looked up per mechanism
	// or macro (RFC 7208 §4.6.4).
	maxNames = 10
)

// Checker evaluates SPF records: it implements check_host() of RFC 7208
// §4. The zero value is not usable: Resolver must be set. A Checker holds no
// per-check state, so one Checker may serve concurrent checks if its
// Resolver may.
type Checker struct {
	// Resolver is the DNS to query.
	Resolver Resolver
	// Receiver is the domain of the receiving host, %{r} in explanations.
	// Empty means "unknown".
	Receiver string
	// MaxLookups is the number of DNS-querying terms allowed in one check;
	// zero means DefaultMaxLookups (10).
	MaxLookups int
	// MaxVoidLookups is the number of void lookups allowed in one check;
	// zero means DefaultMaxVoidLookups (2), negative means no limit.
	MaxVoidLookups int
	// Timeout bounds one check; zero means DefaultTimeout. Running out of
	// time gives temperror.
	Timeout time.Duration
	// Trace asks for Outcome.Trace to be filled.
	Trace bool
	// Now gives the time for %{t}; nil means time.Now.
	Now func() time.Time
}

// Outcome is what a check found.
type Outcome struct {
	// Result is the SPF result.
	Result Result
	// Mechanism is the mechanism that matched, as written by
	// [Mechanism.String], or "" if none did (the result is then the
	// default neutral, or none, or an error).
	Mechanism string
	// Domain is the domain whose record decided the result: the one that
	// holds Mechanism, or the last one evaluated.
	Domain string
	// Explanation is the expanded exp= text for a fail result, or "" when
	// the record has no usable explanation (RFC 7208 §6.2). The caller may
	// then use a default explanation of its own.
	Explanation string
	// Err says why the result is temperror or permerror; it is nil
	// otherwise. It wraps a [*SyntaxError] or one of the sentinel errors of
	// this package, or a resolver error.
	Err error
	// Lookups is the number of DNS-querying terms evaluated, VoidLookups the
	// number of those lookups that found nothing.
	Lookups, VoidLookups int
	// Trace lists what was looked up and evaluated, in order, when
	// Checker.Trace is set.
	Trace []Step
}

// Step is one line of an evaluation trace.
type Step struct {
	// Depth is 0 for the domain checked, and one more for each include or
	// redirect followed to get to Domain.
	Depth int
	// Domain is the domain whose record is being evaluated.
	Domain string
	// Term is the mechanism or modifier evaluated, as written in the record;
	// "" for the lookup of the record itself.
	Term string
	// Target is the domain name the term queried, after macro expansion;
	// "" if it queried none.
	Target string
	// Match reports whether the mechanism matched.
	Match bool
	// Result is the result the step produced: for a matching mechanism the
	// result of its qualifier, for include and redirect the result of the
	// record they point at, for errors temperror or permerror, for the
	// record lookup none when there is no record. It is None otherwise.
	Result Result
	// Detail says what was found, in words.
	Detail string
}

// Check checks the MAIL FROM identity of a message (RFC 7208 §2.4): the
// domain of mailFrom, or the HELO identity with sender postmaster@helo if
// mailFrom is empty (a bounce). A mailFrom without a local-part, "@domain",
// gets the local-part "postmaster".
func (c *Checker) Check(ctx context.Context, ip netip.Addr, helo, mailFrom string) Outcome {
	if mailFrom == "" {
		return c.CheckHost(ctx, ip, helo, "postmaster@"+helo, helo)
	}
	_, domain := splitSender(mailFrom)
	return c.CheckHost(ctx, ip, domain, mailFrom, helo)
}

// CheckHost is check_host(<ip>, <domain>, <sender>) of RFC 7208 §4, with
// the HELO domain for the %{h} macro. The sender is normalised as in
// §4.3: without a local-part it becomes postmaster@<domain part>.
func (c *Checker) CheckHost(ctx context.Context, ip netip.Addr, domain, sender, helo string) Outcome {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	local, senderDomain := splitSender(sender)
	e := &evaluation{
		c:      c,
		ctx:    ctx,
		ip:     ip.Unmap(), // RFC 7208 §5: IPv4-mapped addresses are IPv4
		sender: local + "@" + senderDomain,
		helo:   helo,
		trace:  c.Trace,
	}
	if c.Now != nil {
		e.now = c.Now()
	} else {
		e.now = time.Now()
	}
	e.maxLookups = c.MaxLookups
	if e.maxLookups <= 0 {
		e.maxLookups = DefaultMaxLookups
	}
	e.maxVoids = c.MaxVoidLookups
	if e.maxVoids == 0 {
		e.maxVoids = DefaultMaxVoidLookups
	}

	domain = strings.TrimSuffix(domain, ".")
	var hr hostResult
	if !validInitialDomain(domain) {
		// RFC 7208 §4.3: a malformed or single-label domain gives none.
		hr = hostResult{result: None, domain: domain}
		e.step(Step{Domain: domain, Result: None, Detail: "not a valid multi-label domain name"})
	} else {
		hr = e.checkHost(domain, 0)
	}
	out := Outcome{
		Result:      hr.result,
		Mechanism:   hr.mech,
		Domain:      hr.domain,
		Err:         hr.err,
		Lookups:     e.lookups,
		VoidLookups: e.voids,
	}
	if hr.result == Fail && hr.exp != "" {
		out.Explanation = e.explain(hr.exp, hr.domain)
	}
	e.step(Step{Domain: out.Domain, Result: out.Result, Detail: "result " + out.Result.String()})
	out.Trace = e.steps
	return out
}

// validInitialDomain reports whether domain can be checked at all (RFC
// 7208 §4.3): a well-formed multi-label domain name, not an address
// literal.
func validInitialDomain(domain string) bool {
	if !validDomain(domain) || !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") {
		return false
	}
	_, err := netip.ParseAddr(domain)
	return err != nil
}

// evaluation is the state of one check.
type evaluation struct {
	c                    *Checker
	ctx                  context.Context
	ip                   netip.Addr
	sender, helo         string
	now                  time.Time
	maxLookups, maxVoids int
	lookups, voids       int

	trace bool
	steps []Step

	ptrDone  bool
	ptrNames []string
	ptrErr   error

	validatedFor, validated string // %{p} cache, for one <domain>
}

// hostResult is the result of check_host() for one domain.
type hostResult struct {
	result Result
	err    error
	mech   string // the mechanism that matched
	domain string // the domain of the record that decided
	exp    string // the exp= of that record, for a fail
}

func (e *evaluation) step(s Step) {
	if e.trace {
		e.steps = append(e.steps, s)
	}
}

func (e *evaluation) family() string {
	if e.ip.Is4() {
		return "ip4"
	}
	return "ip6"
}

// checkHost evaluates the SPF record of domain (RFC 7208 §4.4 to §4.7).
func (e *evaluation) checkHost(domain string, depth int) hostResult {
	fail := func(r Result, term string, err error) hostResult {
		e.step(Step{Depth: depth, Domain: domain, Term: term, Result: r, Detail: err.Error()})
		return hostResult{result: r, err: err, domain: domain}
	}

	if !validDomain(domain) {
		e.step(Step{Depth: depth, Domain: domain, Result: None, Detail: "not a valid domain name"})
		return hostResult{result: None, domain: domain}
	}
	rec, txt, res, err := e.fetchRecord(domain)
	if rec == nil {
		if err != nil {
			return fail(res, "", err)
		}
		e.step(Step{Depth: depth, Domain: domain, Result: None, Detail: "no SPF record"})
		return hostResult{result: None, domain: domain}
	}
	e.step(Step{Depth: depth, Domain: domain, Detail: "record: " + txt})

	for _, m := range rec.Mechanisms {
		term := m.String()
		if m.Kind.QueriesDNS() {
			if err := e.countLookup(); err != nil {
				return fail(PermError, term, fmt.Errorf("%s: %w", term, err))
			}
		}
		st := Step{Depth: depth, Domain: domain, Term: term}
		match, res, err := e.match(m, domain, depth, &st)
		if err != nil {
			st.Result, st.Detail = res, err.Error()
			e.step(st)
			return hostResult{result: res, err: fmt.Errorf("%s: %w", term, err), domain: domain}
		}
		if !match {
			e.step(st)
			continue
		}
		st.Match = true
		st.Result = m.Qualifier.Result()
		e.step(st)
		hr := hostResult{result: st.Result, mech: term, domain: domain}
		if hr.result == Fail {
			hr.exp = rec.Exp
		}
		return hr
	}

	if rec.Redirect != "" {
		term := "redirect=" + rec.Redirect
		if err := e.countLookup(); err != nil {
			return fail(PermError, term, fmt.Errorf("%s: %w", term, err))
		}
		target, err := e.expandTarget(rec.Redirect, domain)
		if err != nil || !validDomain(target) {
			return fail(PermError, term, fmt.Errorf("%s: target %q is not a valid domain name: %w", term, target, ErrNoRecord))
		}
		e.step(Step{Depth: depth, Domain: domain, Term: term, Target: target, Detail: "no mechanism matched; following redirect"})
		hr := e.checkHost(target, depth+1)
		if hr.result == None {
			return fail(PermError, term, fmt.Errorf("%s: %w at %s", term, ErrNoRecord, target))
		}
		return hr
	}
	e.step(Step{Depth: depth, Domain: domain, Result: Neutral, Detail: "no mechanism matched: default result neutral"})
	return hostResult{result: Neutral, domain: domain}
}

// fetchRecord looks up and parses the SPF record of domain. With no record
// it returns nil and a nil error; on errors the result to return.
func (e *evaluation) fetchRecord(domain string) (*Record, string, Result, error) {
	txts, err := e.c.Resolver.LookupTXT(e.ctx, domain)
	if err != nil {
		if isNotFound(err) {
			return nil, "", None, nil
		}
		return nil, "", TempError, fmt.Errorf("lookup TXT %s: %w", domain, err)
	}
	var txt string
	n := 0
	for _, t := range txts {
		if IsSPF(t) {
			txt = t
			n++
		}
	}
	switch {
	case n == 0:
		return nil, "", None, nil
	case n > 1:
		return nil, "", PermError, fmt.Errorf("%s: %w (%d records)", domain, ErrMultipleRecords, n)
	}
	rec, err := Parse(txt)
	if err != nil {
		return nil, txt, PermError, fmt.Errorf("record of %s: %w", domain, err)
	}
	return rec, txt, None, nil
}

func (e *evaluation) countLookup() error {
	e.lookups++
	if e.lookups > e.maxLookups {
		return fmt.Errorf("%w: more than %d", ErrTooManyLookups, e.maxLookups)
	}
	return nil
}

// voidNoMatch records a void lookup for a mechanism that does not match;
// past the limit it gives permerror.
func (e *evaluation) voidNoMatch() (bool, Result, error) {
	return false, PermError, e.void()
}

// void records a lookup that found nothing.
func (e *evaluation) void() error {
	e.voids++
	if e.maxVoids >= 0 && e.voids > e.maxVoids {
		return fmt.Errorf("%w: more than %d", ErrTooManyVoidLookups, e.maxVoids)
	}
	return nil
}

// lookupIP looks up the addresses of name; a not-found answer is an empty
// list.
func (e *evaluation) lookupIP(network, name string) ([]netip.Addr, error) {
	addrs, err := e.c.Resolver.LookupIP(e.ctx, network, name)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	return addrs, nil
}

// macroData returns the macro values for evaluating the record of domain.
func (e *evaluation) macroData(domain string) *MacroData {
	return &MacroData{
		Sender:   e.sender,
		Domain:   domain,
		IP:       e.ip,
		HELO:     e.helo,
		Receiver: e.c.Receiver,
		Now:      e.now,
	}
}

// expandTarget expands the domain-spec of a term; "" means the domain.
func (e *evaluation) expandTarget(spec, domain string) (string, error) {
	if spec == "" {
		return domain, nil
	}
	if !strings.Contains(spec, "%") {
		return truncateDomain(strings.TrimSuffix(spec, ".")), nil
	}
	d := e.macroData(domain)
	if usesValidated(spec) {
		d.Validated = e.validatedName(domain)
	}
	return ExpandDomainSpec(spec, d)
}

// usesValidated reports whether a macro-string uses %{p}.
func usesValidated(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' {
			if s[i+1] == '{' && s[i+2]|0x20 == 'p' {
				return true
			}
			i++ // skip the escaped character of "%%"
		}
	}
	return false
}

// match evaluates one mechanism. An error comes with the result it gives.
func (e *evaluation) match(m Mechanism, domain string, depth int, st *Step) (bool, Result, error) {
	switch m.Kind {
	case KindAll:
		st.Detail = "matches every address"
		return true, None, nil
	case KindIP4, KindIP6:
		ok := e.ip.Is4() == (m.Kind == KindIP4) && m.Prefix.Contains(e.ip)
		if e.trace {
			if ok {
				st.Detail = e.ip.String() + " is in " + m.Prefix.Masked().String()
			} else {
				st.Detail = e.ip.String() + " is not in " + m.Prefix.Masked().String()
			}
		}
		return ok, None, nil
	}

	target, err := e.expandTarget(m.Domain, domain)
	st.Target = target
	if err != nil {
		// The syntax was checked by Parse: this is an expansion too long
		// to be a domain name.
		st.Detail = "target is not a valid domain name"
		return false, None, nil
	}
	if m.Kind != KindPTR && m.Kind != KindInclude && !validDomain(target) {
		// RFC 7208 leaves this undefined (§4.8); no query can be made, so
		// treat the name as non-existent.
		st.Detail = "target is not a valid domain name"
		return false, None, nil
	}

	switch m.Kind {
	case KindInclude:
		hr := e.checkHost(target, depth+1)
		st.Result = hr.result
		switch hr.result {
		case Pass:
			st.Detail = "included record passes"
			return true, None, nil
		case Fail, SoftFail, Neutral:
			st.Detail = "included record gives " + hr.result.String() + ": no match"
			return false, None, nil
		case TempError:
			return false, TempError, hr.err
		case None:
			return false, PermError, fmt.Errorf("%w at %s", ErrNoRecord, target)
		default:
			return false, PermError, hr.err
		}

	case KindA:
		addrs, err := e.lookupIP(e.family(), target)
		if err != nil {
			return false, TempError, err
		}
		if len(addrs) == 0 {
			st.Detail = "no " + addrType(e.family()) + " records"
			return e.voidNoMatch()
		}
		if a, ok := e.matchAddrs(addrs, m); ok {
			st.Detail = "address " + a.String() + " matches"
			return true, None, nil
		}
		if e.trace {
			st.Detail = fmt.Sprintf("%d %s records, none matches", len(addrs), addrType(e.family()))
		}
		return false, None, nil

	case KindMX:
		hosts, err := e.c.Resolver.LookupMX(e.ctx, target)
		if err != nil && !isNotFound(err) {
			return false, TempError, err
		}
		if len(hosts) == 0 {
			st.Detail = "no MX records"
			return e.voidNoMatch()
		}
		if len(hosts) > maxNames {
			return false, PermError, fmt.Errorf("%w: %s has %d", ErrTooManyMX, target, len(hosts))
		}
		for _, h := range hosts {
			h = strings.TrimSuffix(h, ".")
			if h == "" || !validDomain(h) {
				continue // null MX (RFC 7505) or a broken name
			}
			addrs, err := e.lookupIP(e.family(), h)
			if err != nil {
				return false, TempError, err
			}
			if a, ok := e.matchAddrs(addrs, m); ok {
				st.Detail = "address " + a.String() + " of MX " + h + " matches"
				return true, None, nil
			}
		}
		if e.trace {
			st.Detail = fmt.Sprintf("%d MX hosts, no address matches", len(hosts))
		}
		return false, None, nil

	case KindPTR:
		names, err := e.reverseNames()
		if err != nil {
			// RFC 7208 §5.5: a DNS error makes ptr not match.
			st.Detail = "PTR lookup failed: " + err.Error()
			return false, None, nil
		}
		if len(names) == 0 {
			st.Detail = "no PTR records"
			return e.voidNoMatch()
		}
		for _, n := range names {
			if !isSubdomain(n, target) {
				continue
			}
			if e.validates(n) {
				st.Detail = "validated PTR name " + n + " is within " + target
				return true, None, nil
			}
		}
		st.Detail = "no validated PTR name within " + target
		return false, None, nil

	case KindExists:
		addrs, err := e.lookupIP("ip4", target)
		if err != nil {
			return false, TempError, err
		}
		if len(addrs) == 0 {
			st.Detail = "no A records"
			return e.voidNoMatch()
		}
		st.Detail = "A record " + addrs[0].String() + " exists"
		return true, None, nil
	}
	return false, PermError, fmt.Errorf("unknown mechanism kind %d", m.Kind)
}

func addrType(network string) string {
	if network == "ip4" {
		return "A"
	}
	return "AAAA"
}

// matchAddrs reports which of addrs, if any, covers the client address
// with the prefix lengths of an a or mx mechanism.
func (e *evaluation) matchAddrs(addrs []netip.Addr, m Mechanism) (netip.Addr, bool) {
	bits := m.Bits6()
	if e.ip.Is4() {
		bits = m.Bits4()
	}
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() != e.ip.Is4() {
			continue
		}
		p, err := a.Prefix(bits)
		if err == nil && p.Contains(e.ip) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// reverseNames returns the first 10 PTR names of the client address,
// looked up once per check.
func (e *evaluation) reverseNames() ([]string, error) {
	if !e.ptrDone {
		e.ptrDone = true
		names, err := e.c.Resolver.LookupPTR(e.ctx, e.ip)
		if err != nil && !isNotFound(err) {
			e.ptrErr = err
		}
		if len(names) > maxNames {
			names = names[:maxNames] // RFC 7208 §4.6.4: ignore the rest
		}
		for i, n := range names {
			names[i] = strings.TrimSuffix(n, ".")
		}
		e.ptrNames = names
	}
	return e.ptrNames, e.ptrErr
}

// validates reports whether name has an address record equal to the client
// address; errors count as no.
func (e *evaluation) validates(name string) bool {
	if !validDomain(name) {
		return false
	}
	addrs, err := e.lookupIP(e.family(), name)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.Unmap() == e.ip {
			return true
		}
	}
	return false
}

// isSubdomain reports whether name is domain or a subdomain of it, in any
// case.
func isSubdomain(name, domain string) bool {
	name, domain = strings.TrimSuffix(name, "."), strings.TrimSuffix(domain, ".")
	if len(name) < len(domain) {
		return false
	}
	if !strings.EqualFold(name[len(name)-len(domain):], domain) {
		return false
	}
	return len(name) == len(domain) || name[len(name)-len(domain)-1] == '.'
}

// validatedName returns %{p} for domain (RFC 7208 §7.3): a validated PTR
// name of the client, preferring domain itself, then its subdomains, then
// any; "unknown" if there is none. Its lookups do not count as terms.
func (e *evaluation) validatedName(domain string) string {
	if e.validatedFor == domain && e.validated != "" {
		return e.validated
	}
	names, _ := e.reverseNames()
	best, bestRank := "unknown", 3
	for _, n := range names {
		rank := 2
		switch {
		case strings.EqualFold(n, domain):
			rank = 0
		case isSubdomain(n, domain):
			rank = 1
		}
		if rank < bestRank && e.validates(n) {
			best, bestRank = n, rank
			if rank == 0 {
				break
			}
		}
	}
	e.validatedFor, e.validated = domain, best
	return best
}

// explain computes the explanation of a fail from the exp= domain-spec of
// the record of domain (RFC 7208 §6.2). Any problem means no explanation.
// Its lookup does not count as a term, nor as a void lookup.
func (e *evaluation) explain(spec, domain string) string {
	st := Step{Domain: domain, Term: "exp=" + spec}
	exp, why := e.explanation(spec, domain, &st)
	if why != "" {
		st.Detail = "explanation not used: " + why
	} else {
		st.Detail = "explanation: " + exp
	}
	e.step(st)
	return exp
}

func (e *evaluation) explanation(spec, domain string, st *Step) (exp, why string) {
	target, err := e.expandTarget(spec, domain)
	st.Target = target
	if err != nil || !validDomain(target) {
		return "", "not a valid domain name"
	}
	txts, err := e.c.Resolver.LookupTXT(e.ctx, target)
	switch {
	case err != nil && !isNotFound(err):
		return "", err.Error()
	case len(txts) == 0:
		return "", "no TXT record"
	case len(txts) > 1:
		return "", fmt.Sprintf("%d TXT records, not one", len(txts))
	}
	d := e.macroData(domain)
	if usesValidated(txts[0]) {
		d.Validated = e.validatedName(domain)
	}
	exp, err = ExpandExplanation(txts[0], d)
	if err != nil {
		return "", err.Error()
	}
	return exp, ""
}
