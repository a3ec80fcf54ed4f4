package dnsedge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Edge is one authoritative DNS edge: a DNS server on UDP and TCP answering
// from an in-memory snapshot that follows PostgreSQL. Create it with [New],
// then call [Edge.Run], or [Edge.Start] and [Edge.Wait].
type Edge struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	dbcfg   *pgx.ConnConfig
	auth    *authority
	metrics *metrics
	rrl     *rateLimiter // nil when response rate limiting is off
	created time.Time

	// index is the snapshot being served; nil until the first one is
	// loaded from the snapshot file or PostgreSQL.
	index atomic.Pointer[index]
	// confirmed is when the index was last confirmed current with
	// PostgreSQL, in Unix nanoseconds; 0 when never.
	confirmed atomic.Int64

	// saveNow and saveSoon ask the snapshot writer to write the file at
	// once or after saveDelay; both hold at most one pending request.
	saveNow, saveSoon chan struct{}

	started          atomic.Bool
	udpConns         []*net.UDPConn
	tcpListener      net.Listener
	metricsListener  net.Listener
	wg               sync.WaitGroup
	cancel           context.CancelFunc
	errMu            sync.Mutex
	err              error
	udpSrvs          []*dns.Server // one per UDP socket
	tcpSrv           *dns.Server
	metricsSrv       *http.Server
	stopped          chan struct{}
	shutdownDeadline time.Duration
	heartbeatEvery   time.Duration // defaultHeartbeat; shorter in tests
}

// New validates cfg, applies its defaults and registers the edge's metrics
// in reg (a new registry when nil). It opens nothing; see [Edge.Start].
func New(cfg Config, log *slog.Logger, reg *prometheus.Registry) (*Edge, error) {
	cfg, set, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("dnsedge config: %w", err)
	}
	dbcfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("dnsedge config: DatabaseURL: %w", err)
	}
	if dbcfg.ConnectTimeout == 0 {
		dbcfg.ConnectTimeout = 10 * time.Second
	}
	if _, ok := dbcfg.RuntimeParams["application_name"]; !ok {
		dbcfg.RuntimeParams["application_name"] = "dnsedge"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	e := &Edge{
		cfg:              cfg,
		log:              log,
		reg:              reg,
		dbcfg:            dbcfg,
		auth:             newAuthority(set),
		created:          time.Now(),
		saveNow:          make(chan struct{}, 1),
		saveSoon:         make(chan struct{}, 1),
		stopped:          make(chan struct{}),
		shutdownDeadline: 5 * time.Second,
		heartbeatEvery:   defaultHeartbeat,
		rrl:              newRateLimiter(cfg.RRLRate, cfg.RRLSlip),
	}
	if e.metrics, err = newMetrics(reg, e); err != nil {
		return nil, err
	}
	for _, ns := range set.nameServers {
		if dns.IsSubDomain(set.zone, ns.name) && len(ns.addrs) == 0 {
			log.Warn("name server inside the edge zone has no address configured; it will not resolve", "name_server", ns.name)
		}
	}
	return e, nil
}

// Config returns the configuration in use, with defaults applied.
func (e *Edge) Config() Config { return e.cfg }

// Start loads the snapshot file (when configured and valid), binds the DNS
// and metrics listeners and starts serving and following PostgreSQL in the
// background. It returns once the listeners are bound. Everything stops when
// ctx is cancelled; [Edge.Wait] waits for that. Start may be called once.
func (e *Edge) Start(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("dnsedge: Start called twice")
	}
	e.loadSnapshotFile()

	l, err := listen(e.cfg.Listen, udpSocketCount())
	if err != nil {
		close(e.stopped)
		return fmt.Errorf("dnsedge: listen for DNS: %w", err)
	}
	e.udpConns, e.tcpListener = l.conns, l.tcp
	closeListeners := func() {
		for _, c := range e.udpConns {
			_ = c.Close()
		}
		_ = e.tcpListener.Close()
	}
	for _, c := range e.udpConns {
		srv := e.dnsServer()
		srv.PacketConn = c
		if udpFastPath {
			s, err := newUDPSocket(c, e)
			if err != nil {
				closeListeners()
				close(e.stopped)
				return fmt.Errorf("dnsedge: UDP socket: %w", err)
			}
			srv.PacketConn = s
			srv.DecorateReader = func(r dns.Reader) dns.Reader { return udpReader{Reader: r, s: s} }
		}
		e.udpSrvs = append(e.udpSrvs, srv)
	}
	if e.cfg.MetricsListen != "" {
		e.metricsListener, err = net.Listen("tcp", e.cfg.MetricsListen)
		if err != nil {
			closeListeners()
			close(e.stopped)
			return fmt.Errorf("dnsedge: listen for metrics: %w", err)
		}
	}
	ctx, e.cancel = context.WithCancel(ctx)

	e.tcpSrv = e.dnsServer()
	e.tcpSrv.Listener = newLimitListener(e.tcpListener, e.cfg.TCPMaxConns, e.cfg.TCPMaxConnsPerSource, e.cfg.TCPReadTimeout,
		func(reason string) { e.metrics.tcpRefused.WithLabelValues(reason).Inc() },
		e.metrics.tcpEvicted.Inc,
		func(delta int) { e.metrics.tcpOpen.Add(float64(delta)) })
	e.tcpSrv.ReadTimeout = e.cfg.TCPReadTimeout
	e.tcpSrv.IdleTimeout = func() time.Duration { return e.cfg.TCPIdleTimeout }
	// Any number of queries per connection: the idle timeout and the caps
	// bound what a client holds (RFC 7766 §6.2.1 asks servers to allow
	// many).
	e.tcpSrv.MaxTCPQueries = -1
	for _, srv := range e.dnsServers() {
		// Wait until the server runs: miekg/dns cannot shut down a server
		// that has not started yet.
		ready := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(ready) }
		failed := make(chan struct{})
		e.wg.Go(func() {
			if err := srv.ActivateAndServe(); err != nil {
				e.fail(fmt.Errorf("dnsedge: serve DNS: %w", err))
			}
			close(failed)
		})
		select {
		case <-ready:
		case <-failed:
		}
	}
	if e.metricsListener != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}))
		e.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		e.wg.Go(func() {
			if err := e.metricsSrv.Serve(e.metricsListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				e.fail(fmt.Errorf("dnsedge: serve metrics: %w", err))
			}
		})
	}
	if e.cfg.SnapshotPath != "" {
		e.wg.Go(func() { e.saveLoop(ctx) })
	}
	e.wg.Go(func() { e.follow(ctx) })
	e.wg.Go(func() {
		<-ctx.Done()
		e.shutdown()
	})
	go func() {
		e.wg.Wait()
		close(e.stopped)
	}()
	e.log.Info("dnsedge serving", "zone", e.cfg.Zone, "udp", e.UDPAddr().String(), "udp_sockets", len(e.udpConns), "tcp", e.tcpListener.Addr().String(), "metrics", e.cfg.MetricsListen)
	b := e.cfg.Bounds()
	e.log.Info("dnsedge: worst time for a change to reach every receiver",
		"add_sender", b.AddSender, "remove_sender", b.RemoveSender, "block_spf", b.BlockSPF,
		"block_keys_and_policy", b.BlockKeysAndPolicy, "policy", b.Policy, "key_revocation", b.KeyRevocation, "key_added", b.KeyAdded)
	return nil
}

