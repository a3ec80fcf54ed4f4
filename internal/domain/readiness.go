package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dmarc"
	"github.com/rampartmail/rampart/internal/domain/domaindb"
	"github.com/rampartmail/rampart/internal/readiness"
)

// strictness orders dispositions: none < quarantine < reject.
func strictness(p dmarc.Policy) int {
	switch p {
	case dmarc.Quarantine:
		return 1
	case dmarc.Reject:
		return 2
	}
	return 0
}

// effective returns the dispositions a policy applies to the domain,
// its subdomains and non-existent subdomains (sp inherits p; np inherits
// sp).
func (p Policy) effective() (pol, sub, nonexistent dmarc.Policy) {
	pol, sub = p.P, p.P
	if p.SP != nil {
		sub = *p.SP
	}
	nonexistent = sub
	if p.NP != nil {
		nonexistent = *p.NP
	}
	return pol, sub, nonexistent
}

// Tightening is the strictest disposition a change from one policy to
// another newly applies: a p, sp or np made stricter, or a larger pct
// (which applies the policy's dispositions to more mail). It is none when
// the change tightens nothing.
func Tightening(from, to Policy) dmarc.Policy {
	fp, fs, fn := from.effective()
	tp, ts, tn := to.effective()
	need := dmarc.None
	raise := func(old, new dmarc.Policy) {
		if strictness(new) > strictness(old) && strictness(new) > strictness(need) {
			need = new
		}
	}
	raise(fp, tp)
	raise(fs, ts)
	raise(fn, tn)
	if to.Percent > from.Percent {
		for _, d := range []dmarc.Policy{tp, ts, tn} {
			raise(dmarc.None, d)
		}
	}
	return need
}

// tags is the part of a policy readiness is about, as a tag list.
func (p Policy) tags() string {
	var b strings.Builder
	fmt.Fprintf(&b, "p=%s", p.P)
	if p.SP != nil {
		fmt.Fprintf(&b, "; sp=%s", *p.SP)
	}
	if p.NP != nil {
		fmt.Fprintf(&b, "; np=%s", *p.NP)
	}
	fmt.Fprintf(&b, "; pct=%d", p.Percent)
	return b.String()
}

// ReasonExtensions are a verdict's reasons as a READINESS error shows them
// (extensions.reasons): code, sender (null when none), value, threshold,
// blocks (QUARANTINE or REJECT) and message.
func ReasonExtensions(rs []readiness.Reason) []map[string]any {
	out := make([]map[string]any, len(rs))
	for i, r := range rs {
		var sender any
		if r.Sender != "" {
			sender = r.Sender
		}
		out[i] = map[string]any{
			"code": string(r.Code), "sender": sender, "value": r.Value, "threshold": r.Threshold,
			"blocks": strings.ToUpper(string(r.Blocks)), "message": r.Message,
		}
	}
	return out
}

// gate decides a policy change in the transaction that makes it: see
// [Service.UpdatePolicy].
func (s *Service) gate(ctx context.Context, tx pgx.Tx, q *domaindb.Queries, d Domain, to Policy, force bool) error {
	need := Tightening(d.Stored, to)
	if need == dmarc.None {
		return nil
	}
	settings := s.cfg.Readiness
	if settings == (readiness.Settings{}) {
		settings = readiness.Defaults
	}
	r, err := readiness.Compute(ctx, tx, d.ID, settings, time.Now())
	if err != nil {
		return err
	}
	allowed := strictness(r.Verdict.Allows()) >= strictness(need)
	if !allowed && !force {
		msg := fmt.Sprintf("%s is not ready for %s (%s)", d.Name, need, r.Verdict)
		if len(r.Reasons) > 0 {
			msg += ": " + r.Reasons[0].Message
			if n := len(r.Reasons) - 1; n > 0 {
				msg += fmt.Sprintf(" (and %d more reasons, in extensions.reasons)", n)
			}
		}
		msg += " Pass force: true to change it anyway."
		return &apperr.Error{Code: apperr.Readiness, Message: msg, Extensions: map[string]any{
			"verdict": string(r.Verdict), "requires": strings.ToUpper(string(need)), "reasons": ReasonExtensions(r.Reasons),
		}}
	}
	reasons, err := json.Marshal(r.Reasons)
	if err != nil {
		return err
	}
	var userID, tokenID *uuid.UUID
	if p, ok := access.FromContext(ctx); ok {
		if p.IsAPIToken() {
			tokenID = &p.APITokenID
		} else if p.UserID != uuid.Nil {
			userID = &p.UserID
		}
	}
	if err := q.RecordPolicyChange(ctx, domaindb.RecordPolicyChangeParams{
		DomainID: d.ID, ActorUserID: userID, ActorTokenID: tokenID,
		FromPolicy: d.Stored.tags(), ToPolicy: to.tags(), Verdict: string(r.Verdict), Forced: !allowed, Reasons: reasons,
	}); err != nil {
		return fmt.Errorf("record policy change: %w", err)
	}
	return nil
}

// SetReadinessThreshold sets the DMARC pass rate (percent, 50 to 100) a
// domain's own servers and known services must reach before its policy
// may tighten; a sender's own threshold overrides it
// ([Service.SetSenderThreshold]). The principal must hold
// [access.ManagePolicy].
func (s *Service) SetReadinessThreshold(ctx context.Context, name string, threshold float64) (Domain, error) {
	if err := readiness.CheckThreshold("threshold", threshold); err != nil {
		return Domain{}, err
	}
	var d Domain
	err := s.locked(ctx, name, access.ManagePolicy, func(_ pgx.Tx, q *domaindb.Queries, old Domain) error {
		if err := q.SetReadinessThreshold(ctx, domaindb.SetReadinessThresholdParams{ID: old.ID, Threshold: threshold}); err != nil {
			return fmt.Errorf("set readiness threshold: %w", err)
		}
		d = old
		d.ReadinessThreshold = threshold
		return nil
	})
	return d, err
}

// SetSenderThreshold sets the DMARC pass rate (percent, 50 to 100) one of
// a domain's enabled senders (a service's slug) must reach; nil returns it
// to the domain's. The principal must hold [access.ManagePolicy].
func (s *Service) SetSenderThreshold(ctx context.Context, name, service string, threshold *float64) (Domain, error) {
	if threshold != nil {
		if err := readiness.CheckThreshold("threshold", *threshold); err != nil {
			return Domain{}, err
		}
	}
	var d Domain
	err := s.locked(ctx, name, access.ManagePolicy, func(_ pgx.Tx, q *domaindb.Queries, old Domain) error {
		n, err := q.SetSenderPassThreshold(ctx, domaindb.SetSenderPassThresholdParams{DomainID: old.ID, Service: strings.ToLower(strings.TrimSpace(service)), Threshold: threshold})
		if err != nil {
			return fmt.Errorf("set sender threshold: %w", err)
		}
		if n == 0 {
			return apperr.NotFoundf("the service %q is not enabled for %s", service, old.Name)
		}
		d = old
		return nil
	})
	return d, err
}
