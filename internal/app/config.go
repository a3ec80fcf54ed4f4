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
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/rampartmail/rampart/dnsedge"
	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/edgeconf"
	"github.com/rampartmail/rampart/internal/intake/imappull"
	"github.com/rampartmail/rampart/internal/intake/smtpd"
	"github.com/rampartmail/rampart/internal/intake/upload"
	"github.com/rampartmail/rampart/internal/mailout"
	"github.com/rampartmail/rampart/internal/readiness"
	"github.com/rampartmail/rampart/internal/request"
	"github.com/rampartmail/rampart/jobs"
)

// Config is the configuration shared by the subcommands. Every field has a
// flag and an environment variable; the flag wins. Each subcommand registers
// only the flags it reads (ServeFlags, DevFlags, DatabaseFlags, ...) on its
// own [FlagSet].
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

	// EdgeZone, ReportsDomain and EdgeNameServers are the settings dnsedge
	// shares (package edgeconf). `rampart serve` refuses development names
	// unless AllowDevZone; `rampart dev` uses them.
	EdgeZone        string
	ReportsDomain   string
	EdgeNameServers string
	AllowDevZone    bool
	EdgeAddr        string
	EdgeMetricsAddr string
	EdgeSnapshot    string
	EdgeRRLRate     int
	EdgeRRLSlip     int

	DNSResolver string
	// RemovalGrace is how long the edge answers a removed domain's SPF
	// names with a record that authorizes nothing (domain.Config).
	RemovalGrace time.Duration
	// MSPDepth is how many levels of customer accounts may nest below a
	// top-level account (access.SetMaxDepth).
	MSPDepth int
	// Readiness are the rules of the readiness verdicts (zero: the
	// defaults).
	Readiness readiness.Settings
	RiverUI   bool
	// SecureCookies marks cookies Secure behind a TLS-terminating proxy.
	SecureCookies bool

	// TrustedProxies is a comma-separated list of CIDR prefixes; read it
	// with [Config.Proxies].
	TrustedProxies  string
	LoginBackoff    time.Duration
	LoginBackoffMax time.Duration

	// SignUp is "open" when anyone may create a user and an account, "off"
	// (the default) when only invitations add people.
	SignUp string
	// SessionLifetime is the absolute lifetime of a login session;
	// InvitationTTL how long an invitation can be accepted.
	SessionLifetime time.Duration
	InvitationTTL   time.Duration
	// The relay Rampart's own mail (invitations, password resets) goes
	// through; with no relay, `rampart serve` sends none and `rampart dev`
	// writes it to the log. PublicURL starts the links in that mail.
	SMTPRelay             string
	SMTPRelayTLS          string
	SMTPRelayUser         string
	SMTPRelayPasswordFile string
	SMTPFrom              string
	PublicURL             string
	// Now is the clock of sign-in and invitations; nil is time.Now. Tests
	// set it; no flag does.
	Now func() time.Time

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

	// GeoIPASNDB and GeoIPCountryDB are the operator's MaxMind-format
	// files (package enrich); "" for none.
	GeoIPASNDB     string
	GeoIPCountryDB string

	JWTKey     string
	JWTKeyFile string
	JWTKeyID   string
	DataDir    string
}

// FlagSet is one subcommand's flags, each of which may default to an
// environment variable. The variable's value goes through the flag's own
// parser ([flag.FlagSet.Set]), so a value the flag would refuse is refused
// from the environment too, with the same words.
type FlagSet struct {
	*flag.FlagSet
	env map[string]string // flag name → environment variable
}

// NewFlagSet returns an empty flag set for the subcommand name ("rampart
// serve"); usage is its synopsis, printed above the flags by -h.
func NewFlagSet(name, usage string) *FlagSet {
	f := &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: map[string]string{}}
	f.Usage = func() {
		out := f.Output()
		_, _ = fmt.Fprintf(out, "usage: %s\n", usage)
		if hasFlags(f.FlagSet) {
			_, _ = fmt.Fprintln(out, "\nflags:")
			f.PrintDefaults()
		}
	}
	return f
}

func hasFlags(fs *flag.FlagSet) bool {
	found := false
	fs.VisitAll(func(*flag.Flag) { found = true })
	return found
}

// Env makes the environment variable the default of the flag name.
func (f *FlagSet) Env(name, variable string) { f.env[name] = variable }

