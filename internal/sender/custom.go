package sender

// An account's own sending services: beside the shipped catalog, each
// account may describe services the catalog does not know (its own
// relays, a vendor not listed yet). They live in sender_services with the
// account's id; their slug is the label the account chose, a dot and the
// account's id in hex ([AccountSlug]), so that it can never be a catalog
// slug (catalog slugs have no dot) nor another account's. A catalog sync
// writes catalog rows only. An account's service is seen, enabled,
// refreshed and used by the classifier in that account only; its include
// is resolved like a catalog one (at creation and on a change of it,
// hourly and on demand). A service may have several includes (a vendor
// that publishes one per sending platform): its ranges are their union.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/net/publicsuffix"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/sender/senderdb"
	"github.com/rampartmail/rampart/internal/spfanswer"
)

// The bounds of an account's own services.
const (
	// MaxAccountServices is how many services one account may have.
	MaxAccountServices = 100
	// MaxServiceRanges is how many address ranges one service may list.
	MaxServiceRanges = 200
	// MaxServiceNames is how many DKIM domains, DKIM selectors and HELO
	// suffixes (each) one service may list.
	MaxServiceNames = 20
	// MaxServiceLabel is the longest label (the slug's own part).
	MaxServiceLabel = 40
	// MaxServiceName is the longest name, in characters.
	MaxServiceName = 100
	// MaxServiceIncludes is how many SPF includes one service may have.
	MaxServiceIncludes = catalog.MaxSPFIncludes
	// MaxServiceCategory is the longest category.
	MaxServiceCategory = 40
	// DefaultServiceCategory is the category of a service created without one.
	DefaultServiceCategory = "other"
	// Narrowest allowed prefix lengths of a range: wider ranges would let a
	// large part of the internet send as the domains enabling the service.
	minRangeBits4 = 8
	minRangeBits6 = 16
)

// ServiceInput is an account's service as the caller gives it. The lists
// are replaced whole.
type ServiceInput struct {
	Name     string
	Category string
	// SPFIncludes are the host names the service's own SPF records are at,
	// as in include:; empty for none.
	SPFIncludes   []string
	Ranges        []string
	DKIMDomains   []string
	DKIMSelectors []string
	HELOSuffixes  []string
	SetupURL      string
}

// ServicePatch changes some of an account's service's fields; nil leaves
// a field as it is.
type ServicePatch struct {
	Name, Category, SetupURL                                      *string
	SPFIncludes, Ranges, DKIMDomains, DKIMSelectors, HELOSuffixes *[]string
}

// AccountSlug is the slug of the account's service with the given label.
func AccountSlug(accountID uuid.UUID, label string) string {
	return label + "." + hex.EncodeToString(accountID[:])
}

// ParseServiceLabel reads the account's own part of a service's slug: 1 to
// [MaxServiceLabel] lowercase letters, digits and hyphens, starting with a
// letter or digit.
func ParseServiceLabel(s string) (string, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	if !catalog.IsSlug(l) || len(l) > MaxServiceLabel {
		return "", apperr.Invalid("slug", "%q is not a service slug: 1 to %d lowercase letters, digits and hyphens, starting with a letter or digit", s, MaxServiceLabel)
	}
	return l, nil
}