// shutdown stops the listeners; the other goroutines stop on their own
// when the context is cancelled.
func (e *Edge) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), e.shutdownDeadline)
	defer cancel()
	for _, srv := range e.dnsServers() {
		if err := srv.ShutdownContext(ctx); err != nil {
			e.log.Warn("dnsedge: stop DNS server", "err", err)
		}
	}
	if e.metricsSrv != nil {
		if err := e.metricsSrv.Shutdown(ctx); err != nil {
			e.log.Warn("dnsedge: stop metrics server", "err", err)
		}
	}
}

// fail records the first fatal error and stops the edge.
func (e *Edge) fail(err error) {
	e.errMu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.errMu.Unlock()
	e.cancel()
}

// Wait blocks until the edge has stopped after its context was cancelled
// (or a listener failed) and returns the error that stopped it, if any.
func (e *Edge) Wait() error {
	<-e.stopped
	e.errMu.Lock()
	defer e.errMu.Unlock()
	return e.err
}

// Run starts the edge and serves until ctx is cancelled, then stops it
// cleanly: listeners closed, in-flight queries answered, the snapshot file
// written if it is behind, the PostgreSQL connection closed.
func (e *Edge) Run(ctx context.Context) error {
	if err := e.Start(ctx); err != nil {
		return err
	}
	err := e.Wait()
	e.log.Info("dnsedge stopped")
	return err
}

// Serial returns the highest edge table serial of the snapshot being served
// (0 when none is loaded yet).
func (e *Edge) Serial() int64 {
	if ix := e.index.Load(); ix != nil {
		return ix.serial
	}
	return 0
}

// UDPAddr returns the bound UDP address, nil before Start.
func (e *Edge) UDPAddr() net.Addr {
	if len(e.udpConns) == 0 {
		return nil
	}
	return e.udpConns[0].LocalAddr()
}

// udpSocketCount is how many UDP sockets the edge binds: one per processor
// the Go scheduler runs on, each read by its own goroutine.
func udpSocketCount() int {
	if !udpFastPath {
		return 1
	}
	return min(runtime.GOMAXPROCS(0), maxUDPSockets)
}

// maxUDPSockets bounds the UDP sockets on machines with many processors.
const maxUDPSockets = 64

// TCPAddr returns the bound TCP address, nil before Start.
func (e *Edge) TCPAddr() net.Addr {
	if e.tcpListener == nil {
		return nil
	}
	return e.tcpListener.Addr()
}

// MetricsAddr returns the bound metrics address, nil when there is none.
func (e *Edge) MetricsAddr() net.Addr {
	if e.metricsListener == nil {
		return nil
	}
	return e.metricsListener.Addr()
}

// dnsServers are the UDP servers, one per socket, and the TCP server.
func (e *Edge) dnsServers() []*dns.Server {
	return append(e.udpSrvs[:len(e.udpSrvs):len(e.udpSrvs)], e.tcpSrv)
}

func (e *Edge) dnsServer() *dns.Server {
	return &dns.Server{
		Handler:        e,
		UDPSize:        readUDPSize,
		MsgAcceptFunc:  e.acceptHeader,
		MsgInvalidFunc: e.invalidMsg,
	}
}

// publish makes ix the index being served.
func (e *Edge) publish(ix *index) { e.index.Store(ix) }

// confirm records that the index was current with PostgreSQL at t.
func (e *Edge) confirm(t time.Time) { e.confirmed.Store(t.UnixNano()) }

// confirmedAt is when the index was last confirmed current, or when the edge
// was created if it never was.
func (e *Edge) confirmedAt() time.Time {
	if n := e.confirmed.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return e.created
}