// Parse reads the command line, then the environment for every flag the
// command line did not set (the flag wins). getenv is os.LookupEnv outside
// tests. An empty variable leaves a number, duration or boolean at its
// default, as if it were unset; it empties a text flag.
func (f *FlagSet) Parse(args []string, getenv func(string) (string, bool)) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	names := make([]string, 0, len(f.env))
	for name := range f.env {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		variable := f.env[name]
		v, ok := getenv(variable)
		if !ok || set[name] {
			continue
		}
		if err := f.Set(name, v); err != nil {
			if v == "" {
				continue
			}
			// The words of the flag package's own refusal of -name=v.
			if fl, ok := f.Lookup(name).Value.(interface{ IsBoolFlag() bool }); ok && fl.IsBoolFlag() {
				errs = append(errs, fmt.Errorf("%s: invalid boolean value %q for -%s: %w", variable, v, name, err))
				continue
			}
			errs = append(errs, fmt.Errorf("%s: invalid value %q for flag -%s: %w", variable, v, name, err))
		}
	}
	return errors.Join(errs...)
}

// DatabaseFlags registers -database-url.
func (c *Config) DatabaseFlags(f *FlagSet) {
	f.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL (env DATABASE_URL); empty in dev mode starts a private cluster")
	f.Env("database-url", "DATABASE_URL")
}

// LogFlags registers -log-format and -log-level.
func (c *Config) LogFlags(f *FlagSet) {
	f.Var(oneOf(&c.LogFormat, "", "json", "text"), "log-format", "log `format`: json or text (env RAMPART_LOG_FORMAT; default json, text in dev)")
	f.Env("log-format", "RAMPART_LOG_FORMAT")
	c.LogLevel = "info"
	f.Var(oneOf(&c.LogLevel, "debug", "info", "warn", "error"), "log-level", "log `level`: debug, info, warn or error (env RAMPART_LOG_LEVEL)")
	f.Env("log-level", "RAMPART_LOG_LEVEL")
}

// DomainFlags registers the flags of the domain service: the edge's zone
// and name servers, the reports domain and the DNS resolver.
func (c *Config) DomainFlags(f *FlagSet) {
	str := func(p *string, name, variable, def, usage string) {
		f.StringVar(p, name, def, usage)
		f.Env(name, variable)
	}
	// The settings dnsedge shares, under the same names and defaults.
	for _, s := range []struct {
		p *string
		s edgeconf.Setting
	}{
		{&c.EdgeZone, edgeconf.Zone},
		{&c.ReportsDomain, edgeconf.ReportsDomain},
		{&c.EdgeNameServers, edgeconf.NameServers},
	} {
		str(s.p, s.s.Flag, s.s.Env, s.s.Default, s.s.Usage)
	}
	str(&c.DNSResolver, "dns-resolver", "RAMPART_DNS_RESOLVER", "", "DNS server (host:port) for resolving senders' SPF includes, checking domain ownership proofs and the records customers publish (env RAMPART_DNS_RESOLVER; default: the first of /etc/resolv.conf; \"off\" disables: only the operator verifies domains then)")
	f.Var(graceDuration{&c.RemovalGrace}, "removal-grace", "how long after a domain is removed the edge answers its SPF names with a record that authorizes nothing, so that a record the customer left in place is no error, a `duration` of at most a year (env RAMPART_REMOVAL_GRACE; default 720h)")
	f.Env("removal-grace", "RAMPART_REMOVAL_GRACE")
}

// MaxRemovalGrace bounds -removal-grace.
const MaxRemovalGrace = 365 * 24 * time.Hour

// graceDuration is -removal-grace: positive, at most MaxRemovalGrace; 0
// (unset) stands for domain.DefaultRemovalGrace.
type graceDuration struct{ p *time.Duration }

func (g graceDuration) String() string {
	if g.p == nil || *g.p == 0 {
		return "720h0m0s"
	}
	return g.p.String()
}

func (g graceDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration (such as 720h)")
	}
	if err := checkRemovalGrace(v); err != nil {
		return err
	}
	*g.p = v
	return nil
}

func checkRemovalGrace(v time.Duration) error {
	if v <= 0 {
		return errors.New("must be positive")
	}
	if v > MaxRemovalGrace {
		return fmt.Errorf("must be at most a year (%s)", MaxRemovalGrace)
	}
	return nil
}

