package main

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
)

// runRampart runs the built binary with exactly the environment given (the
// test's own, without any Rampart or dnsedge setting, plus env) and returns
// its exit status and standard error.
func runRampart(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	bin, _ := attacktest.Binaries(t)
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAMPART_") && !strings.HasPrefix(kv, "DNSEDGE_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = t.TempDir()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stderr.String()
	}
	require.NoError(t, err)
	return 0, stderr.String()
}

// Every subcommand has its own flag set: -h exits 0 and lists exactly the
// flags that subcommand reads.
func TestSubcommandHelpListsItsOwnFlags(t *testing.T) {
	t.Parallel()
	database := []string{"database-url"}
	logs := []string{"log-format", "log-level"}
	domain := []string{"dns-resolver", "edge-ns", "edge-zone", "removal-grace", "reports-domain"}
	service := slices.Concat(database, logs, domain, []string{
		"addr", "workers", "job-timeout", "job-rescue-after",
		"smtp-addr", "smtp-hostname", "smtp-tls-cert", "smtp-tls-key", "smtp-max-size", "smtp-max-conn-per-ip",
		"smtp-sessions-per-minute", "smtp-messages-per-minute", "upload-max-body",
		"imap-addr", "imap-tls", "imap-user", "imap-password-file", "imap-mailbox", "imap-account", "imap-interval",
		"trusted-proxies", "login-backoff", "login-backoff-max", "secure-cookies", "jwt-key", "jwt-key-file", "jwt-kid",
		"geoip-asn-db", "geoip-country-db", "readiness", "msp-depth",
		"signup", "session-lifetime", "invitation-ttl", "smtp-relay", "smtp-relay-tls", "smtp-relay-user",
		"smtp-relay-password-file", "smtp-from", "public-url",
	})
	for _, tc := range []struct {
		command string
		flags   []string
	}{
		{"serve", slices.Concat(service, []string{"migrate", "river-ui", "allow-dev-zone"})},
		{"dev", slices.Concat(service, []string{"data-dir", "edge-addr", "edge-metrics", "edge-snapshot", "edge-rrl-rate", "edge-rrl-slip"})},
		{"migrate", slices.Concat(database, logs)},
		{"admin create-owner", slices.Concat(database, []string{"email", "name", "account"})},
		{"admin grant-operator", slices.Concat(database, []string{"email"})},
		{"admin revoke-operator", slices.Concat(database, []string{"email"})},
		{"admin verify-domain", slices.Concat(database, logs, domain, []string{"account"})},
		{"import", slices.Concat(database, logs, []string{"account", "quiet", "wait", "wait-timeout"})},
		{"query", []string{"server", "tcp"}},
		{"devdb run", slices.Concat(logs, []string{"dir", "fresh", "durable"})},
		{"senders refresh", slices.Concat(database, logs, domain, []string{"service"})},
		{"devdb stop", []string{"dir"}},
	} {
		t.Run(tc.command, func(t *testing.T) {
			t.Parallel()
			code, help := runRampart(t, nil, append(strings.Fields(tc.command), "-h")...)
			require.Equal(t, 0, code, help)
			require.Contains(t, help, "usage: rampart "+tc.command)
			var listed []string
			for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help, -1) {
				listed = append(listed, m[1])
			}
			require.ElementsMatch(t, tc.flags, listed, help)
		})
	}

	code, help := runRampart(t, nil, "admin", "-h")
	require.Equal(t, 0, code, help)
	require.Contains(t, help, "rampart admin verify-domain")
	code, help = runRampart(t, nil, "-h")
	require.Equal(t, 0, code, help)
	code, _ = runRampart(t, nil)
	require.Equal(t, 2, code, "no command is a usage error")
}

// A bad value in the environment is refused as the same value of the flag
// is, in the flag's words, naming the variable; nothing starts.
func TestBadEnvironmentValueRefusedLikeTheFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		command  string
		variable string
		flag     string
		value    string
	}{
		{"serve", "RAMPART_WORKERS", "workers", "many"},
		{"serve", "RAMPART_WORKERS", "workers", "-3"},
		{"serve", "RAMPART_JOB_RESCUE_AFTER", "job-rescue-after", "soon"},
		{"serve", "RAMPART_LOGIN_BACKOFF", "login-backoff", "soon"},
		{"serve", "RAMPART_IMAP_INTERVAL", "imap-interval", "0s"},
		{"serve", "RAMPART_SMTP_MAX_SIZE", "smtp-max-size", "-1"},
		{"serve", "RAMPART_UPLOAD_MAX_BODY", "upload-max-body", "1MB"},
		{"serve", "RAMPART_RIVER_UI", "river-ui", "maybe"},
		{"serve", "RAMPART_SECURE_COOKIES", "secure-cookies", "yes please"},
		{"serve", "RAMPART_IMAP_TLS", "imap-tls", "ssl"},
		{"serve", "RAMPART_LOG_LEVEL", "log-level", "loud"},
		{"dev", "DNSEDGE_RRL_RATE", "edge-rrl-rate", "x"},
		{"dev", "RAMPART_SMTP_MESSAGES_PER_MINUTE", "smtp-messages-per-minute", "0"},
		{"migrate", "RAMPART_LOG_FORMAT", "log-format", "xml"},
		{"import", "RAMPART_LOG_LEVEL", "log-level", "verbose"},
	} {
		t.Run(tc.variable+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			code, flagErr := runRampart(t, nil, tc.command, "-"+tc.flag+"="+tc.value)
			require.NotEqual(t, 0, code, flagErr)
			flagMsg := lastLine(flagErr)
			require.Regexp(t, `^rampart: invalid (boolean )?value "`, flagMsg, flagErr)

			code, envErr := runRampart(t, []string{tc.variable + "=" + tc.value}, tc.command)
			require.Equal(t, 1, code, envErr)
			require.Equal(t, "rampart: "+tc.variable+": "+strings.TrimPrefix(flagMsg, "rampart: "), lastLine(envErr))
		})
	}

	// The flag wins over the environment, a bad value included, and a
	// command does not read another command's variables.
	// (The development edge names, allowed, let serve get as far as the
	// database.)
	code, stderr := runRampart(t, []string{"RAMPART_WORKERS=many", "RAMPART_ALLOW_DEV_ZONE=true"}, "serve", "-workers", "2")
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "no database", "the flag's value should have been used")
	code, stderr = runRampart(t, []string{"RAMPART_WORKERS=many", "DNSEDGE_RRL_RATE=x"}, "devdb", "stop", "-dir", t.TempDir())
	require.Equal(t, 0, code, stderr)
	// An empty variable leaves a number at its default.
	code, stderr = runRampart(t, []string{"RAMPART_WORKERS=", "RAMPART_ALLOW_DEV_ZONE=true"}, "serve")
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "no database")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
