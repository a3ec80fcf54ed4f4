package imappull

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// session is one connection to the server. It holds the raw connection so
// that an aborted pull can cut it at once: imapclient's reader waits for
// the caller to consume each message, and would otherwise keep Close
// waiting.
type session struct {
	raw  net.Conn
	c    *imapclient.Client
	stop func() bool
	// closed ends the wait of the stop's grace period.
	closed chan struct{}
}

// stopGrace is how long a stopped pull may take to finish the message in
// hand and drain its batch before the connection is cut. Cutting at once
// would end a FETCH mid-literal, and go-imap's reader goroutine and the
// draining caller then race on the buffered connection.
const stopGrace = 5 * time.Second

func (p *Puller) dial(ctx context.Context) (*session, error) {
	host, _, _ := net.SplitHostPort(p.cfg.Addr)
	d := net.Dialer{Timeout: p.cfg.Timeout}
	raw, err := d.DialContext(ctx, "tcp", p.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("imap pull: connect: %w", err)
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.cfg.TLSConfig != nil {
		tlsConfig = p.cfg.TLSConfig.Clone()
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = host
	}
	s := &session{raw: raw, closed: make(chan struct{})}
	// Ending ctx ends the session, whatever it is waiting for: the puller
	// stops between messages, and a server that keeps it waiting longer
	// than stopGrace is cut off.
	s.stop = context.AfterFunc(ctx, func() {
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-t.C:
			_ = raw.Close()
		case <-s.closed:
		}
	})
	opts := &imapclient.Options{TLSConfig: tlsConfig}
	switch p.cfg.TLS {
	case TLSImplicit:
		tc := tls.Client(raw, tlsConfig)
		hctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			s.stop()
			close(s.closed)
			_ = raw.Close()
			return nil, fmt.Errorf("imap pull: TLS handshake: %w", err)
		}
		s.c = imapclient.New(tc, opts)
	case TLSStartTLS:
		s.c, err = imapclient.NewStartTLS(raw, opts)
		if err != nil {
			s.stop()
			close(s.closed)
			_ = raw.Close()
			return nil, fmt.Errorf("imap pull: STARTTLS: %w", err)
		}
	default:
		s.c = imapclient.New(raw, opts)
	}
	return s, nil
}

// fail wraps an IMAP error; when ctx has ended, that is the error.
func (s *session) fail(ctx context.Context, doing string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("imap pull: %s: %w", doing, ctx.Err())
	}
	return fmt.Errorf("imap pull: %s: %w", doing, err)
}

// abort gives up on a FETCH: the connection is cut, then the command is
// drained, which now ends at once.
func (s *session) abort(cmd *imapclient.FetchCommand) {
	_ = s.raw.Close()
	_ = cmd.Close()
}

func (s *session) logout() error {
	if err := s.c.Logout().Wait(); err != nil {
		return fmt.Errorf("imap pull: log out: %w", err)
	}
	return nil
}

func (s *session) close() {
	s.stop()
	close(s.closed)
	_ = s.raw.Close()
	_ = s.c.Close()
}