// ServiceFlags registers the flags of the running service, shared by
// `rampart serve` and `rampart dev`: the database, the log, the API, report
// intake, the workers and sign-in.
func (c *Config) ServiceFlags(f *FlagSet) {
	c.DatabaseFlags(f)
	c.LogFlags(f)
	c.DomainFlags(f)
	f.Var(atLeast(&c.MSPDepth, access.DefaultMaxDepth, 1), "msp-depth", "how many `levels` of customer accounts may nest below a top-level (MSP) account; its owners act in all of them (env RAMPART_MSP_DEPTH)")
	f.Env("msp-depth", "RAMPART_MSP_DEPTH")
	str := func(p *string, name, variable, def, usage string) {
		f.StringVar(p, name, def, usage)
		f.Env(name, variable)
	}
	vr := func(v flag.Value, name, variable, usage string) {
		f.Var(v, name, usage)
		f.Env(name, variable)
	}
	str(&c.APIAddr, "addr", "RAMPART_ADDR", "127.0.0.1:8080", "API listen address (env RAMPART_ADDR)")
	vr(atLeast(&c.Workers, 10, 0), "workers", "RAMPART_WORKERS", "`number` of concurrent River jobs; 0 runs no workers (env RAMPART_WORKERS)")
	vr(positiveDuration(&c.JobTimeout, jobs.DefaultJobTimeout), "job-timeout", "RAMPART_JOB_TIMEOUT", "longest a job may run, a `duration` (report.ingest); other kinds are bounded by the smaller of this and their own (env RAMPART_JOB_TIMEOUT)")
	vr(positiveDuration(&c.JobRescueAfter, jobs.DefaultRescueAfter), "job-rescue-after", "RAMPART_JOB_RESCUE_AFTER", "retry a job left running this long by a process that died, a `duration`; must exceed -job-timeout (env RAMPART_JOB_RESCUE_AFTER)")
	str(&c.SMTPAddr, "smtp-addr", "RAMPART_SMTP_ADDR", "", "SMTP listen address for rua mail, e.g. :25 (env RAMPART_SMTP_ADDR; empty: off; dev: 127.0.0.1:2525)")
	str(&c.SMTPHostname, "smtp-hostname", "RAMPART_SMTP_HOSTNAME", "", "name in the SMTP greeting (env RAMPART_SMTP_HOSTNAME; default the reports domain)")
	str(&c.SMTPTLSCert, "smtp-tls-cert", "RAMPART_SMTP_TLS_CERT", "", "PEM certificate chain; enables STARTTLS (env RAMPART_SMTP_TLS_CERT)")
	str(&c.SMTPTLSKey, "smtp-tls-key", "RAMPART_SMTP_TLS_KEY", "", "PEM private key (env RAMPART_SMTP_TLS_KEY)")
	vr(atLeast(&c.SMTPMaxSize, smtpd.DefaultMaxSize, 1), "smtp-max-size", "RAMPART_SMTP_MAX_SIZE", "largest rua message in `bytes` (env RAMPART_SMTP_MAX_SIZE)")
	vr(atLeast(&c.SMTPMaxConnPerIP, smtpd.DefaultMaxSessionsPerClient, 1), "smtp-max-conn-per-ip", "RAMPART_SMTP_MAX_CONN_PER_IP", "`number` of concurrent SMTP sessions per client (env RAMPART_SMTP_MAX_CONN_PER_IP)")
	vr(atLeast(&c.SMTPSessionsPerMinute, smtpd.DefaultSessionsPerMinute, 1), "smtp-sessions-per-minute", "RAMPART_SMTP_SESSIONS_PER_MINUTE", "SMTP `sessions` per client per minute (env RAMPART_SMTP_SESSIONS_PER_MINUTE)")
	vr(atLeast(&c.SMTPMessagesPerMinute, smtpd.DefaultMessagesPerMinute, 1), "smtp-messages-per-minute", "RAMPART_SMTP_MESSAGES_PER_MINUTE", "SMTP `messages` per client per minute (env RAMPART_SMTP_MESSAGES_PER_MINUTE)")
	vr(atLeast(&c.UploadMaxBody, upload.DefaultMaxBody, 1), "upload-max-body", "RAMPART_UPLOAD_MAX_BODY", "largest upload request (POST /upload, the uploadReports mutation) in `bytes` (env RAMPART_UPLOAD_MAX_BODY)")
	str(&c.IMAPAddr, "imap-addr", "RAMPART_IMAP_ADDR", "", "IMAP server host:port to pull reports from (env RAMPART_IMAP_ADDR; empty: off)")
	c.IMAPTLS = "tls"
	vr(oneOf(&c.IMAPTLS, "tls", "starttls", "none"), "imap-tls", "RAMPART_IMAP_TLS", "`mode`: tls, starttls or none (env RAMPART_IMAP_TLS)")
	str(&c.IMAPUser, "imap-user", "RAMPART_IMAP_USER", "", "IMAP login (env RAMPART_IMAP_USER)")
	str(&c.IMAPPasswordFile, "imap-password-file", "RAMPART_IMAP_PASSWORD_FILE", "", "file holding the IMAP password (or env RAMPART_IMAP_PASSWORD)")
	str(&c.IMAPMailbox, "imap-mailbox", "RAMPART_IMAP_MAILBOX", "INBOX", "mailbox to pull (env RAMPART_IMAP_MAILBOX)")
	str(&c.IMAPAccount, "imap-account", "RAMPART_IMAP_ACCOUNT", "", "account id the pulled reports belong to (env RAMPART_IMAP_ACCOUNT)")
	vr(positiveDuration(&c.IMAPInterval, imappull.DefaultInterval), "imap-interval", "RAMPART_IMAP_INTERVAL", "how often to pull, a `duration` (env RAMPART_IMAP_INTERVAL)")
	str(&c.GeoIPASNDB, "geoip-asn-db", "RAMPART_GEOIP_ASN_DB", "", "`path` of a MaxMind-format ASN database (.mmdb, such as GeoLite2-ASN) giving report sources their autonomous system; read at start, never downloaded (env RAMPART_GEOIP_ASN_DB; default none)")
	str(&c.GeoIPCountryDB, "geoip-country-db", "RAMPART_GEOIP_COUNTRY_DB", "", "`path` of a MaxMind-format country database (.mmdb, such as GeoLite2-Country) giving report sources their country; read at start, never downloaded (env RAMPART_GEOIP_COUNTRY_DB; default none)")
	str(&c.TrustedProxies, "trusted-proxies", "RAMPART_TRUSTED_PROXIES", "", "comma-separated CIDR prefixes of reverse proxies trusted to name the client: X-Forwarded-For on the API and /upload, the PROXY protocol (v1 or v2, required from them) on SMTP (env RAMPART_TRUSTED_PROXIES; default none)")
	vr(positiveDuration(&c.LoginBackoff, auth.DefaultLoginBackoff), "login-backoff", "RAMPART_LOGIN_BACKOFF", "first `wait` imposed once a client's free failed logins are spent; doubles per failure (env RAMPART_LOGIN_BACKOFF)")
	vr(positiveDuration(&c.LoginBackoffMax, auth.DefaultLoginBackoffMax), "login-backoff-max", "RAMPART_LOGIN_BACKOFF_MAX", "ceiling of the `wait` between failed logins (env RAMPART_LOGIN_BACKOFF_MAX)")
	c.SignUp = "off"
	vr(oneOf(&c.SignUp, "open", "off"), "signup", "RAMPART_SIGNUP", "`mode` of sign-up: open (anyone may create a user and an account) or off (only invitations add people) (env RAMPART_SIGNUP)")
	vr(positiveDuration(&c.SessionLifetime, auth.DefaultSessionLifetime), "session-lifetime", "RAMPART_SESSION_LIFETIME", "absolute lifetime of a login session, a `duration`: refreshing never extends a session past it (env RAMPART_SESSION_LIFETIME)")
	vr(positiveDuration(&c.InvitationTTL, account.DefaultInvitationTTL), "invitation-ttl", "RAMPART_INVITATION_TTL", "how long an invitation can be accepted, a `duration` (env RAMPART_INVITATION_TTL)")
	str(&c.SMTPRelay, "smtp-relay", "RAMPART_SMTP_RELAY", "", "SMTP relay (host:port) for Rampart's own mail: invitations and password resets (env RAMPART_SMTP_RELAY; empty: no mail; dev: printed to the log)")
	c.SMTPRelayTLS = mailout.TLSStartTLS
	vr(oneOf(&c.SMTPRelayTLS, mailout.TLSStartTLS, mailout.TLSImplicit, mailout.TLSNone), "smtp-relay-tls", "RAMPART_SMTP_RELAY_TLS", "`mode` of the relay connection: starttls (required), tls or none (only for a relay on a trusted network) (env RAMPART_SMTP_RELAY_TLS)")
	str(&c.SMTPRelayUser, "smtp-relay-user", "RAMPART_SMTP_RELAY_USER", "", "relay login, for AUTH PLAIN over TLS (env RAMPART_SMTP_RELAY_USER)")
	str(&c.SMTPRelayPasswordFile, "smtp-relay-password-file", "RAMPART_SMTP_RELAY_PASSWORD_FILE", "", "file holding the relay password (or env RAMPART_SMTP_RELAY_PASSWORD)")
	str(&c.SMTPFrom, "smtp-from", "RAMPART_SMTP_FROM", "", "sender address of Rampart's own mail (env RAMPART_SMTP_FROM; default noreply@<reports domain>)")
	str(&c.PublicURL, "public-url", "RAMPART_PUBLIC_URL", "", "URL where people reach Rampart, starting the links in its mail (env RAMPART_PUBLIC_URL; default http://<addr>)")
	f.Var(switchValue{&c.SecureCookies}, "secure-cookies", "the API is served over https by a TLS-terminating proxy: mark the dashboard cookie Secure and expect https origins (env RAMPART_SECURE_COOKIES=true; automatic when the server itself terminates TLS)")
	f.Env("secure-cookies", "RAMPART_SECURE_COOKIES")
	str(&c.JWTKey, "jwt-key", "RAMPART_JWT_KEY", "", "base64 Ed25519 seed signing access tokens (env RAMPART_JWT_KEY); same on every replica")
	str(&c.JWTKeyFile, "jwt-key-file", "RAMPART_JWT_KEY_FILE", "", "file holding the base64 seed, created when missing (env RAMPART_JWT_KEY_FILE; dev default <data-dir>/jwt.key)")
	str(&c.JWTKeyID, "jwt-kid", "RAMPART_JWT_KID", "k1", "key id of the signing key (env RAMPART_JWT_KID)")
	c.Readiness = readiness.Defaults
	vr(readinessValue{&c.Readiness}, "readiness", "RAMPART_READINESS", "rules of the readiness verdicts, comma-separated key=value `settings` over the defaults: window (days), new-sender (days), min-days, min-messages, quarantine-unidentified and reject-unidentified (percent) (env RAMPART_READINESS; default "+readiness.Defaults.String()+")")
}

