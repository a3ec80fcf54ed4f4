// Package imappull pulls DMARC aggregate reports from an existing IMAP
// mailbox (an owner's old rua address) and stores each message with
// [ingest.Store.Accept] (Source imap, scoped to the configured account).
//
// # How a pull works
//
// A [Puller] serves one mailbox. [Puller.Pull] takes a lease on the
// mailbox's row in imap_pull_state (so that, with several replicas running
// the same configuration, one pulls at a time), logs in, opens the mailbox
// read-only (EXAMINE: nothing is deleted, flagged or marked seen), asks for
// the UIDs above the last one recorded (UID SEARCH), and fetches them in
// batches (UID FETCH of BODY.PEEK[] for up to BatchSize UIDs). Each message
// is read into memory alone, stored, and dropped before the next one is
// read, so a mailbox of any size costs one message of memory; the UID list
// is kept as ranges.
//
// # Resuming, and at-least-once
//
// After every batch the highest UID of the batch is recorded, with the
// mailbox's UIDVALIDITY, and the lease is renewed. Accept runs in its own
// transaction, before the checkpoint: a pull stopped between the two (a
// crash, a cancelled context, the database going away) fetches and offers
// that batch again next time, at most BatchSize messages, and Accept
// recognises the bytes it already holds (Accepted.Duplicate), so every
// message is stored exactly once even though it may be offered twice.
//
// When the server reports another UIDVALIDITY than the one recorded, its
// UIDs were reassigned (the mailbox was recreated or restored): the pull
// starts over from the first message, and duplicates again make this safe.
//
// A message larger than MaxSize is skipped (drained from the connection,
// never held) and one the store refuses outright (empty) is skipped too;
// both count as Refused and the pull moves past them. Any other failure
// stops the pull without recording the batch, to be retried.
package imappull

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/intake/imappull/imappulldb"
)

// TLSMode says how the connection to the server is protected.
type TLSMode string

// The modes.
const (
	// TLSImplicit is TLS from the first byte (IMAPS, port 993).
	TLSImplicit TLSMode = "tls"
	// TLSStartTLS upgrades a plain connection with STARTTLS (port 143).
	TLSStartTLS TLSMode = "starttls"
	// TLSNone sends the password in clear text: for a server on loopback
	// or in tests only.
	TLSNone TLSMode = "none"
)

// Defaults for the zero fields of [Config].
const (
	DefaultMailbox   = "INBOX"
	DefaultBatchSize = 100
	DefaultInterval  = 5 * time.Minute
	DefaultLease     = 10 * time.Minute
	DefaultTimeout   = 30 * time.Second
)

// Config describes one mailbox to pull from.
type Config struct {
	// Addr is the server, host:port.
	Addr string
	// TLS is the connection's protection (default TLSImplicit); TLSConfig
	// optionally configures it (roots, server name).
	TLS       TLSMode
	TLSConfig *tls.Config
	Username  string
	Password  string
	// Mailbox is the mailbox's name (default INBOX).
	Mailbox string
	// AccountID is the account whose domains the reports are for.
	AccountID uuid.UUID

	// BatchSize is the number of messages per UID FETCH (default 100).
	BatchSize int
	// MaxSize is the largest message (default [ingest.DefaultMaxSize]).
	MaxSize int64
	// Interval is the pause between two pulls in Run (default 5 minutes).
	Interval time.Duration
	// Lease is how long a pull holds the mailbox without progress before
	// another puller may take over (default 10 minutes).
	Lease time.Duration
	// Timeout bounds connecting and the TLS handshake (default 30 s).
	Timeout time.Duration
}

// Puller pulls one mailbox.
type Puller struct {
	cfg   Config
	q     *imappulldb.Queries
	store *ingest.Store
	log   *slog.Logger
	// owner identifies this puller in the lease.
	owner uuid.UUID
}

