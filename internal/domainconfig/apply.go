package domainconfig

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/domainkey"
	"github.com/rampartmail/rampart/internal/sender"
)

// Config is a domain's declared configuration. A nil field is left alone;
// a non-nil list (even empty) is the exact desired set.
type Config struct {
	Name string
	Mode *domain.Mode
	// Policy edits the stored policy in place (a tag it leaves alone keeps
	// its value), as updateDmarcPolicy's input does.
	Policy    func(*domain.Policy)
	Netblocks []NetblockInput
	Senders   []string
	Pins      []PinInput
	Keys      []domainkey.NewKey
	// Revoked lists, by index into Keys, the keys declared revoked.
	Revoked []bool
}

// NetblockInput is a declared netblock as given.
type NetblockInput struct{ CIDR, Label string }

// PinInput is a declared pinned include as given.
type PinInput struct {
	Include   string
	ExpiresAt time.Time
}

// Result is what applying a configuration did, or would do.
type Result struct {
	// Domain is the domain after the call; nil on a dry run for a domain
	// the account does not hold yet.
	Domain *domain.Domain
	// Changes is the diff; empty when the configuration is in place.
	Changes []Change
	// Applied is whether the changes were made (false on a dry run and
	// when there were none).
	Applied bool
	// Warnings are the DKIM keys' (a short RSA key).
	Warnings []string
}

// Service applies declared configurations.
type Service struct {
	domains *domain.Service
	senders *sender.Manager
	keys    *domainkey.Manager
	authz   *access.Authorizer
}

// NewService returns a Service.
func NewService(pool *pgxpool.Pool, domains *domain.Service, senders *sender.Manager, keys *domainkey.Manager) *Service {
	return &Service{domains: domains, senders: senders, keys: keys, authz: access.New(pool)}
}

// Permission is what a part of a domain's configuration needs changed.
func Permission(part string) access.Permission {
	switch part {
	case "policy":
		return access.ManagePolicy
	case "netblocks", "senders", "spfPins":
		return access.ManageSenders
	case "dkimKeys":
		return access.ManageDKIM
	default: // domain, mode
		return access.ManageDomains
	}
}

// at names the path of the input at fault in a validation error.
func at(path string, err error) error {
	e, ok := apperr.As(err)
	if !ok || e.Code != apperr.BadUserInput {
		return err
	}
	field := path
	if e.Field != "" && !strings.HasSuffix(path, "."+e.Field) {
		field += "." + e.Field
	}
	return apperr.Invalid(field, "%s: %s", field, e.Message)
}

// desired is a validated configuration, but for its policy (which edits
// the stored one).
type desired struct {
	state    State
	keys     map[string]domainkey.Parsed
	warnings []string
}

func (s *Service) validate(c Config) (desired, error) {
	var d desired
	d.state.Mode = c.Mode
	if c.Mode != nil && *c.Mode != domain.Sending && *c.Mode != domain.Blocked {
		return d, apperr.Invalid("mode", "unknown mode %q", *c.Mode)
	}
	if c.Netblocks != nil {
		d.state.Netblocks = []Netblock{}
		for i, n := range c.Netblocks {
			path := "netblocks[" + strconv.Itoa(i) + "]"
			p, err := sender.ParseCIDR(n.CIDR)
			if err != nil {
				return d, at(path, err)
			}
			label := strings.TrimSpace(n.Label)
			if len(label) > 200 {
				return d, apperr.Invalid(path+".label", "a label has at most 200 characters")
			}
			if slices.ContainsFunc(d.state.Netblocks, func(o Netblock) bool { return o.Prefix == p }) {
				return d, apperr.Invalid(path+".cidr", "%s is declared twice", p)
			}
			d.state.Netblocks = append(d.state.Netblocks, Netblock{Prefix: p, Label: label})
		}
	}
	if c.Senders != nil {
		d.state.Senders = []string{}
		for i, slug := range c.Senders {
			slug = strings.ToLower(strings.TrimSpace(slug))
			if slug == "" || slices.Contains(d.state.Senders, slug) {
				return d, apperr.Invalid("senders["+strconv.Itoa(i)+"]", "%q is empty or declared twice", slug)
			}
			d.state.Senders = append(d.state.Senders, slug)
		}
	}
	if c.Pins != nil {
		d.state.Pins = []Pin{}
		for i, p := range c.Pins {
			path := "spfPins[" + strconv.Itoa(i) + "]"
			inc, err := sender.ParseInclude(p.Include)
			if err != nil {
				return d, at(path, err)
			}
			if err := s.senders.ValidatePin(p.ExpiresAt); err != nil {
				return d, at(path, err)
			}
			if slices.ContainsFunc(d.state.Pins, func(o Pin) bool { return o.Include == inc }) {
				return d, apperr.Invalid(path+".include", "%s is declared twice", inc)
			}
			d.state.Pins = append(d.state.Pins, Pin{Include: inc, ExpiresAt: p.ExpiresAt.Truncate(time.Microsecond)})
		}
	}
	if c.Keys != nil {
		d.state.Keys = []Key{}
		d.keys = map[string]domainkey.Parsed{}
		for i, k := range c.Keys {
			path := "dkimKeys[" + strconv.Itoa(i) + "]"
			p, warns, err := domainkey.Parse(k)
			if err != nil {
				return d, at(path, err)
			}
			if _, dup := d.keys[p.Selector()]; dup {
				return d, apperr.Invalid(path+".selector", "selector %q is declared twice", p.Selector())
			}
			d.keys[p.Selector()] = p
			for _, w := range warns {
				d.warnings = append(d.warnings, p.Selector()+": "+w)
			}
			d.state.Keys = append(d.state.Keys, Key{
				Selector: p.Selector(), PublicKey: p.PublicKey(), CNAMETarget: p.CNAMETarget(),
				Service: p.Service(), Revoked: i < len(c.Revoked) && c.Revoked[i],
			})
		}
	}
	return d, nil
}