// NormalizeService checks an account's service and returns it in canonical
// form: trimmed, lower case where case does not matter, ranges masked and
// sorted, lists without duplicates. Every problem is a BAD_USER_INPUT
// error naming its field.
func NormalizeService(in ServiceInput) (ServiceInput, error) {
	var out ServiceInput
	out.Name = strings.TrimSpace(in.Name)
	switch n := len([]rune(out.Name)); {
	case out.Name == "":
		return out, apperr.Invalid("name", "a service needs a name")
	case n > MaxServiceName:
		return out, apperr.Invalid("name", "a name has at most %d characters", MaxServiceName)
	case strings.ContainsFunc(out.Name, unicode.IsControl) || apperr.TextProblem(out.Name) != "":
		return out, apperr.Invalid("name", "a name is text without control characters")
	}
	out.Category = strings.ToLower(strings.TrimSpace(in.Category))
	if out.Category == "" {
		out.Category = DefaultServiceCategory
	}
	if !catalog.IsSlug(out.Category) || len(out.Category) > MaxServiceCategory {
		return out, apperr.Invalid("category", "%q is not a category: 1 to %d lowercase letters, digits and hyphens, such as transactional or marketing", in.Category, MaxServiceCategory)
	}
	if len(in.SPFIncludes) > MaxServiceIncludes {
		return out, apperr.Invalid("spfIncludes", "a service has at most %d SPF includes (got %d)", MaxServiceIncludes, len(in.SPFIncludes))
	}
	out.SPFIncludes = make([]string, 0, len(in.SPFIncludes))
	for i, raw := range in.SPFIncludes {
		inc := hostName(strings.TrimPrefix(strings.TrimSpace(raw), "include:"))
		if inc == "" {
			return out, apperr.Invalid("spfIncludes", "SPF include %d of %d is empty", i+1, len(in.SPFIncludes))
		}
		if err := catalog.CheckHostName(inc); err != nil {
			return out, apperr.Invalid("spfIncludes", "%q is not a host name: %v", raw, err)
		}
		if !slices.Contains(out.SPFIncludes, inc) {
			out.SPFIncludes = append(out.SPFIncludes, inc)
		}
	}
	if !spfanswer.HandoverFits(out.SPFIncludes...) {
		if len(out.SPFIncludes) == 1 {
			return out, apperr.Invalid("spfIncludes", "%q is too long for the edge's hand-over answer", out.SPFIncludes[0])
		}
		return out, apperr.Invalid("spfIncludes", "the includes %s are too long together for the edge's hand-over answer, which names them all in one 512-octet answer", strings.Join(out.SPFIncludes, ", "))
	}
	if len(in.Ranges) > MaxServiceRanges {
		return out, apperr.Invalid("ranges", "a service lists at most %d ranges (got %d)", MaxServiceRanges, len(in.Ranges))
	}
	prefixes := make([]netip.Prefix, 0, len(in.Ranges))
	for _, r := range in.Ranges {
		p, err := ParseCIDR(r)
		if err != nil {
			msg := err.Error()
			if e, ok := apperr.As(err); ok {
				msg = e.Message
			}
			return out, apperr.Invalid("ranges", "%s", msg)
		}
		if p.Addr().Is4() && p.Bits() < minRangeBits4 || p.Addr().Is6() && p.Bits() < minRangeBits6 {
			return out, apperr.Invalid("ranges", "%s is too wide: a service's range is at least a /%d (IPv4) or a /%d (IPv6)", p, minRangeBits4, minRangeBits6)
		}
		prefixes = append(prefixes, p)
	}
	slices.SortFunc(prefixes, comparePrefixes)
	prefixes = slices.Compact(prefixes)
	out.Ranges = make([]string, len(prefixes))
	for i, p := range prefixes {
		out.Ranges[i] = p.String()
	}
	var err error
	if out.DKIMDomains, err = names(in.DKIMDomains, "dkimDomains", "DKIM domain", func(s string) (string, error) {
		d := hostName(s)
		if err := catalog.CheckHostName(d); err != nil {
			return "", err
		}
		return d, notPublicSuffix(d)
	}); err != nil {
		return out, err
	}
	if out.DKIMSelectors, err = names(in.DKIMSelectors, "dkimSelectors", "DKIM selector", func(s string) (string, error) {
		sel := strings.ToLower(strings.TrimSpace(s))
		return sel, catalog.CheckSelector(sel)
	}); err != nil {
		return out, err
	}
	if out.HELOSuffixes, err = names(in.HELOSuffixes, "heloSuffixes", "HELO suffix", func(s string) (string, error) {
		d := hostName(strings.TrimPrefix(strings.TrimSpace(s), "."))
		if err := catalog.CheckHostName(d); err != nil {
			return "", err
		}
		return "." + d, notPublicSuffix(d)
	}); err != nil {
		return out, err
	}
	if u := strings.TrimSpace(in.SetupURL); u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || len(u) > 2000 {
			return out, apperr.Invalid("setupUrl", "%q is not an absolute http or https URL of at most 2000 characters", in.SetupURL)
		}
		out.SetupURL = u
	}
	if len(out.SPFIncludes) == 0 && len(out.Ranges) == 0 && len(out.HELOSuffixes) == 0 && len(out.DKIMDomains) == 0 {
		return out, apperr.Invalid("spfIncludes", "a service needs something to be recognised by: an SPF include, a range, a HELO suffix or a DKIM domain")
	}
	return out, nil
}

