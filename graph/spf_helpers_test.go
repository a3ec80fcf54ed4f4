package graph_test

import (
	"net/netip"
	"time"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/spfanswer"
)

// senderQueryName is the legacy form's per-query name a receiver asks, as
// spfanswer.Receive expands it.
func senderQueryName(ip netip.Addr, helo, domain string) (string, bool) {
	name, truncated, _ := spfanswer.Receive(ip, helo, domain, apitest.EdgeZone)
	return name, truncated
}

func farExpiry() string { return time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339) }
