package graph_test

import (
	"net/netip"
	"time"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/sender"
)

func senderQueryName(ip netip.Addr, helo, domain string) (string, bool) {
	return sender.QueryName(ip, helo, domain, apitest.EdgeZone)
}

func farExpiry() string { return time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339) }
