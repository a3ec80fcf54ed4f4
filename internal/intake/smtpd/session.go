package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/ingest"
)

// The replies the server gives beyond go-smtp's own.
var (
	errUnknownRecipient = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such recipient"}
	errTemporary        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary failure, try again later"}
	errMessageRate      = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many messages, try again later"}
	errHarvest          = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many unknown recipients, try again later"}
	errEmpty            = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "the message is empty"}
)

func errTooLarge(limit int64) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: fmt.Sprintf("message too large: the limit is %d bytes", limit)}
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	own, ok := nc.(*conn)
	if !ok {
		return nil, errors.New("connection not admitted by the listener")
	}
	host, _, _ := net.SplitHostPort(own.RemoteAddr().String())
	_, isTLS := c.TLSConnectionState()
	sess := &session{s: b.s, c: own, remote: host}
	sess.log = b.s.log.With("session", own.id, "remote", host, "helo", c.Hostname(), "tls", isTLS)
	sess.log.Debug("SMTP session")
	return sess, nil
}

// recipient is a hosted domain named by a RCPT TO.
type recipient struct {
	id   uuid.UUID
	name string
}

// session is one client's SMTP session (a new one after STARTTLS).
type session struct {
	s      *Server
	c      *conn
	remote string
	log    *slog.Logger

	from    string
	to      []recipient
	unknown int
}

func (s *session) Reset() {
	s.from, s.to = "", nil
}

func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.s.limits.message(s.c.key, s.s.now()) {
		s.log.Info("SMTP message refused", "reason", "message rate exceeded")
		s.c.closeAfterSend.Store(true)
		return errMessageRate
	}
	// SIZE= is checked against the limit by go-smtp and otherwise
	// ignored: it is the client's word, not bytes received.
	s.Reset()
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	at := strings.LastIndexByte(to, '@')
	domain := ""
	if at >= 0 {
		domain = strings.TrimSuffix(to[at+1:], ".")
	}
	if at <= 0 || !strings.EqualFold(domain, s.s.cfg.Domain) {
		return s.unknownRecipient(to)
	}
	ctx, cancel := context.WithTimeout(s.s.base, s.s.cfg.StoreTimeout)
	defer cancel()
	id, name, ok, err := s.s.store.RecipientDomain(ctx, to[:at])
	if err != nil {
		s.log.Error("SMTP recipient lookup failed", "to", to, "err", err)
		return errTemporary
	}
	if !ok {
		return s.unknownRecipient(to)
	}
	for _, r := range s.to {
		if r.id == id {
			return nil
		}
	}
	s.to = append(s.to, recipient{id: id, name: name})
	return nil
}

func (s *session) unknownRecipient(to string) error {
	s.unknown++
	s.log.Info("SMTP recipient refused", "to", to)
	if limit := s.s.cfg.MaxUnknownRecipients; limit > 0 && s.unknown >= limit {
		s.c.closeAfterSend.Store(true)
		return errHarvest
	}
	return errUnknownRecipient
}

func (s *session) Data(r io.Reader) error {
	s.c.busy.Store(true)
	defer s.c.idleAfterSend.Store(true)
	limit := s.s.cfg.MaxSize
	// The buffer grows with the bytes that arrive, never ahead of them
	// from the size the client declared: 200 sessions declaring 25 MB and
	// then stalling once held 5 GB. It holds at most about twice what was
	// received.
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			s.log.Info("SMTP message refused", "from", s.from, "reason", "too large", "limit", limit)
			return errTooLarge(limit)
		}
		s.log.Info("SMTP message not received", "from", s.from, "err", err)
		return errTemporary
	}
	raw := buf.Bytes()
	// DATA always carries at least a line break; a message of nothing
	// else is empty.
	if len(bytes.TrimSpace(raw)) == 0 {
		s.log.Info("SMTP message refused", "from", s.from, "reason", "empty")
		return errEmpty
	}
	// One blob for the message, however many report addresses it names:
	// its recipients are the domains its reports may be filed under.
	ids := make([]uuid.UUID, len(s.to))
	names := make([]string, len(s.to))
	for i, r := range s.to {
		ids[i], names[i] = r.id, r.name
	}
	ctx, cancel := context.WithTimeout(s.s.base, s.s.cfg.StoreTimeout)
	defer cancel()
	acc, err := s.s.store.Accept(ctx, ingest.Incoming{
		Source: ingest.SourceSMTP, Raw: raw, Recipients: ids, ReceivedAt: s.s.now(), Remote: s.remote,
	})
	if err != nil {
		return s.refusal(names, len(raw), err)
	}
	s.log.Info("SMTP report mail accepted", "from", s.from, "domains", names, "size", len(raw),
		"blob", acc.BlobID, "duplicate", acc.Duplicate, "retried", acc.Retried)
	return nil
}

// refusal maps an Accept error to a reply: permanent for what the store
// refuses outright, temporary for anything else.
func (s *session) refusal(domains []string, size int, err error) error {
	if e, ok := apperr.As(err); ok && e.Code == apperr.BadUserInput {
		s.log.Info("SMTP message refused", "from", s.from, "domains", domains, "size", size, "reason", e.Message)
		if errors.Is(err, ingest.ErrTooLarge) {
			// The store's limit is below the server's: its message says
			// what it is.
			return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: e.Message}
		}
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: e.Message}
	}
	s.log.Error("SMTP message not stored", "from", s.from, "domains", domains, "size", size, "err", err)
	return errTemporary
}
