// Package app assembles Rampart's processes from configuration: `rampart
// serve` (API, workers), `rampart dev` (a private PostgreSQL, a demo account
// and every part, dnsedge included, in one process) and the operator
// commands. cmd/rampart only parses the command line and calls in here.
package app

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/rampartmail/rampart/dnsedge"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/intake/imappull"
	"github.com/rampartmail/rampart/internal/intake/smtpd"
	"github.com/rampartmail/rampart/internal/intake/upload"
	"github.com/rampartmail/rampart/internal/request"
	"github.com/rampartmail/rampart/jobs"
)

// Config is the configuration shared by the subcommands. Every field has a
// flag and an environment variable; the flag wins.
type Config struct {
	DatabaseURL string
	APIAddr     string
	Dev         bool
	Migrate     bool
	Workers     int
	// JobTimeout and JobRescueAfter configure River: see jobs.Config.
	JobTimeout     time.Duration
	JobRescueAfter time.Duration
	LogFormat      string
	LogLevel       string

	EdgeZone        string
	ReportsDomain   string
	EdgeNameServers string
	EdgeAddr        string
	EdgeMetricsAddr string
	EdgeSnapshot    string
	EdgeRRLRate     int
	EdgeRRLSlip     int

	DNSResolver string
	RiverUI     bool
	// SecureCookies marks cookies Secure behind a TLS-terminating proxy.
	SecureCookies bool

	// TrustedProxies is a comma-separated list of CIDR prefixes; read it
	// with [Config.Proxies].
	TrustedProxies  string
	LoginBackoff    time.Duration
	LoginBackoffMax time.Duration

	SMTPAddr              string
	SMTPHostname          string
	SMTPTLSCert           string
	SMTPTLSKey            string
	SMTPMaxSize           int
	SMTPMaxConnPerIP      int
	SMTPSessionsPerMinute int
	SMTPMessagesPerMinute int
	UploadMaxBody         int
	IMAPAddr              string
	IMAPTLS               string
	IMAPUser              string
	IMAPPasswordFile      string
	IMAPMailbox           string
	IMAPAccount           string
	IMAPInterval          time.Duration

	JWTKey     string
	JWTKeyFile string
	JWTKeyID   string
	DataDir    string

	// envErrs are environment values that could not be parsed; [Config.Check]
	// reports them, as the flag parser would report the same value as a flag.
	envErrs []error
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// envBool reads a boolean from the environment (true/false, 1/0, as
// strconv.ParseBool); an unparsable value is recorded, not ignored.
func (c *Config) envBool(name string, def bool) bool {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		c.envErrs = append(c.envErrs, fmt.Errorf("%s=%q: want true or false", name, v))
		return def
	}
	return b
}