// readinessValue is the -readiness flag.
type readinessValue struct{ p *readiness.Settings }

func (r readinessValue) String() string {
	if r.p == nil {
		return ""
	}
	return r.p.String()
}

func (r readinessValue) Set(s string) error {
	v, err := readiness.ParseSettings(s)
	if err != nil {
		return err
	}
	*r.p = v
	return nil
}

// ServeFlags registers the flags of `rampart serve`: the service's, and
// those `rampart dev` decides for itself.
func (c *Config) ServeFlags(f *FlagSet) {
	c.ServiceFlags(f)
	f.Var(switchValue{&c.Migrate}, "migrate", "apply migrations before starting (env RAMPART_MIGRATE=true)")
	f.Env("migrate", "RAMPART_MIGRATE")
	f.Var(switchValue{&c.AllowDevZone}, edgeconf.AllowDevZone.Flag, edgeconf.AllowDevZone.Usage)
	f.Env(edgeconf.AllowDevZone.Flag, edgeconf.AllowDevZone.Env)
	f.Var(switchValue{&c.RiverUI}, "river-ui", "serve the River job dashboard at /riverui/ to instance operators (see rampart admin grant-operator) (env RAMPART_RIVER_UI=true)")
	f.Env("river-ui", "RAMPART_RIVER_UI")
}