// New returns a Puller for the mailbox; pool holds its state.
func New(cfg Config, pool *pgxpool.Pool, store *ingest.Store, log *slog.Logger) (*Puller, error) {
	if cfg.Addr == "" || cfg.Username == "" || cfg.AccountID == uuid.Nil {
		return nil, errors.New("imap pull: address, user name and account are required")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("imap pull: address %q: %w", cfg.Addr, err)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSImplicit
	case TLSImplicit, TLSStartTLS, TLSNone:
	default:
		return nil, fmt.Errorf("imap pull: TLS mode %q is none of tls, starttls, none", cfg.TLS)
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = DefaultMailbox
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = ingest.DefaultMaxSize
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("imap_server", cfg.Addr, "imap_user", cfg.Username, "mailbox", cfg.Mailbox)
	return &Puller{cfg: cfg, q: imappulldb.New(pool), store: store, log: log, owner: uuid.New()}, nil
}

// Stats says what one pull did.
type Stats struct {
	// Busy is set when another puller holds the mailbox; nothing was done.
	Busy bool
	// Restarted is set when the mailbox's UIDVALIDITY changed and the
	// pull started over.
	Restarted bool
	// Fetched messages were read; each was Accepted (stored and queued for
	// decoding), a Duplicate of a stored blob, or Refused (too large,
	// empty).
	Fetched, Accepted, Duplicates, Refused int
	// UIDValidity and LastUID are the recorded position after the pull.
	UIDValidity, LastUID uint32
}

// ErrLeaseLost is returned when another puller took the mailbox over
// during a pull (this one was stalled past its lease).
var ErrLeaseLost = errors.New("imap pull: the mailbox was taken over by another puller")

// Run pulls every Interval until ctx ends; failures are logged and retried
// at the next interval. It returns when ctx ends.
func (p *Puller) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		st, err := p.Pull(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.log.Error("IMAP pull failed", "err", err, "accepted", st.Accepted, "last_uid", st.LastUID)
		case st.Fetched > 0 || st.Restarted:
			p.log.Info("IMAP pull", "fetched", st.Fetched, "accepted", st.Accepted, "duplicates", st.Duplicates,
				"refused", st.Refused, "last_uid", st.LastUID, "restarted", st.Restarted)
		}
		timer.Reset(p.cfg.Interval)
	}
}

// Pull fetches the messages that arrived since the last pull. On error the
// returned Stats say how far it got.
func (p *Puller) Pull(ctx context.Context) (st Stats, err error) {
	row, err := p.q.ClaimMailbox(ctx, imappulldb.ClaimMailboxParams{
		AccountID: p.cfg.AccountID, Server: p.server(), Username: p.cfg.Username, Mailbox: p.cfg.Mailbox,
		Owner: p.owner, LeaseSeconds: p.cfg.Lease.Seconds(),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Stats{Busy: true}, nil
	}
	if err != nil {
		return st, fmt.Errorf("imap pull: claim mailbox: %w", err)
	}
	defer p.release()
	st.UIDValidity, st.LastUID = uint32(row.UidValidity), uint32(row.LastUid) //nolint:gosec // G115: the stored values are IMAP UIDs, written from uint32

	s, err := p.dial(ctx)
	if err != nil {
		return st, err
	}
	defer s.close()

	if err := s.c.Login(p.cfg.Username, p.cfg.Password).Wait(); err != nil {
		return st, s.fail(ctx, "log in", err)
	}
	sel, err := s.c.Select(p.cfg.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return st, s.fail(ctx, "open mailbox", err)
	}
	if sel.UIDValidity != st.UIDValidity {
		if st.UIDValidity != 0 {
			p.log.Warn("IMAP mailbox UIDVALIDITY changed; pulling it again from the start",
				"was", st.UIDValidity, "now", sel.UIDValidity)
			st.Restarted = true
		}
		st.UIDValidity, st.LastUID = sel.UIDValidity, 0
		if err := p.checkpoint(ctx, st); err != nil {
			return st, err
		}
	}
	if sel.NumMessages == 0 || (sel.UIDNext != 0 && uint32(sel.UIDNext) <= st.LastUID+1) {
		return st, s.logout()
	}
	// UID n:* always matches the highest UID, even one below n: filtered
	// out by the batches.
	found, err := s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{{Start: imap.UID(st.LastUID + 1), Stop: 0}}}}, nil).Wait()
	if err != nil {
		return st, s.fail(ctx, "search mailbox", err)
	}
	uids, _ := found.All.(imap.UIDSet)
	for batch := range batches(uids, st.LastUID, p.cfg.BatchSize) {
		if err := p.batch(ctx, s, batch, &st); err != nil {
			return st, err
		}
		st.LastUID = uint32(batch[len(batch)-1].Stop)
		if err := p.checkpoint(ctx, st); err != nil {
			return st, err
		}
	}
	return st, s.logout()
}

func (p *Puller) server() string { return strings.ToLower(p.cfg.Addr) }

func (p *Puller) checkpoint(ctx context.Context, st Stats) error {
	n, err := p.q.Checkpoint(ctx, imappulldb.CheckpointParams{
		UidValidity: int64(st.UIDValidity), LastUid: int64(st.LastUID), LeaseSeconds: p.cfg.Lease.Seconds(),
		AccountID: p.cfg.AccountID, Server: p.server(), Username: p.cfg.Username, Mailbox: p.cfg.Mailbox, Owner: p.owner,
	})
	if err != nil {
		return fmt.Errorf("imap pull: record progress: %w", err)
	}
	if n == 0 {
		return ErrLeaseLost
	}
	return nil
}

