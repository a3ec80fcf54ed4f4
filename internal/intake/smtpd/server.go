// Package smtpd is the SMTP server of the reports domain: mail receivers
// send DMARC aggregate reports to a hosted domain's rua address,
// <report token>@<reports domain>, and each message is stored whole with
// [ingest.Store.Accept] for the report.ingest job to decode.
//
// # What it accepts
//
// RCPT TO is accepted only for an address in the reports domain (any case)
// whose local part is a hosted domain's report token ("+tag" suffixes are
// ignored); anything else gets 550 5.1.1 at RCPT, so that a message for no
// one is never read. A message may name several rua addresses, of one
// account or several: it is read once and stored once, as one blob whose
// recipients are the named domains (its reports may only be filed under
// one of them or their subdomains). The stored bytes are the message
// exactly as received, with no trace header added, so that a retried
// delivery, or the same message sent to another address, is recognised as
// the same blob.
//
// A session holds what it has received of a message, never more than
// about twice that: the size a client declares with SIZE= is checked
// against the limit and otherwise not trusted.
//
// # Replies
//
//   - 250 once the message is stored and its job enqueued;
//   - 552 5.3.4 when the message exceeds the SIZE limit (advertised in EHLO,
//     checked at MAIL FROM SIZE= and while DATA is read; nothing is stored);
//   - 554 5.6.0 for a message the store refuses outright (empty);
//   - 451 4.3.0 when storing failed for a reason that may pass (database
//     unavailable): the sender retries later;
//   - 421 4.7.0, and the connection is closed, when a client is over its
//     limits: concurrent sessions, sessions per minute, messages per
//     minute, or too many unknown recipients in one session.
//
// Whether a report inside a message can be decoded is decided later by the
// ingest job; the sender has its 250 by then, as for any mail.
//
// # Limits and timeouts
//
// A client is an IPv4 address or an IPv6 /64. Each read (a command, or a
// whole DATA transfer) must finish within ReadTimeout and a session within
// SessionTimeout. STARTTLS is offered when [Config.TLS] is set; it is never
// required, because mail receivers fall back to plain text for rua mail
// anyway and the reports carry no secrets.
//
// # Proxies
//
// Behind a TCP proxy (HAProxy, nginx stream) every session would come from
// the proxy's address and share one client's limits. A connection from a
// peer in [Config.TrustedProxies] must therefore begin with a PROXY
// protocol header (v1 or v2), and the client it names is the session's
// client for the limits, the logs and the stored blob; a trusted peer
// without a valid header within ProxyHeaderTimeout is disconnected (the
// protocol forbids guessing whether a header is there). The header is read
// before the connection is admitted, so a trusted proxy that stalls delays
// the next admission by up to that timeout; untrusted peers never cause a
// wait. A PROXY header from any other peer is refused: when a session's
// first bytes are one, it gets 421 4.7.0 and is closed, and the peer's own
// address stays its client address.
//
// # Shutdown
//
// When Run's context ends the listener closes, idle sessions are closed at
// once, and sessions storing a message get up to ShutdownGrace to finish
// and send their reply.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"

	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/request"
)

// Defaults for the zero fields of [Config].
const (
	DefaultAddr                 = ":25"
	DefaultMaxSize              = 25 << 20
	DefaultMaxRecipients        = 50
	DefaultMaxSessions          = 1000
	DefaultMaxSessionsPerClient = 10
	DefaultSessionsPerMinute    = 60
	DefaultMessagesPerMinute    = 120
	DefaultMaxUnknownRecipients = 20
	DefaultReadTimeout          = 5 * time.Minute
	DefaultWriteTimeout         = time.Minute
	DefaultSessionTimeout       = 30 * time.Minute
	DefaultStoreTimeout         = time.Minute
	DefaultShutdownGrace        = 30 * time.Second
	DefaultProxyHeaderTimeout   = 5 * time.Second
)