// Check reports environment values that could not be parsed.
// It also refuses a job rescue delay that does not exceed the job timeout.
func (c *Config) Check() error {
	errs := append([]error(nil), c.envErrs...)
	if err := c.Jobs().Check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Jobs is the River client's configuration.
func (c *Config) Jobs() jobs.Config {
	return jobs.Config{Workers: c.Workers, JobTimeout: c.JobTimeout, RescueAfter: c.JobRescueAfter}
}

// envDur reads a duration from the environment; an unparsable value is
// recorded, not ignored.
func (c *Config) envDur(name string, def time.Duration) time.Duration {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		c.envErrs = append(c.envErrs, fmt.Errorf("%s=%q: want a duration such as 4m", name, v))
		return def
	}
	return d
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// Flags registers the configuration's flags, with environment defaults.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", env("DATABASE_URL", ""), "PostgreSQL URL (env DATABASE_URL); empty in dev mode starts a private cluster")
	fs.StringVar(&c.APIAddr, "addr", env("RAMPART_ADDR", "127.0.0.1:8080"), "API listen address (env RAMPART_ADDR)")
	fs.BoolVar(&c.Migrate, "migrate", env("RAMPART_MIGRATE", "") == "true", "apply migrations before starting (env RAMPART_MIGRATE=true)")
	fs.IntVar(&c.Workers, "workers", envInt("RAMPART_WORKERS", 10), "concurrent River jobs; 0 runs no workers (env RAMPART_WORKERS)")
	fs.DurationVar(&c.JobTimeout, "job-timeout", c.envDur("RAMPART_JOB_TIMEOUT", jobs.DefaultJobTimeout), "longest a job may run (report.ingest); other kinds are bounded by the smaller of this and their own (env RAMPART_JOB_TIMEOUT)")
	fs.DurationVar(&c.JobRescueAfter, "job-rescue-after", c.envDur("RAMPART_JOB_RESCUE_AFTER", jobs.DefaultRescueAfter), "retry a job left running this long by a process that died; must exceed -job-timeout (env RAMPART_JOB_RESCUE_AFTER)")
	fs.StringVar(&c.LogFormat, "log-format", env("RAMPART_LOG_FORMAT", ""), "json or text (env RAMPART_LOG_FORMAT; default json, text in dev)")
	fs.StringVar(&c.LogLevel, "log-level", env("RAMPART_LOG_LEVEL", "info"), "debug, info, warn or error (env RAMPART_LOG_LEVEL)")
	fs.StringVar(&c.EdgeZone, "edge-zone", env("RAMPART_EDGE_ZONE", "edge.rampart.test"), "the DNS edge's own zone (env RAMPART_EDGE_ZONE)")
	fs.StringVar(&c.ReportsDomain, "reports-domain", env("RAMPART_REPORTS_DOMAIN", "reports.rampart.test"), "the domain of Rampart's report addresses (env RAMPART_REPORTS_DOMAIN)")
	fs.StringVar(&c.EdgeNameServers, "edge-ns", env("RAMPART_EDGE_NS", ""), "comma-separated edge name servers (env RAMPART_EDGE_NS; default ns1.<zone>,ns2.<zone>)")
	fs.StringVar(&c.EdgeAddr, "edge-addr", env("DNSEDGE_LISTEN", "127.0.0.1:5353"), "dev: dnsedge UDP+TCP listen address (env DNSEDGE_LISTEN)")
	fs.StringVar(&c.EdgeMetricsAddr, "edge-metrics", env("DNSEDGE_METRICS", "127.0.0.1:9153"), "dev: dnsedge metrics address (env DNSEDGE_METRICS)")
	fs.StringVar(&c.DataDir, "data-dir", env("RAMPART_DATA_DIR", ".data"), "dev: folder for the private cluster, snapshot and keys (env RAMPART_DATA_DIR)")
	fs.StringVar(&c.EdgeSnapshot, "edge-snapshot", env("DNSEDGE_SNAPSHOT", ""), "dev: dnsedge snapshot file (env DNSEDGE_SNAPSHOT; default <data-dir>/dnsedge.snapshot)")
	fs.IntVar(&c.EdgeRRLRate, "edge-rrl-rate", envInt("DNSEDGE_RRL_RATE", dnsedge.DefaultRRLRate), "dev: dnsedge UDP responses per second per client /24 or /56; 0 for no limit (env DNSEDGE_RRL_RATE)")
	fs.IntVar(&c.EdgeRRLSlip, "edge-rrl-slip", envInt("DNSEDGE_RRL_SLIP", dnsedge.DefaultRRLSlip), "dev: dnsedge sends every Nth rate-limited response truncated; -1 drops them all (env DNSEDGE_RRL_SLIP)")
	fs.StringVar(&c.DNSResolver, "dns-resolver", env("RAMPART_DNS_RESOLVER", ""), "DNS server (host:port) for resolving senders' SPF includes and checking domain ownership proofs (env RAMPART_DNS_RESOLVER; default: the first of /etc/resolv.conf; \"off\" disables: only the operator verifies domains then)")
	fs.StringVar(&c.SMTPAddr, "smtp-addr", env("RAMPART_SMTP_ADDR", ""), "SMTP listen address for rua mail, e.g. :25 (env RAMPART_SMTP_ADDR; empty: off; dev: 127.0.0.1:2525)")
	fs.StringVar(&c.SMTPHostname, "smtp-hostname", env("RAMPART_SMTP_HOSTNAME", ""), "name in the SMTP greeting (env RAMPART_SMTP_HOSTNAME; default the reports domain)")
	fs.StringVar(&c.SMTPTLSCert, "smtp-tls-cert", env("RAMPART_SMTP_TLS_CERT", ""), "PEM certificate chain; enables STARTTLS (env RAMPART_SMTP_TLS_CERT)")
	fs.StringVar(&c.SMTPTLSKey, "smtp-tls-key", env("RAMPART_SMTP_TLS_KEY", ""), "PEM private key (env RAMPART_SMTP_TLS_KEY)")
	fs.IntVar(&c.SMTPMaxSize, "smtp-max-size", envInt("RAMPART_SMTP_MAX_SIZE", smtpd.DefaultMaxSize), "largest rua message in bytes (env RAMPART_SMTP_MAX_SIZE)")
	fs.IntVar(&c.SMTPMaxConnPerIP, "smtp-max-conn-per-ip", envInt("RAMPART_SMTP_MAX_CONN_PER_IP", smtpd.DefaultMaxSessionsPerClient), "concurrent SMTP sessions per client (env RAMPART_SMTP_MAX_CONN_PER_IP)")
	fs.IntVar(&c.SMTPSessionsPerMinute, "smtp-sessions-per-minute", envInt("RAMPART_SMTP_SESSIONS_PER_MINUTE", smtpd.DefaultSessionsPerMinute), "SMTP sessions per client per minute (env RAMPART_SMTP_SESSIONS_PER_MINUTE)")
	fs.IntVar(&c.SMTPMessagesPerMinute, "smtp-messages-per-minute", envInt("RAMPART_SMTP_MESSAGES_PER_MINUTE", smtpd.DefaultMessagesPerMinute), "SMTP messages per client per minute (env RAMPART_SMTP_MESSAGES_PER_MINUTE)")
	fs.IntVar(&c.UploadMaxBody, "upload-max-body", envInt("RAMPART_UPLOAD_MAX_BODY", upload.DefaultMaxBody), "largest upload request (POST /upload, the uploadReports mutation) in bytes (env RAMPART_UPLOAD_MAX_BODY)")
	fs.StringVar(&c.IMAPAddr, "imap-addr", env("RAMPART_IMAP_ADDR", ""), "IMAP server host:port to pull reports from (env RAMPART_IMAP_ADDR; empty: off)")
	fs.StringVar(&c.IMAPTLS, "imap-tls", env("RAMPART_IMAP_TLS", "tls"), "tls, starttls or none (env RAMPART_IMAP_TLS)")
	fs.StringVar(&c.IMAPUser, "imap-user", env("RAMPART_IMAP_USER", ""), "IMAP login (env RAMPART_IMAP_USER)")
	fs.StringVar(&c.IMAPPasswordFile, "imap-password-file", env("RAMPART_IMAP_PASSWORD_FILE", ""), "file holding the IMAP password (or env RAMPART_IMAP_PASSWORD)")
	fs.StringVar(&c.IMAPMailbox, "imap-mailbox", env("RAMPART_IMAP_MAILBOX", "INBOX"), "mailbox to pull (env RAMPART_IMAP_MAILBOX)")
	fs.StringVar(&c.IMAPAccount, "imap-account", env("RAMPART_IMAP_ACCOUNT", ""), "account id the pulled reports belong to (env RAMPART_IMAP_ACCOUNT)")
	fs.DurationVar(&c.IMAPInterval, "imap-interval", envDuration("RAMPART_IMAP_INTERVAL", imappull.DefaultInterval), "how often to pull (env RAMPART_IMAP_INTERVAL)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", env("RAMPART_TRUSTED_PROXIES", ""), "comma-separated CIDR prefixes of reverse proxies trusted to name the client: X-Forwarded-For on the API and /upload, the PROXY protocol (v1 or v2, required from them) on SMTP (env RAMPART_TRUSTED_PROXIES; default none)")
	fs.DurationVar(&c.LoginBackoff, "login-backoff", envDuration("RAMPART_LOGIN_BACKOFF", auth.DefaultLoginBackoff), "first wait imposed once a client's free failed logins are spent; doubles per failure (env RAMPART_LOGIN_BACKOFF)")
	fs.DurationVar(&c.LoginBackoffMax, "login-backoff-max", envDuration("RAMPART_LOGIN_BACKOFF_MAX", auth.DefaultLoginBackoffMax), "ceiling of the wait between failed logins (env RAMPART_LOGIN_BACKOFF_MAX)")
	fs.BoolVar(&c.RiverUI, "river-ui", env("RAMPART_RIVER_UI", "") == "true", "serve the River job dashboard at /riverui/ to instance operators (`rampart admin grant-operator`) (env RAMPART_RIVER_UI=true; on in dev)")
	fs.BoolVar(&c.SecureCookies, "secure-cookies", c.envBool("RAMPART_SECURE_COOKIES", false), "the API is served over https by a TLS-terminating proxy: mark the dashboard cookie Secure and expect https origins (env RAMPART_SECURE_COOKIES=true; automatic when the server itself terminates TLS)")
	fs.StringVar(&c.JWTKey, "jwt-key", env("RAMPART_JWT_KEY", ""), "base64 Ed25519 seed signing access tokens (env RAMPART_JWT_KEY); same on every replica")
	fs.StringVar(&c.JWTKeyFile, "jwt-key-file", env("RAMPART_JWT_KEY_FILE", ""), "file holding the base64 seed, created when missing (env RAMPART_JWT_KEY_FILE; dev default <data-dir>/jwt.key)")
	fs.StringVar(&c.JWTKeyID, "jwt-kid", env("RAMPART_JWT_KID", "k1"), "key id of the signing key (env RAMPART_JWT_KID)")
}