// DevFlags registers the flags of `rampart dev`: the service's, the data
// folder and the in-process dnsedge's.
func (c *Config) DevFlags(f *FlagSet) {
	c.ServiceFlags(f)
	str := func(p *string, name, variable, def, usage string) {
		f.StringVar(p, name, def, usage)
		f.Env(name, variable)
	}
	str(&c.EdgeAddr, "edge-addr", "DNSEDGE_LISTEN", "127.0.0.1:5353", "dnsedge UDP+TCP listen address (env DNSEDGE_LISTEN)")
	str(&c.EdgeMetricsAddr, "edge-metrics", "DNSEDGE_METRICS", "127.0.0.1:9153", "dnsedge metrics address, empty for none (env DNSEDGE_METRICS)")
	str(&c.DataDir, "data-dir", "RAMPART_DATA_DIR", ".data", "folder for the private cluster, snapshot and keys; one rampart dev at a time uses it (env RAMPART_DATA_DIR)")
	str(&c.EdgeSnapshot, "edge-snapshot", "DNSEDGE_SNAPSHOT", "", "dnsedge snapshot file (env DNSEDGE_SNAPSHOT; default <data-dir>/dnsedge.snapshot)")
	f.IntVar(&c.EdgeRRLRate, "edge-rrl-rate", dnsedge.DefaultRRLRate, "dnsedge UDP responses per second per client /24 or /56; 0 for no limit (env DNSEDGE_RRL_RATE)")
	f.Env("edge-rrl-rate", "DNSEDGE_RRL_RATE")
	f.IntVar(&c.EdgeRRLSlip, "edge-rrl-slip", dnsedge.DefaultRRLSlip, "dnsedge sends every Nth rate-limited response truncated; -1 drops them all (env DNSEDGE_RRL_SLIP)")
	f.Env("edge-rrl-slip", "DNSEDGE_RRL_SLIP")
}

