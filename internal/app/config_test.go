package app

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/mailout"
	"github.com/rampartmail/rampart/internal/readiness"
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

// TestJobRescueRefusedBelowTimeout: a job rescue delay that does not exceed
// the job timeout is refused, from a flag or the environment, and an
// unparsable duration in the environment is refused like the flag's.
func TestJobRescueRefusedBelowTimeout(t *testing.T) {
	check := func(args ...string) error {
		var c Config
		fs := NewFlagSet("rampart serve", "rampart serve [flags]")
		fs.SetOutput(io.Discard)
		c.ServeFlags(fs)
		if err := fs.Parse(args, os.LookupEnv); err != nil {
			return err
		}
		return c.Jobs().Check()
	}
	require.NoError(t, check())
	require.NoError(t, check("-job-timeout", "15s", "-job-rescue-after", "16s"))
	require.ErrorContains(t, check("-job-rescue-after", "1m"), "must exceed the longest job timeout 3m0s")
	t.Setenv("RAMPART_JOB_TIMEOUT", "20s")
	t.Setenv("RAMPART_JOB_RESCUE_AFTER", "20s")
	require.ErrorContains(t, check(), "must exceed")
	require.NoError(t, check("-job-rescue-after", "21s"))
	t.Setenv("RAMPART_JOB_RESCUE_AFTER", "soon")
	err := check()
	require.ErrorContains(t, err, "RAMPART_JOB_RESCUE_AFTER")
	require.ErrorContains(t, err, `"soon"`)
}

// TestRemovalGrace: -removal-grace (RAMPART_REMOVAL_GRACE) defaults to 30
// days and takes a positive duration of at most a year, from the flag or
// the environment.
func TestRemovalGrace(t *testing.T) {
	parse := func(args ...string) (time.Duration, error) {
		var c Config
		fs := NewFlagSet("rampart serve", "rampart serve [flags]")
		fs.SetOutput(io.Discard)
		c.ServeFlags(fs)
		if err := fs.Parse(args, os.LookupEnv); err != nil {
			return 0, err
		}
		dcfg, err := c.domainConfig()
		return dcfg.RemovalGrace, err
	}
	g, err := parse()
	require.NoError(t, err)
	require.Equal(t, 720*time.Hour, g)
	g, err = parse("-removal-grace", "48h")
	require.NoError(t, err)
	require.Equal(t, 48*time.Hour, g)
	g, err = parse("-removal-grace", "8760h")
	require.NoError(t, err)
	require.Equal(t, MaxRemovalGrace, g)
	for _, bad := range []string{"0s", "-1h", "8761h", "a month"} {
		_, err := parse("-removal-grace", bad)
		require.Error(t, err, bad)
	}
	t.Setenv("RAMPART_REMOVAL_GRACE", "9000h")
	_, err = parse()
	require.ErrorContains(t, err, "RAMPART_REMOVAL_GRACE")
	require.ErrorContains(t, err, "at most a year")
	t.Setenv("RAMPART_REMOVAL_GRACE", "240h")
	g, err = parse()
	require.NoError(t, err)
	require.Equal(t, 240*time.Hour, g)

	// A configuration built in code is checked too.
	_, err = (&Config{EdgeZone: "edge.example", RemovalGrace: -time.Hour}).domainConfig()
	require.ErrorContains(t, err, "must be positive")
}

// TestGeoIPFiles: the MaxMind-format files come from flags or the
// environment; a missing or unreadable one is a start-up error naming the
// settings and the file; with neither they nor a resolver, no enricher.
func TestGeoIPFiles(t *testing.T) {
	parse := func(args ...string) *Config {
		var c Config
		fs := NewFlagSet("rampart serve", "rampart serve [flags]")
		fs.SetOutput(io.Discard)
		c.ServeFlags(fs)
		require.NoError(t, fs.Parse(args, os.LookupEnv))
		return &c
	}
	c := parse("-dns-resolver", "off")
	e, err := c.enricher(nil, nil)
	require.NoError(t, err)
	require.Nil(t, e)
	e, err = parse("-dns-resolver", "127.0.0.1:53").enricher(nil, nil)
	require.NoError(t, err)
	require.NotNil(t, e)

	missing := t.TempDir() + "/GeoLite2-ASN.mmdb"
	_, err = parse("-dns-resolver", "off", "-geoip-asn-db", missing).enricher(nil, nil)
	require.ErrorContains(t, err, "RAMPART_GEOIP_ASN_DB")
	require.ErrorContains(t, err, missing)
	junk := t.TempDir() + "/country.mmdb"
	require.NoError(t, os.WriteFile(junk, []byte("not a database"), 0o600))
	t.Setenv("RAMPART_GEOIP_COUNTRY_DB", junk)
	c = parse("-dns-resolver", "off")
	require.Equal(t, junk, c.GeoIPCountryDB)
	_, err = c.enricher(nil, nil)
	require.ErrorContains(t, err, "country database")
	require.ErrorContains(t, err, junk)
}