// Config configures the server. Zero fields take the defaults above; for
// the limits, a negative value means no limit.
type Config struct {
	// Addr is the listen address (default ":25").
	Addr string
	// Domain is the reports domain: the domain part of every rua address.
	// Required.
	Domain string
	// Hostname is the name in the greeting and EHLO reply (default
	// Domain).
	Hostname string
	// TLS enables STARTTLS.
	TLS *tls.Config

	// MaxSize is the largest message, in bytes (default 25 MiB). It should
	// not exceed the store's limit ([ingest.DefaultMaxSize]), which would
	// refuse larger messages after they were read.
	MaxSize int64
	// MaxRecipients caps RCPT TO commands per message (452 beyond).
	MaxRecipients int
	// MaxSessions caps the sessions open at once, from every client.
	MaxSessions int
	// MaxSessionsPerClient caps the sessions one client has open at once.
	MaxSessionsPerClient int
	// SessionsPerMinute and MessagesPerMinute are the rates one client may
	// open sessions and start messages at, with bursts of one minute's
	// worth.
	SessionsPerMinute int
	MessagesPerMinute int
	// MaxUnknownRecipients ends a session that named this many addresses
	// that do not exist (a directory harvest).
	MaxUnknownRecipients int

	// ReadTimeout bounds each read: one command, or one whole message.
	ReadTimeout time.Duration
	// WriteTimeout bounds each reply.
	WriteTimeout time.Duration
	// SessionTimeout bounds a whole session.
	SessionTimeout time.Duration
	// StoreTimeout bounds each database call (recipient lookup, Accept).
	StoreTimeout time.Duration
	// ShutdownGrace is how long sessions storing a message may take to
	// finish once Run's context ends.
	ShutdownGrace time.Duration

	// TrustedProxies are the peers that must open each connection with a
	// PROXY protocol header (v1 or v2) naming the client; see the package
	// comment. The zero value trusts no one.
	TrustedProxies request.Proxies
	// ProxyHeaderTimeout bounds the wait for a trusted proxy's header
	// (default 5 s).
	ProxyHeaderTimeout time.Duration
}

func (c Config) withDefaults() Config {
	c.Domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(c.Domain), "."))
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Hostname == "" {
		c.Hostname = c.Domain
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxSize
	}
	def(&c.MaxRecipients, DefaultMaxRecipients)
	def(&c.MaxSessions, DefaultMaxSessions)
	def(&c.MaxSessionsPerClient, DefaultMaxSessionsPerClient)
	def(&c.SessionsPerMinute, DefaultSessionsPerMinute)
	def(&c.MessagesPerMinute, DefaultMessagesPerMinute)
	def(&c.MaxUnknownRecipients, DefaultMaxUnknownRecipients)
	defDur(&c.ReadTimeout, DefaultReadTimeout)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.SessionTimeout, DefaultSessionTimeout)
	defDur(&c.StoreTimeout, DefaultStoreTimeout)
	defDur(&c.ShutdownGrace, DefaultShutdownGrace)
	defDur(&c.ProxyHeaderTimeout, DefaultProxyHeaderTimeout)
	return c
}

// Server is the reports domain's SMTP server.
type Server struct {
	cfg    Config
	store  *ingest.Store
	log    *slog.Logger
	smtp   *smtp.Server
	limits *limiter
	ln     net.Listener

	// base is the context of the database calls; it is cancelled when
	// shutdown's grace period is over.
	base       context.Context
	cancelBase context.CancelFunc

	mu    sync.Mutex
	conns map[*conn]struct{}
	// refusing counts the goroutines writing 421 to refused connections.
	refusing sync.WaitGroup
	now      func() time.Time
}