// boundedInt is an int flag refusing values below min.
type boundedInt struct {
	p   *int
	min int
}

func atLeast(p *int, def, minimum int) *boundedInt {
	*p = def
	return &boundedInt{p, minimum}
}

func (b *boundedInt) String() string {
	if b == nil || b.p == nil {
		return ""
	}
	return strconv.Itoa(*b.p)
}

func (b *boundedInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number")
	}
	if n < b.min {
		return fmt.Errorf("must be at least %d", b.min)
	}
	*b.p = n
	return nil
}

// durationValue is a duration flag refusing zero and negative durations.
type durationValue struct{ p *time.Duration }

func positiveDuration(p *time.Duration, def time.Duration) durationValue {
	*p = def
	return durationValue{p}
}

func (d durationValue) String() string {
	if d.p == nil {
		return ""
	}
	return d.p.String()
}

func (d durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration (such as 500ms, 30s or 5m)")
	}
	if v <= 0 {
		return errors.New("must be positive")
	}
	*d.p = v
	return nil
}

// switchValue is a boolean flag (-name or -name=false) whose refusal says
// what it takes.
type switchValue struct{ p *bool }

func (s switchValue) IsBoolFlag() bool { return true }

func (s switchValue) String() string {
	if s.p == nil {
		return "false"
	}
	return strconv.FormatBool(*s.p)
}

func (s switchValue) Set(v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	*s.p = b
	return nil
}

// choice is a text flag taking one of a few words.
type choice struct {
	p     *string
	words []string
}

func oneOf(p *string, words ...string) *choice { return &choice{p, words} }

func (c *choice) String() string {
	if c == nil || c.p == nil {
		return ""
	}
	return *c.p
}

func (c *choice) Set(s string) error {
	if !slices.Contains(c.words, s) {
		return fmt.Errorf("want one of %q", c.words)
	}
	*c.p = s
	return nil
}

// Jobs is the River client's configuration; jobs.NewClient refuses a
// rescue delay that does not exceed the job timeout.
func (c *Config) Jobs() jobs.Config {
	return jobs.Config{Workers: c.Workers, JobTimeout: c.JobTimeout, RescueAfter: c.JobRescueAfter}
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

// CheckEdgeNames refuses, for `rampart serve`, an edge zone, name servers
// or reports domain that no resolver on the internet answers for, unless
// AllowDevZone; then it logs them as a warning.
func (c *Config) CheckEdgeNames(log *slog.Logger) error {
	warning, err := edgeconf.Values{
		Zone: c.EdgeZone, NameServers: c.EdgeNameServers, ReportsDomain: c.ReportsDomain, AllowDevZone: c.AllowDevZone,
	}.Check()
	if err != nil {
		return err
	}
	if warning != "" {
		log.Warn(warning)
	}
	return nil
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
