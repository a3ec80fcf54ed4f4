package dnsedge

import (
	"cmp"
	"time"
)

// Propagation bounds the time from a change's commit in PostgreSQL to the
// edge answering it, while the edge follows PostgreSQL: it applies the
// changed rows on the NOTIFY of the commit (tens of milliseconds on one
// machine). While it cannot reach PostgreSQL the edge answers from its last
// data and catches up when it reconnects; a missed notification is caught by
// the next one or by the resync (Config.ResyncInterval).
const Propagation = time.Second

// ChangeBounds are the worst times for each kind of change to reach every
// receiver: the edge's propagation plus the TTL of the answer a resolver may
// still hold from before the change. They follow from the configuration
// (Config.SPFTTL, TTL and NegativeTTL); the edge logs them when it starts.
type ChangeBounds struct {
	// AddSender is a netblock added or a sender enabled: a receiver may
	// hold the address's "~all" answer (SPF TTL).
	AddSender time.Duration
	// RemoveSender is a netblock removed or a sender disabled: a receiver
	// may hold the address's pass, or the legacy _nspf record (SPF TTL).
	RemoveSender time.Duration
	// BlockSPF is a domain blocked, for SPF: every SPF name of the domain
	// (the per-query answers, _rspf, _nspf) has the SPF TTL, so each
	// address fails within it.
	BlockSPF time.Duration
	// BlockKeysAndPolicy is a domain blocked, for its DKIM keys (revoked)
	// and DMARC record (p=reject): the TTL of the records served.
	BlockKeysAndPolicy time.Duration
	// Policy is a DMARC policy change (TTL).
	Policy time.Duration
	// KeyRevocation is a DKIM key revoked or removed (TTL).
	KeyRevocation time.Duration
	// KeyAdded is a DKIM key added at a selector a receiver asked for
	// before it existed: it may hold the NXDOMAIN (negative TTL).
	KeyAdded time.Duration
}

// Bounds returns the change bounds under c, its zero fields at their
// defaults.
func (c Config) Bounds() ChangeBounds {
	spf := cmp.Or(c.SPFTTL, DefaultSPFTTL) + Propagation
	ttl := cmp.Or(c.TTL, DefaultTTL) + Propagation
	return ChangeBounds{
		AddSender:          spf,
		RemoveSender:       spf,
		BlockSPF:           spf,
		BlockKeysAndPolicy: ttl,
		Policy:             ttl,
		KeyRevocation:      ttl,
		KeyAdded:           min(cmp.Or(c.NegativeTTL, DefaultNegativeTTL), cmp.Or(c.TTL, DefaultTTL)) + Propagation,
	}
}
