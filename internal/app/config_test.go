package app

import (
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// A malformed trusted-proxies list is refused, the same from the flag and
// from the environment, with the setting's names.
func TestTrustedProxiesRefusedWhenMalformed(t *testing.T) {
	parse := func(args ...string) (*Config, error) {
		var c Config
		fs := NewFlagSet("rampart serve", "rampart serve [flags]")
		fs.SetOutput(io.Discard)
		c.ServeFlags(fs)
		require.NoError(t, fs.Parse(args, os.LookupEnv))
		_, err := c.Proxies()
		return &c, err
	}
	c, err := parse("-trusted-proxies", "10.0.0.0/8, 2001:db8::/32")
	require.NoError(t, err)
	p, _ := c.Proxies()
	require.Equal(t, "10.0.0.0/8,2001:db8::/32", p.String())

	_, flagErr := parse("-trusted-proxies", "10.0.0.1/8")
	require.ErrorContains(t, flagErr, "RAMPART_TRUSTED_PROXIES")
	t.Setenv("RAMPART_TRUSTED_PROXIES", "10.0.0.1/8")
	_, envErr := parse()
	require.Equal(t, flagErr, envErr)
	require.ErrorContains(t, envErr, `"10.0.0.1/8"`)
}