// Apply brings the account's domain c.Name to the configuration c,
// claiming it (as addDomain) when the account does not hold it. With
// dryRun it only computes the changes. A policy tightening meets the
// readiness gate as in updateDmarcPolicy (a READINESS error unless force).
// Each part that changes is authorised with its permission (see
// [Permission]) before anything is written; any error leaves the domain as
// it was.
func (s *Service) Apply(ctx context.Context, accountID uuid.UUID, c Config, dryRun, force bool) (Result, error) {
	want, err := s.validate(c)
	if err != nil {
		return Result{}, err
	}
	// A first pass that writes nothing authorises the parts that change
	// and finds the senders to add, whose cost is then known (looked up
	// if never measured) before the pass that writes.
	res, err := s.pass(ctx, accountID, c, want, true, force)
	if err != nil || dryRun || len(res.Changes) == 0 {
		return res, err
	}
	for _, ch := range res.Changes {
		if ch.Part() == "senders" && ch.Action == Add {
			if err := s.senders.KnowCost(ctx, accountID, ch.After); err != nil {
				return Result{}, at(ch.Path, err)
			}
		}
	}
	return s.pass(ctx, accountID, c, want, false, force)
}

func (s *Service) pass(ctx context.Context, accountID uuid.UUID, c Config, want desired, dryRun, force bool) (Result, error) {
	var res Result
	res.Warnings = append([]string{}, want.warnings...)
	conf, err := s.domains.Configure(ctx, accountID, c.Name, []access.Permission{access.ViewReports}, func(tx pgx.Tx, d domain.Domain, exists bool) (bool, error) {
		cur, err := s.current(ctx, tx, d, exists)
		if err != nil {
			return false, err
		}
		target := want.state
		if c.Policy != nil {
			p := d.Stored
			p.RUA = append([]string(nil), p.RUA...)
			p.RUF = append([]string(nil), p.RUF...)
			c.Policy(&p)
			if err := domain.NormalizePolicy(&p); err != nil {
				return false, at("policy", err)
			}
			target.Policy = &p
		}
		res.Changes = Diff(cur, target)
		if err := s.authorise(ctx, d, exists, res.Changes); err != nil {
			return false, err
		}
		if dryRun || len(res.Changes) == 0 {
			return false, nil
		}
		return true, s.write(ctx, tx, d, target, want, res.Changes, force)
	})
	if err != nil {
		return Result{}, err
	}
	res.Applied = !dryRun && len(res.Changes) > 0
	if conf.Exists || res.Applied {
		res.Domain = &conf.Domain
	}
	return res, nil
}

