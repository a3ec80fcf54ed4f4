package domain_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dmarc"
	"github.com/rampartmail/rampart/internal/domain"
)

// TestTightening: which changes tighten a policy, and to what.
func TestTightening(t *testing.T) {
	t.Parallel()
	pol := func(p dmarc.Policy) *dmarc.Policy { return &p }
	none := domain.Policy{P: dmarc.None, Percent: 100}
	q50 := domain.Policy{P: dmarc.Quarantine, Percent: 50}
	for _, tc := range []struct {
		name     string
		from, to domain.Policy
		want     dmarc.Policy
	}{
		{"unchanged", none, none, dmarc.None},
		{"p to quarantine", none, domain.Policy{P: dmarc.Quarantine, Percent: 100}, dmarc.Quarantine},
		{"p to reject", q50, domain.Policy{P: dmarc.Reject, Percent: 50}, dmarc.Reject},
		{"p loosened", q50, none, dmarc.None},
		{"pct raised", q50, domain.Policy{P: dmarc.Quarantine, Percent: 100}, dmarc.Quarantine},
		{"pct lowered", domain.Policy{P: dmarc.Quarantine, Percent: 100}, q50, dmarc.None},
		{"pct raised under p=none", domain.Policy{P: dmarc.None, Percent: 10}, none, dmarc.None},
		{"sp tightened", none, domain.Policy{P: dmarc.None, SP: pol(dmarc.Reject), Percent: 100}, dmarc.Reject},
		{"np tightened", none, domain.Policy{P: dmarc.None, NP: pol(dmarc.Quarantine), Percent: 100}, dmarc.Quarantine},
		{"sp removed under p=reject", domain.Policy{P: dmarc.Reject, SP: pol(dmarc.None), Percent: 100}, domain.Policy{P: dmarc.Reject, Percent: 100}, dmarc.Reject},
		{"p loosened with sp kept", domain.Policy{P: dmarc.Reject, Percent: 100}, domain.Policy{P: dmarc.None, SP: pol(dmarc.Reject), NP: pol(dmarc.Reject), Percent: 100}, dmarc.None},
	} {
		require.Equal(t, tc.want, domain.Tightening(tc.from, tc.to), tc.name)
	}
}
