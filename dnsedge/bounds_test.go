package dnsedge

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBoundsDocumented: the table of change bounds in docs/architecture.md
// gives what Config.Bounds computes with the defaults.
func TestBoundsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/architecture.md")
	require.NoError(t, err)
	b := Config{}.Bounds()
	for row, bound := range map[string]time.Duration{
		"| netblock added, sender enabled |":         b.AddSender,
		"| netblock removed, sender disabled |":      b.RemoveSender,
		"| domain blocked: SPF fails |":              b.BlockSPF,
		"| domain blocked: keys revoked, p=reject |": b.BlockKeysAndPolicy,
		"| DMARC policy changed |":                   b.Policy,
		"| DKIM key revoked or removed |":            b.KeyRevocation,
		"| DKIM key added at a name asked before |":  b.KeyAdded,
	} {
		i := strings.Index(string(doc), row)
		require.GreaterOrEqual(t, i, 0, "no row %q", row)
		line, _, _ := strings.Cut(string(doc[i:]), "\n")
		require.True(t, strings.HasSuffix(line, fmt.Sprintf("| %d s |", int(bound.Seconds()))), "%s: want %v", line, bound)
	}
	// Removals and blocking reach receivers within the SPF TTL plus
	// propagation, whatever the TTLs.
	c := Config{SPFTTL: 30 * time.Second, TTL: time.Hour}
	require.Equal(t, 30*time.Second+Propagation, c.Bounds().RemoveSender)
	require.Equal(t, 30*time.Second+Propagation, c.Bounds().BlockSPF)
}