// EdgeNS returns the edge name servers (with any addresses), defaulted
// from the zone.
func (c *Config) EdgeNS() ([]dnsedge.NameServer, error) {
	spec := c.EdgeNameServers
	if spec == "" {
		spec = "ns1." + c.EdgeZone + ",ns2." + c.EdgeZone
	}
	ns, err := dnsedge.ParseNameServers(spec)
	if err != nil {
		return nil, fmt.Errorf("edge name servers: %w", err)
	}
	return ns, nil
}

// EdgeRRL is the in-process edge's dnsedge.Config.RRLRate: 0 on the command
// line means no limit, as for cmd/dnsedge.
func (c *Config) EdgeRRL() int {
	if c.EdgeRRLRate <= 0 {
		return dnsedge.RRLOff
	}
	return c.EdgeRRLRate
}

// Proxies returns the trusted proxies. A malformed list is an error, from
// the flag and the environment alike.
func (c *Config) Proxies() (request.Proxies, error) {
	p, err := request.ParseProxies(c.TrustedProxies)
	if err != nil {
		return request.Proxies{}, fmt.Errorf("-trusted-proxies (RAMPART_TRUSTED_PROXIES): %w", err)
	}
	return p, nil
}

// NameServers returns the edge name servers' host names.
func (c *Config) NameServers() ([]string, error) {
	ns, err := c.EdgeNS()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ns))
	for i, n := range ns {
		names[i] = n.Name
	}
	return names, nil
}