// current reads the locked domain's configuration in tx.
func (s *Service) current(ctx context.Context, tx pgx.Tx, d domain.Domain, exists bool) (State, error) {
	mode, pol := d.Mode, d.Stored
	st := State{Exists: exists, Mode: &mode, Policy: &pol, Senders: []string{}}
	snd, err := s.senders.StateIn(ctx, tx, d)
	if err != nil {
		return State{}, err
	}
	for _, n := range snd.Netblocks {
		st.Netblocks = append(st.Netblocks, Netblock{Prefix: n.Prefix, Label: n.Label})
	}
	for _, e := range snd.Enabled {
		st.Senders = append(st.Senders, e.Slug)
	}
	for _, p := range snd.Pins {
		st.Pins = append(st.Pins, Pin{Include: p.Include, ExpiresAt: p.ExpiresAt})
	}
	keys, err := s.keys.KeysIn(ctx, tx, d)
	if err != nil {
		return State{}, err
	}
	for _, k := range keys {
		st.Keys = append(st.Keys, Key{
			Selector: k.Selector, PublicKey: deref(k.PublicKey), CNAMETarget: deref(k.CnameTarget),
			Service: deref(k.Service), Revoked: k.RevokedAt != nil,
		})
	}
	return st, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// authorise decides each part that changes, on the domain (in the account
// for a domain it does not hold yet).
func (s *Service) authorise(ctx context.Context, d domain.Domain, exists bool, changes []Change) error {
	seen := map[access.Permission]bool{}
	for _, ch := range changes {
		perm := Permission(ch.Part())
		if seen[perm] {
			continue
		}
		seen[perm] = true
		res := access.OnDomain(d.AccountID, d.ID)
		if !exists {
			res = access.InAccount(d.AccountID)
		}
		if err := s.authz.Authorize(ctx, res, perm); err != nil {
			if errors.Is(err, apperr.ErrForbidden) {
				return &apperr.Error{Code: apperr.Forbidden, Message: fmt.Sprintf("changing %s needs the %s permission: %v", ch.Part(), perm, err), Err: err}
			}
			return err
		}
	}
	return nil
}

// write makes the changes in tx, in the order of [Diff].
func (s *Service) write(ctx context.Context, tx pgx.Tx, d domain.Domain, target State, want desired, changes []Change, force bool) error {
	policy, spf := false, false
	for _, ch := range changes {
		item := ch.Path[strings.IndexByte(ch.Path, '[')+1:]
		item = strings.TrimSuffix(item, "]")
		var err error
		switch part := ch.Part(); part {
		case "domain":
		case "mode":
			if err = s.domains.SetModeIn(ctx, tx, d, *target.Mode); err == nil {
				d, err = s.domains.Reload(ctx, tx, d)
			}
		case "policy":
			if !policy {
				policy = true
				err = s.domains.SetPolicyIn(ctx, tx, d, *target.Policy, force)
			}
		case "netblocks":
			spf = true
			i := slices.IndexFunc(target.Netblocks, func(n Netblock) bool { return n.Prefix.String() == item })
			if ch.Action == Remove {
				var n Netblock
				n.Prefix, err = sender.ParseCIDR(item)
				if err == nil {
					err = s.senders.RemoveNetblockIn(ctx, tx, d, n.Prefix)
				}
			} else {
				err = s.senders.AddNetblockIn(ctx, tx, d, target.Netblocks[i].Prefix, target.Netblocks[i].Label)
			}
		case "senders":
			spf = true
			if ch.Action == Remove {
				err = s.senders.DisableSenderIn(ctx, tx, d, item)
			} else {
				err = s.senders.EnableSenderIn(ctx, tx, d, item)
			}
		case "spfPins":
			spf = true
			if ch.Action == Remove {
				err = s.senders.UnpinIncludeIn(ctx, tx, d, item)
			} else {
				i := slices.IndexFunc(target.Pins, func(p Pin) bool { return p.Include == item })
				err = s.senders.PinIncludeIn(ctx, tx, d, item, target.Pins[i].ExpiresAt)
			}
		case "dkimKeys":
			err = s.writeKey(ctx, tx, d, ch, item, target, want)
		default:
			err = fmt.Errorf("unknown part %q", part)
		}
		if err != nil {
			if ch.Part() == "policy" {
				return at("policy", err)
			}
			return at(ch.Path, err)
		}
	}
	if spf {
		if err := s.senders.CheckLookups(ctx, tx, d); err != nil {
			return at("senders", err)
		}
	}
	return nil
}

func (s *Service) writeKey(ctx context.Context, tx pgx.Tx, d domain.Domain, ch Change, sel string, target State, want desired) error {
	if ch.Action == Remove {
		return s.keys.RemoveIn(ctx, tx, d, sel)
	}
	k := target.Keys[slices.IndexFunc(target.Keys, func(k Key) bool { return k.Selector == sel })]
	if ch.Action == Update {
		// Revoking alone keeps the row (and when it was revoked); any
		// other change replaces the key.
		if ch.Before+" revoked" == ch.After {
			_, err := s.keys.RevokeIn(ctx, tx, d, sel)
			return err
		}
		if err := s.keys.RemoveIn(ctx, tx, d, sel); err != nil {
			return err
		}
	}
	if _, err := s.keys.AddIn(ctx, tx, d, want.keys[sel]); err != nil {
		return err
	}
	if k.Revoked {
		_, err := s.keys.RevokeIn(ctx, tx, d, sel)
		return err
	}
	return nil
}