// New builds a server that stores messages with store. It does not listen
// yet: see [Server.Listen] and [Server.Run].
func New(cfg Config, store *ingest.Store, log *slog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.Domain == "" {
		return nil, errors.New("smtp server: no reports domain")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, store: store, log: log, limits: newLimiter(cfg), conns: map[*conn]struct{}{}, now: time.Now}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	srv := smtp.NewServer(backend{s})
	srv.Domain = cfg.Hostname
	srv.TLSConfig = cfg.TLS
	srv.MaxMessageBytes = cfg.MaxSize
	srv.MaxRecipients = max(cfg.MaxRecipients, 0)
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	// go-smtp reports clients that went away mid-session here: routine.
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	s.smtp = srv
	return s, nil
}

// Listen binds the listen address.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp server: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then shuts down: see the package comment. It
// listens first if Listen was not called.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	defer s.cancelBase()
	errc := make(chan error, 1)
	go func() { errc <- s.smtp.Serve(&listener{Listener: s.ln, srv: s}) }()
	s.log.Info("SMTP listening", "addr", s.Addr(), "domain", s.cfg.Domain, "starttls", s.cfg.TLS != nil)
	select {
	case err := <-errc:
		s.closeConns(false)
		s.refusing.Wait()
		return fmt.Errorf("serve SMTP: %w", err)
	case <-ctx.Done():
	}
	s.shutdown()
	<-errc //nolint:errcheck // after shutdown, Serve returns the closed listener's error: expected
	s.refusing.Wait()
	return nil
}

func (s *Server) shutdown() {
	// go-smtp's Shutdown closes the listener (closed here too in case
	// Serve has not registered it yet) and waits for every session.
	_ = s.ln.Close()
	done := make(chan struct{})
	go func() {
		_ = s.smtp.Shutdown(context.Background())
		close(done)
	}()
	grace := time.NewTimer(s.cfg.ShutdownGrace)
	defer grace.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeConns(true)
		select {
		case <-done:
			return
		case <-tick.C:
		case <-grace.C:
			s.log.Warn("SMTP sessions still storing at the end of the grace period; closing them")
			s.cancelBase()
			s.closeConns(false)
		}
	}
}

// closeConns closes the open connections; idleOnly spares those storing a
// message.
func (s *Server) closeConns(idleOnly bool) {
	s.mu.Lock()
	list := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if !idleOnly || !c.busy.Load() {
			list = append(list, c)
		}
	}
	s.mu.Unlock()
	for _, c := range list {
		_ = c.Close()
	}
}

func (s *Server) track(c *conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// listener admits connections through the limiter; go-smtp never sees a
// refused one.
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Accept() (net.Conn, error) {
	s := l.srv
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		id := request.NewID()
		peer := addrIP(nc.RemoteAddr())
		trusted := s.cfg.TrustedProxies.Trusts(peer)
		if trusted {
			pc := proxyproto.NewConn(nc, proxyproto.WithPolicy(proxyproto.REQUIRE),
				proxyproto.SetReadHeaderTimeout(s.cfg.ProxyHeaderTimeout))
			if pc.ProxyHeader() == nil {
				s.log.Info("SMTP connection from a trusted proxy without a valid PROXY header closed", "session", id, "proxy", peer.String())
				_ = nc.Close()
				continue
			}
			nc = pc
		}
		key := clientKey(nc.RemoteAddr())
		if reason := s.limits.open(key, s.now()); reason != "" {
			s.log.Info("SMTP connection refused", "session", id, "remote", nc.RemoteAddr().String(), "reason", reason)
			s.refusing.Add(1)
			go func() {
				defer s.refusing.Done()
				_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = fmt.Fprintf(nc, "421 4.7.0 %s %s, try again later\r\n", s.cfg.Hostname, reason)
				_ = nc.Close()
			}()
			continue
		}
		c := &conn{Conn: nc, srv: s, key: key, id: id, deadline: time.Now().Add(s.cfg.SessionTimeout), sniff: !trusted}
		_ = c.SetReadDeadline(c.deadline)
		s.track(c)
		return c, nil
	}
}