func (p *Puller) release() {
	// Released even when the pull's context has ended; if this fails the
	// lease simply expires.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.q.ReleaseMailbox(ctx, imappulldb.ReleaseMailboxParams{
		AccountID: p.cfg.AccountID, Server: p.server(), Username: p.cfg.Username, Mailbox: p.cfg.Mailbox, Owner: p.owner,
	}); err != nil {
		p.log.Warn("IMAP pull: release mailbox", "err", err)
	}
}

// batch fetches and stores one batch of UIDs.
func (p *Puller) batch(ctx context.Context, s *session, uids imap.UIDSet, st *Stats) error {
	cmd := s.c.Fetch(uids, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		m, err := p.read(msg)
		if err != nil {
			s.abort(cmd)
			return s.fail(ctx, "fetch message", err)
		}
		if m.uid == 0 {
			continue // not one of ours (a server's unsolicited FETCH)
		}
		if err := ctx.Err(); err != nil {
			// Stop between messages: the rest of the batch (at most
			// BatchSize messages) is drained off the connection, not cut,
			// so that the client's reader goroutine is never racing a
			// drain on a closed connection; it comes again next time.
			_ = cmd.Close()
			return err
		}
		st.Fetched++
		if err := p.accept(ctx, m, st); err != nil {
			s.abort(cmd)
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return s.fail(ctx, "fetch messages", err)
	}
	return nil
}

// fetched is one message as read from a FETCH response.
type fetched struct {
	uid      imap.UID
	raw      []byte
	size     int64
	tooLarge bool
}

func (p *Puller) read(msg *imapclient.FetchMessageData) (fetched, error) {
	var m fetched
	for {
		item := msg.Next()
		if item == nil {
			return m, nil
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			m.uid = it.UID
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue
			}
			m.size = it.Literal.Size()
			if m.size > p.cfg.MaxSize {
				m.tooLarge = true
				if _, err := io.Copy(io.Discard, it.Literal); err != nil {
					return m, err
				}
				continue
			}
			raw, err := io.ReadAll(io.LimitReader(it.Literal, p.cfg.MaxSize+1))
			if err != nil {
				return m, err
			}
			m.raw = raw
		}
	}
}

// storeTimeout bounds storing one fetched message once a stop was asked.
const storeTimeout = 30 * time.Second

func (p *Puller) accept(ctx context.Context, m fetched, st *Stats) error {
	if m.tooLarge {
		st.Refused++
		p.log.Warn("IMAP message skipped", "uid", m.uid, "size", m.size, "reason", "larger than the limit", "limit", p.cfg.MaxSize)
		return nil
	}
	// A message already fetched is stored, or not, before a stop takes
	// effect: cancelling mid-commit could leave the commit landing after
	// the puller has returned, unaccounted for. The stop is seen between
	// messages.
	storeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	acc, err := p.store.Accept(storeCtx, ingest.Incoming{
		Source: ingest.SourceIMAP, Raw: m.raw, AccountID: &p.cfg.AccountID, Remote: p.cfg.Addr,
		Filename: fmt.Sprintf("%s/%d", p.cfg.Mailbox, m.uid),
	})
	if e, ok := apperr.As(err); ok {
		st.Refused++
		p.log.Warn("IMAP message skipped", "uid", m.uid, "size", m.size, "reason", e.Message)
		return nil
	}
	if err != nil {
		return fmt.Errorf("imap pull: store message %d: %w", m.uid, err)
	}
	if acc.Duplicate {
		st.Duplicates++
	} else {
		st.Accepted++
	}
	p.log.Debug("IMAP message stored", "uid", m.uid, "blob", acc.BlobID, "duplicate", acc.Duplicate)
	return nil
}

// batches yields the UIDs above last in sets of at most n UIDs, in order,
// without expanding the ranges.
func batches(uids imap.UIDSet, last uint32, n int) func(yield func(imap.UIDSet) bool) {
	return func(yield func(imap.UIDSet) bool) {
		if last == math.MaxUint32 {
			return
		}
		var batch imap.UIDSet
		count := 0
		for _, r := range uids {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start > stop {
				start, stop = stop, start
			}
			if stop == 0 { // "*": a server bug in a search result
				continue
			}
			start = max(start, last+1)
			for start <= stop && start != 0 {
				take := min(uint64(stop-start)+1, uint64(n-count)) //nolint:gosec // G115: n-count > 0 inside the loop
				end := start + uint32(take) - 1                    //nolint:gosec // G115: take <= stop-start+1, a uint32 range with start >= 1
				batch = append(batch, imap.UIDRange{Start: imap.UID(start), Stop: imap.UID(end)})
				count += int(take) //nolint:gosec // G115: take <= n-count, an int
				if count == n {
					if !yield(batch) {
						return
					}
					batch, count = nil, 0
				}
				if end == stop {
					break
				}
				start = end + 1
			}
		}
		if count > 0 {
			yield(batch)
		}
	}
}