// hostName is s trimmed, lower case, without a trailing dot.
func hostName(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// notPublicSuffix refuses a name under which anyone may register domains
// (such as co.uk): as a DKIM domain or HELO suffix it would match mail of
// strangers.
func notPublicSuffix(d string) error {
	if _, err := publicsuffix.EffectiveTLDPlusOne(d); err != nil {
		return errors.New("is a public suffix: anyone may register names under it")
	}
	return nil
}

// names reads a list of at most [MaxServiceNames] names with parse,
// dropping duplicates.
func names(in []string, field, what string, parse func(string) (string, error)) ([]string, error) {
	if len(in) > MaxServiceNames {
		return nil, apperr.Invalid(field, "a service lists at most %d of them (got %d)", MaxServiceNames, len(in))
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		n, err := parse(s)
		if err != nil {
			return nil, apperr.Invalid(field, "%q is not a %s: %v", s, what, err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// inputOf is a stored service as input, for a patch to apply to.
func inputOf(s Service) ServiceInput {
	in := ServiceInput{Name: s.Name, Category: s.Category, SPFIncludes: s.SpfIncludes, SetupURL: s.SetupUrl,
		DKIMDomains: s.DkimDomains, DKIMSelectors: s.DkimSelectors, HELOSuffixes: s.HeloSuffixes}
	for _, p := range s.StaticRanges {
		in.Ranges = append(in.Ranges, p.String())
	}
	return in
}

func (p ServicePatch) apply(in ServiceInput) ServiceInput {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	setList := func(dst *[]string, src *[]string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&in.Name, p.Name)
	set(&in.Category, p.Category)
	set(&in.SetupURL, p.SetupURL)
	setList(&in.SPFIncludes, p.SPFIncludes)
	setList(&in.Ranges, p.Ranges)
	setList(&in.DKIMDomains, p.DKIMDomains)
	setList(&in.DKIMSelectors, p.DKIMSelectors)
	setList(&in.HELOSuffixes, p.HELOSuffixes)
	return in
}

func prefixesOf(ranges []string) []netip.Prefix {
	out := make([]netip.Prefix, len(ranges))
	for i, r := range ranges {
		out[i] = netip.MustParsePrefix(r) // normalised
	}
	return out
}

// CreateService adds an account's own service, labelled label (its slug is
// [AccountSlug]). It needs [access.ManageSenders] in the account. Its
// includes, if any, are looked up first (within a bounded time, through the
// configured resolver); its cost stays unknown if that fails or the
// resolver is off, until the hourly resolution or a refresh.
func (m *Manager) CreateService(ctx context.Context, accountID uuid.UUID, label string, in ServiceInput) (Service, error) {
	if err := m.authz.Authorize(ctx, access.InAccount(accountID), access.ManageSenders); err != nil {
		return Service{}, err
	}
	label, err := ParseServiceLabel(label)
	if err != nil {
		return Service{}, err
	}
	if in, err = NormalizeService(in); err != nil {
		return Service{}, err
	}
	slug := AccountSlug(accountID, label)
	res := m.lookUp(ctx, in.SPFIncludes)
	err = pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		q := senderdb.New(tx)
		if err := q.LockAccountServices(ctx, accountID); err != nil {
			return fmt.Errorf("lock services: %w", err)
		}
		n, err := q.CountAccountServices(ctx, &accountID)
		if err != nil {
			return fmt.Errorf("count services: %w", err)
		}
		if n >= MaxAccountServices {
			return apperr.Conflictf("the account has %d services of its own, the most it may have; remove one first", n)
		}
		_, err = q.InsertAccountService(ctx, senderdb.InsertAccountServiceParams{
			Slug: slug, AccountID: &accountID, Name: in.Name, Category: in.Category, SpfIncludes: in.SPFIncludes,
			HeloSuffixes: nonNil(in.HELOSuffixes), DkimDomains: nonNil(in.DKIMDomains), DkimSelectors: nonNil(in.DKIMSelectors),
			StaticRanges: prefixesOf(in.Ranges), SetupUrl: in.SetupURL,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.Conflictf("the account already has a service %q (%s)", label, slug)
		}
		if err != nil {
			return fmt.Errorf("insert service: %w", err)
		}
		if err := storeResolution(ctx, q, slug, res); err != nil {
			return err
		}
		return publishService(ctx, q, slug)
	})
	if err != nil {
		return Service{}, err
	}
	m.logResolution(ctx, slug, res)
	return m.load(ctx, slug)
}

// UpdateService changes an account's own service. It needs
// [access.ManageSenders] in its account; a catalog service cannot be
// changed, and another account's is NOT_FOUND. Changed includes are looked
// up first, as at creation; when domains enable the service, the change is
// refused if it would take one of their SPF records past 10 lookups, or
// make its cost unknown.
func (m *Manager) UpdateService(ctx context.Context, slug string, p ServicePatch) (Service, error) {
	old, err := m.own(ctx, slug)
	if err != nil {
		return Service{}, err
	}
	in, err := NormalizeService(p.apply(inputOf(old)))
	if err != nil {
		return Service{}, err
	}
	changed := !slices.Equal(in.SPFIncludes, old.SpfIncludes)
	var res *resolution
	if changed {
		res = m.lookUp(ctx, in.SPFIncludes)
	}
	err = pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		q := senderdb.New(tx)
		if err := q.LockAccountServices(ctx, *old.AccountID); err != nil {
			return fmt.Errorf("lock services: %w", err)
		}
		// The patch applies to what was read: refused if it changed since.
		if cur, err := q.ServiceBySlug(ctx, old.Slug); err == nil && !cur.UpdatedAt.Equal(old.UpdatedAt) {
			return apperr.Conflictf("%s was changed meanwhile; try again", old.Name)
		}
		_, err := q.UpdateAccountService(ctx, senderdb.UpdateAccountServiceParams{
			Slug: old.Slug, AccountID: old.AccountID, Name: in.Name, Category: in.Category, SpfIncludes: in.SPFIncludes,
			HeloSuffixes: nonNil(in.HELOSuffixes), DkimDomains: nonNil(in.DKIMDomains), DkimSelectors: nonNil(in.DKIMSelectors),
			StaticRanges: prefixesOf(in.Ranges), SetupUrl: in.SetupURL,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.NotFoundf("service %q not found", slug)
		}
		if err != nil {
			return fmt.Errorf("update service: %w", err)
		}
		if err := storeResolution(ctx, q, old.Slug, res); err != nil {
			return err
		}
		if changed {
			// The domains enabling it are judged by the new includes' cost.
			doms, err := q.ServiceDomains(ctx, old.Slug)
			if err != nil {
				return fmt.Errorf("list domains: %w", err)
			}
			for _, dr := range doms {
				d, err := m.domains.Get(ctx, dr.Name)
				if err != nil {
					return err
				}
				if err := m.checkLookups(ctx, tx, d); err != nil {
					if e, ok := apperr.As(err); ok {
						return apperr.Invalid("spfIncludes", "%s is enabled on %s: %s", old.Name, d.Name, e.Message)
					}
					return err
				}
			}
		}
		return publishService(ctx, q, old.Slug)
	})
	if err != nil {
		return Service{}, err
	}
	if changed {
		m.logResolution(ctx, old.Slug, res)
	}
	return m.load(ctx, old.Slug)
}

// DeleteService removes an account's own service. It needs
// [access.ManageSenders] in its account. A service that domains enable is
// not removed: the refusal (CONFLICT) lists the domains, to disable it on
// first (so that no domain's SPF record changes as a side effect). DKIM
// keys tied to it are kept, tied to no service. The edge forgets it, and
// the account's report sources are classified again without it.
func (m *Manager) DeleteService(ctx context.Context, slug string) (Service, error) {
	old, err := m.own(ctx, slug)
	if err != nil {
		return Service{}, err
	}
	err = pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		q := senderdb.New(tx)
		if err := q.LockAccountServices(ctx, *old.AccountID); err != nil {
			return fmt.Errorf("lock services: %w", err)
		}
		doms, err := q.ServiceDomains(ctx, old.Slug)
		if err != nil {
			return fmt.Errorf("list domains: %w", err)
		}
		if len(doms) > 0 {
			return enabledOn(old, doms)
		}
		n, err := q.DeleteAccountService(ctx, senderdb.DeleteAccountServiceParams{Slug: old.Slug, AccountID: old.AccountID})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" { // enabled meanwhile
			return apperr.Conflictf("%s was just enabled on a domain; disable it there first", old.Name)
		}
		if err != nil {
			return fmt.Errorf("delete service: %w", err)
		}
		if n == 0 {
			return apperr.NotFoundf("service %q not found", slug)
		}
		serial, err := q.UnpublishService(ctx, old.Slug)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpublish service: %w", err)
		}
		return notify(ctx, q, serial)
	})
	if err != nil {
		return Service{}, err
	}
	return old, nil
}