// Logger builds the process logger: JSON in production, text in dev.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	format := c.LogFormat
	if format == "" {
		format = map[bool]string{true: "text", false: "json"}[c.Dev]
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// KeySet loads the access-token signing key from the configuration: the
// seed itself, or a key file (created with a fresh seed when missing).
func (c *Config) KeySet() (*auth.KeySet, error) {
	encoded := c.JWTKey
	if encoded == "" {
		file := c.JWTKeyFile
		if file == "" && c.Dev {
			file = filepath.Join(c.DataDir, "jwt.key")
		}
		if file == "" {
			return nil, errors.New("no access-token signing key: set RAMPART_JWT_KEY (a base64 Ed25519 seed, the same on every replica) or RAMPART_JWT_KEY_FILE")
		}
		b, err := os.ReadFile(file) //nolint:gosec // G304: the operator's RAMPART_JWT_KEY_FILE, or the dev data folder's key
		switch {
		case errors.Is(err, os.ErrNotExist):
			seed, err := auth.GenerateSeed()
			if err != nil {
				return nil, err
			}
			encoded = base64.StdEncoding.EncodeToString(seed)
			if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
				return nil, fmt.Errorf("create key folder: %w", err)
			}
			if err := os.WriteFile(file, []byte(encoded+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("write key file: %w", err)
			}
		case err != nil:
			return nil, fmt.Errorf("read key file: %w", err)
		default:
			encoded = strings.TrimSpace(string(b))
		}
	}
	seed, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("access-token signing key is not base64: %w", err)
	}
	return auth.NewKeySet(c.JWTKeyID, seed)
}

// Resolver returns the DNS server for resolving senders' SPF includes and
// checking domain ownership proofs, or "" when DNS checks are off or no
// server is known.
func (c *Config) Resolver() string {
	switch c.DNSResolver {
	case "off":
		return ""
	case "":
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cc.Servers) == 0 {
			return ""
		}
		return net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	return c.DNSResolver
}
