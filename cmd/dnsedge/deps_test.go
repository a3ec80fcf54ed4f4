package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoAPIDependencies keeps the edge binary small and independent: it must
// not link the GraphQL, HTTP API or job code.
func TestNoAPIDependencies(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/rampartmail/rampart/dnsedge")
	for _, d := range deps {
		for _, banned := range []string{"/graph", "/server", "/jobs", "github.com/99designs/gqlgen", "github.com/riverqueue/river"} {
			require.False(t, strings.HasPrefix(d, "github.com/rampartmail/rampart"+banned) || strings.HasPrefix(d, banned),
				"cmd/dnsedge depends on %s", d)
		}
	}
}