func enabledOn(s Service, doms []senderdb.ServiceDomainsRow) error {
	list := make([]string, len(doms))
	for i, d := range doms {
		list[i] = d.Name
	}
	return &apperr.Error{Code: apperr.Conflict,
		Message:    fmt.Sprintf("%s is enabled on %s; disable it there first (disableSender)", s.Name, strings.Join(list, ", ")),
		Extensions: map[string]any{"domains": list}}
}

// own loads an account's service the caller may manage: NOT_FOUND for a
// service that does not exist or is another account's, FORBIDDEN for a
// member without the permission, and BAD_USER_INPUT for a catalog service.
func (m *Manager) own(ctx context.Context, slug string) (Service, error) {
	if _, err := access.Require(ctx); err != nil {
		return Service{}, err
	}
	// A stranger's service and one that does not exist get the same answer.
	s, err := senderdb.New(m.pool).ServiceBySlug(ctx, strings.ToLower(strings.TrimSpace(slug)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Service{}, apperr.NotFoundf("not found")
	}
	if err != nil {
		return Service{}, fmt.Errorf("load service: %w", err)
	}
	if s.AccountID == nil {
		return Service{}, apperr.Invalid("service", "%s is a catalog service; only an account's own services can be changed", s.Slug)
	}
	if err := m.authz.Authorize(ctx, access.InAccount(*s.AccountID), access.ManageSenders); err != nil {
		return Service{}, err
	}
	return s, nil
}

// AccountServices lists the catalog and an account's own services, to
// anyone who may see the account.
func (m *Manager) AccountServices(ctx context.Context, accountID uuid.UUID) ([]Service, error) {
	if err := m.authz.See(ctx, accountID); err != nil {
		return nil, err
	}
	return senderdb.New(m.pool).VisibleServices(ctx, []uuid.UUID{accountID})
}

// usable reports whether a domain of the account may use s: a catalog
// service or the account's own.
func usable(s Service, accountID uuid.UUID) bool {
	return s.AccountID == nil || *s.AccountID == accountID
}

// load reads one service.
func (m *Manager) load(ctx context.Context, slug string) (Service, error) {
	s, err := senderdb.New(m.pool).ServiceBySlug(ctx, slug)
	if err != nil {
		return Service{}, fmt.Errorf("load service: %w", err)
	}
	return s, nil
}

// lookUp resolves includes now through the configured resolver, within
// the time a request waits; nil when there is nothing to look up.
func (m *Manager) lookUp(ctx context.Context, includes []string) *resolution {
	if len(includes) == 0 || m.resolver == nil {
		return nil
	}
	r := lookUpIncludes(ctx, m.resolver, includes, syncTimeout)
	return &r
}