// TestReadinessSettings: -readiness (or RAMPART_READINESS) changes the
// rules over the defaults and reaches the domain service; a bad value stops
// the start.
func TestReadinessSettings(t *testing.T) {
	parse := func(args ...string) (*Config, error) {
		var c Config
		fs := NewFlagSet("rampart serve", "rampart serve [flags]")
		fs.SetOutput(io.Discard)
		c.ServeFlags(fs)
		return &c, fs.Parse(args, os.LookupEnv)
	}
	c, err := parse()
	require.NoError(t, err)
	require.Equal(t, readiness.Defaults, c.Readiness)
	c, err = parse("-readiness", "window=60,min-messages=500")
	require.NoError(t, err)
	dcfg, err := c.domainConfig()
	require.NoError(t, err)
	require.Equal(t, 60, dcfg.Readiness.WindowDays)
	require.Equal(t, int64(500), dcfg.Readiness.MinMessages)
	require.Equal(t, readiness.Defaults.NewSenderDays, dcfg.Readiness.NewSenderDays)
	_, err = parse("-readiness", "window=3")
	require.ErrorContains(t, err, "window must be 7 to 366 days")
	t.Setenv("RAMPART_READINESS", "reject-unidentified=9")
	_, err = parse()
	require.ErrorContains(t, err, "reject-unidentified must not exceed quarantine-unidentified")
}

// TestPeopleSettings: sign-up is off unless opened; the mail relay is off
// (no mail: nil sender) unless set, printed to the log in dev, and a relay
// setting that cannot work is refused at start with its names.
func TestPeopleSettings(t *testing.T) {
	parse := func(args ...string) (*Config, error) {
		var c Config
		fs := NewFlagSet("rampart serve", "rampart serve [flags]")
		fs.SetOutput(io.Discard)
		c.ServeFlags(fs)
		return &c, fs.Parse(args, os.LookupEnv)
	}
	c, err := parse()
	require.NoError(t, err)
	require.Equal(t, "off", c.SignUp)
	require.Equal(t, 90*24*time.Hour, c.SessionLifetime)
	require.Equal(t, 7*24*time.Hour, c.InvitationTTL)
	m, err := c.mailer(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Nil(t, m, "serve without a relay sends no mail")
	c.Dev = true
	m, err = c.mailer(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.IsType(t, mailout.Log{}, m)

	_, err = parse("-signup", "maybe")
	require.Error(t, err)
	t.Setenv("RAMPART_SIGNUP", "open")
	c, err = parse()
	require.NoError(t, err)
	require.Equal(t, "open", c.SignUp)

	c, err = parse("-smtp-relay", "relay.example.net:587", "-smtp-relay-tls", "none", "-smtp-relay-user", "u")
	require.NoError(t, err)
	_, err = c.mailer(slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "RAMPART_SMTP_RELAY")
	require.ErrorContains(t, err, "without TLS")
	c, err = parse("-smtp-relay", "relay.example.net")
	require.NoError(t, err)
	_, err = c.mailer(slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "host:port")
	_, err = parse("-smtp-relay-tls", "sometimes")
	require.Error(t, err)
}

// TestMSPDepth: -msp-depth (RAMPART_MSP_DEPTH) defaults to 3 and takes a
// whole number of at least 1, from the flag or the environment.
func TestMSPDepth(t *testing.T) {
	parse := func(args ...string) (int, error) {
		var c Config
		fs := NewFlagSet("rampart serve", "rampart serve [flags]")
		fs.SetOutput(io.Discard)
		c.ServeFlags(fs)
		err := fs.Parse(args, os.LookupEnv)
		return c.MSPDepth, err
	}
	d, err := parse()
	require.NoError(t, err)
	require.Equal(t, 3, d)
	d, err = parse("-msp-depth", "5")
	require.NoError(t, err)
	require.Equal(t, 5, d)
	for _, bad := range []string{"0", "-1", "deep"} {
		_, err := parse("-msp-depth", bad)
		require.Error(t, err, bad)
	}
	t.Setenv("RAMPART_MSP_DEPTH", "0")
	_, err = parse()
	require.ErrorContains(t, err, "RAMPART_MSP_DEPTH")
	t.Setenv("RAMPART_MSP_DEPTH", "2")
	d, err = parse()
	require.NoError(t, err)
	require.Equal(t, 2, d)
}
