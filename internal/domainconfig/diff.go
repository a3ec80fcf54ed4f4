// Package domainconfig applies a domain's declared configuration in one
// idempotent call, for Terraform-style automation: its mode, DMARC policy,
// netblocks, enabled senders, pinned SPF includes and DKIM keys. A part
// left out is left alone; a list given is the exact desired set (missing
// items added, extra ones removed, changed ones updated). The answer is
// the diff, computed by the pure [Diff]; a dry run computes it and writes
// nothing, and a configuration already in place writes nothing either (no
// edge serial bump). Every change of one call is made in one transaction,
// through the tx-level parts of packages domain, sender and domainkey on
// the claim domain.Service.Configure locked (or creates, as addDomain), and
// each part is authorised with the permission it needs before anything is
// written.
package domainconfig

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampartmail/rampart/internal/domain"
)

// Action says what a change does to an item.
type Action string

// The actions.
const (
	Add    Action = "ADD"
	Remove Action = "REMOVE"
	Update Action = "UPDATE"
)

// Change is one difference between a domain's state and its declared
// configuration. Path names the item: "domain", "mode", "policy.<tag>",
// "netblocks[<cidr>]", "senders[<slug>]", "spfPins[<include>]" or
// "dkimKeys[<selector>]"; Before and After describe it as text ("" for an
// item that is not there).
type Change struct {
	Action        Action
	Path          string
	Before, After string
}

// Part is the area of a domain a change touches; each needs its own
// permission (see [Part.Permission]).
func (c Change) Part() string {
	p, _, _ := strings.Cut(c.Path, "[")
	p, _, _ = strings.Cut(p, ".")
	return p
}

// Netblock is a declared netblock.
type Netblock struct {
	Prefix netip.Prefix
	Label  string
}

// Pin is a declared pinned include.
type Pin struct {
	Include   string
	ExpiresAt time.Time
}

// Key is a DKIM key, declared or current, as compared: exactly one of
// PublicKey (base64) and CNAMETarget is set.
type Key struct {
	Selector    string
	PublicKey   string
	CNAMETarget string
	Service     string
	Revoked     bool
}

// State is a domain's configuration: what it has, or what is declared. In
// a declared State a nil Mode or Policy and a nil list are parts left
// alone.
type State struct {
	// Exists is false for a domain the account does not hold (current
	// state only).
	Exists    bool
	Mode      *domain.Mode
	Policy    *domain.Policy
	Netblocks []Netblock
	Senders   []string
	Pins      []Pin
	Keys      []Key
}

// Diff returns the changes that take the current state to the declared
// one, in the order they are applied: the domain, its mode, its policy's
// tags, then netblocks, senders, pins and keys, each list by item. Lists
// in want are expected validated (no duplicates).
func Diff(cur, want State) []Change {
	var out []Change
	if !cur.Exists {
		out = append(out, Change{Action: Add, Path: "domain"})
	}
	if want.Mode != nil && (cur.Mode == nil || *cur.Mode != *want.Mode) {
		out = append(out, Change{Action: Update, Path: "mode", Before: modeText(cur.Mode), After: modeText(want.Mode)})
	}
	if want.Policy != nil {
		var before domain.Policy
		if cur.Policy != nil {
			before = *cur.Policy
		}
		out = append(out, policyDiff(before, *want.Policy)...)
	}
	if want.Netblocks != nil {
		out = append(out, listDiff("netblocks", cur.Netblocks, want.Netblocks,
			func(n Netblock) string { return n.Prefix.String() },
			func(n Netblock) string { return strings.TrimSpace(n.Prefix.String() + " " + n.Label) })...)
	}
	if want.Senders != nil {
		out = append(out, listDiff("senders", cur.Senders, want.Senders,
			func(s string) string { return s }, func(s string) string { return s })...)
	}
	if want.Pins != nil {
		out = append(out, listDiff("spfPins", cur.Pins, want.Pins,
			func(p Pin) string { return p.Include },
			func(p Pin) string {
				return p.Include + " until " + p.ExpiresAt.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
			})...)
	}
	if want.Keys != nil {
		out = append(out, listDiff("dkimKeys", cur.Keys, want.Keys, func(k Key) string { return k.Selector }, keyText)...)
	}
	return out
}

// listDiff compares two sets of items by key: those only in want are
// added, those only in cur removed, and those whose text differs updated.
func listDiff[T any](path string, cur, want []T, key, text func(T) string) []Change {
	have := map[string]T{}
	for _, c := range cur {
		have[key(c)] = c
	}
	wanted := map[string]bool{}
	var out []Change
	var removed []Change
	for _, c := range cur {
		if k := key(c); !slices.ContainsFunc(want, func(w T) bool { return key(w) == k }) {
			removed = append(removed, Change{Action: Remove, Path: path + "[" + k + "]", Before: text(c)})
		}
	}
	out = append(out, removed...)
	for _, w := range want {
		k := key(w)
		if wanted[k] {
			continue
		}
		wanted[k] = true
		c, ok := have[k]
		switch {
		case !ok:
			out = append(out, Change{Action: Add, Path: path + "[" + k + "]", After: text(w)})
		case text(c) != text(w):
			out = append(out, Change{Action: Update, Path: path + "[" + k + "]", Before: text(c), After: text(w)})
		}
	}
	return out
}

func modeText(m *domain.Mode) string {
	if m == nil {
		return ""
	}
	return strings.ToUpper(string(*m))
}

func keyText(k Key) string {
	var b strings.Builder
	if k.CNAMETarget != "" {
		b.WriteString("CNAME " + k.CNAMETarget)
	} else {
		pk := k.PublicKey
		if len(pk) > 24 {
			pk = pk[:12] + "…" + pk[len(pk)-8:]
		}
		b.WriteString("key " + pk)
	}
	if k.Service != "" {
		b.WriteString(" service " + k.Service)
	}
	if k.Revoked {
		b.WriteString(" revoked")
	}
	return b.String()
}

// policyDiff compares two policies tag by tag.
func policyDiff(a, b domain.Policy) []Change {
	disp := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	tags := []struct {
		name   string
		before string
		after  string
	}{
		{"p", string(a.P), string(b.P)},
		{"sp", disp((*string)(a.SP)), disp((*string)(b.SP))},
		{"np", disp((*string)(a.NP)), disp((*string)(b.NP))},
		{"pct", strconv.Itoa(a.Percent), strconv.Itoa(b.Percent)},
		{"adkim", string(a.ADKIM), string(b.ADKIM)},
		{"aspf", string(a.ASPF), string(b.ASPF)},
		{"rua", strings.Join(a.RUA, ","), strings.Join(b.RUA, ",")},
		{"ruf", strings.Join(a.RUF, ","), strings.Join(b.RUF, ",")},
		{"fo", disp(a.FailureOptions), disp(b.FailureOptions)},
		{"testing", boolText(a.Testing), boolText(b.Testing)},
	}
	var out []Change
	for _, t := range tags {
		if t.before == t.after {
			continue
		}
		act := Update
		switch {
		case t.before == "":
			act = Add
		case t.after == "":
			act = Remove
		}
		out = append(out, Change{Action: act, Path: "policy." + t.name, Before: t.before, After: t.after})
	}
	return out
}

func boolText(b *bool) string {
	if b == nil {
		return ""
	}
	return fmt.Sprint(*b)
}
