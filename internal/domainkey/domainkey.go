// Package domainkey manages the DKIM keys Rampart hosts for a domain under
// its delegated _domainkey zone: hosted public keys (served as TXT) and
// vendor-rotated keys (served as a CNAME to the vendor), their revocation
// and removal. Keys are validated by internal/dkim; every change goes
// through the domain service, so it is authorised (manage DKIM) and reaches
// the edge in the same transaction.
package domainkey

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dkim"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/domainkey/domainkeydb"
)

// Key is a DKIM key of a domain.
type Key = domainkeydb.DkimKey

// Manager changes a domain's DKIM keys.
type Manager struct {
	pool    *pgxpool.Pool
	domains *domain.Service
	log     *slog.Logger
}

// NewManager returns a Manager.
func NewManager(pool *pgxpool.Pool, domains *domain.Service, log *slog.Logger) *Manager {
	return &Manager{pool: pool, domains: domains, log: log}
}

// NewKey is what an owner gives to add a key: a public key (a bare base64
// key, a whole DKIM record or a PEM block) or a vendor's CNAME target.
type NewKey struct {
	Selector    string
	PublicKey   string
	CNAMETarget string
	// Service optionally names the catalog service that signs with the key.
	Service string
}

// Parsed is a key validated by [Parse], ready to add.
type Parsed struct {
	p domainkeydb.InsertKeyParams
}

// Selector is the key's selector, lower case.
func (k Parsed) Selector() string { return k.p.Selector }

// PublicKey is the key's base64 public key; "" for a CNAME.
func (k Parsed) PublicKey() string { return deref(k.p.PublicKey) }

// CNAMETarget is the vendor's target; "" for a hosted key.
func (k Parsed) CNAMETarget() string { return deref(k.p.CnameTarget) }

// Service is the slug of the service signing with the key; "" for none.
func (k Parsed) Service() string { return deref(k.p.Service) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Add validates and adds a key; the warnings (a short RSA key) are for the
// owner to see.
func (m *Manager) Add(ctx context.Context, name string, k NewKey) (Key, []string, error) {
	parsed, warnings, err := Parse(k)
	if err != nil {
		return Key{}, nil, err
	}
	var key Key
	_, err = m.domains.Change(ctx, name, access.ManageDKIM, func(tx pgx.Tx, d domain.Domain) error {
		var err error
		key, err = m.AddIn(ctx, tx, d, parsed)
		return err
	})
	if err != nil {
		return Key{}, nil, err
	}
	return key, warnings, nil
}

// Parse validates a new key; the warnings (a short RSA key) are for the
// owner to see.
func Parse(k NewKey) (Parsed, []string, error) {
	sel, err := dkim.ParseSelector(k.Selector)
	if err != nil {
		return Parsed{}, nil, apperr.Invalid("selector", "%v", err)
	}
	p := domainkeydb.InsertKeyParams{Selector: sel}
	var warnings []string
	switch {
	case strings.TrimSpace(k.PublicKey) != "" && strings.TrimSpace(k.CNAMETarget) != "":
		return Parsed{}, nil, apperr.Invalid("publicKey", "give either a public key or a CNAME target, not both")
	case strings.TrimSpace(k.PublicKey) != "":
		key, warns, err := dkim.ParsePublicKey(k.PublicKey)
		if err != nil {
			return Parsed{}, nil, apperr.Invalid("publicKey", "%v", err)
		}
		for _, w := range warns {
			warnings = append(warnings, w.String())
		}
		bits := int32(key.Bits) //nolint:gosec // G115: the key was parsed and is at most dkim.MaxRSABits bits
		record := key.Record()
		p.KeyType, p.KeyBits, p.PublicKey, p.Record = &key.Type, &bits, &key.PublicKey, &record
	case strings.TrimSpace(k.CNAMETarget) != "":
		target, err := dkim.ParseCNAMETarget(k.CNAMETarget)
		if err != nil {
			return Parsed{}, nil, apperr.Invalid("cnameTarget", "%v", err)
		}
		p.CnameTarget = &target
	default:
		return Parsed{}, nil, apperr.Invalid("publicKey", "a public key or a CNAME target is required")
	}
	if s := strings.ToLower(strings.TrimSpace(k.Service)); s != "" {
		p.Service = &s
	}
	return Parsed{p: p}, warnings, nil
}

// AddIn adds the key k to d, locked in tx by domain.Service.Configure
// (package domainconfig), which authorised it.
func (m *Manager) AddIn(ctx context.Context, tx pgx.Tx, d domain.Domain, k Parsed) (Key, error) {
	p := k.p
	sel := p.Selector
	var key Key
	err := func() error {
		q := domainkeydb.New(tx)
		if p.Service != nil {
			ok, err := q.ServiceExists(ctx, domainkeydb.ServiceExistsParams{Slug: *p.Service, AccountID: d.AccountID})
			if err != nil {
				return fmt.Errorf("look up service: %w", err)
			}
			if !ok {
				return apperr.Invalid("service", "%q is not a service in the sender catalog or the account's own", *p.Service)
			}
		}
		if _, err := dkim.RecordName(sel, d.Name); err != nil {
			return apperr.Invalid("selector", "%v", err)
		}
		p.DomainID = d.ID
		var err error
		key, err = q.InsertKey(ctx, p)
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.Conflictf("selector %q already has a key on %s; remove it first", sel, d.Name)
		}
		if err != nil {
			return fmt.Errorf("insert DKIM key: %w", err)
		}
		return nil
	}()
	return key, err
}

// Revoke publishes the selector as revoked ("v=DKIM1; p="), so signatures
// made with it stop verifying, while keeping the row for the record.
func (m *Manager) Revoke(ctx context.Context, name, selector string) (Key, error) {
	var key Key
	_, err := m.domains.Change(ctx, name, access.ManageDKIM, func(tx pgx.Tx, d domain.Domain) error {
		var err error
		key, err = m.RevokeIn(ctx, tx, d, selector)
		return err
	})
	return key, err
}

// RevokeIn revokes d's key selector in tx (see [Manager.AddIn]).
func (m *Manager) RevokeIn(ctx context.Context, tx pgx.Tx, d domain.Domain, selector string) (Key, error) {
	key, err := domainkeydb.New(tx).RevokeKey(ctx, domainkeydb.RevokeKeyParams{DomainID: d.ID, Selector: strings.ToLower(strings.TrimSpace(selector))})
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, apperr.NotFoundf("no DKIM key with selector %q on %s", selector, d.Name)
	}
	return key, err
}

// RemoveIn deletes d's key selector in tx (see [Manager.AddIn]).
func (m *Manager) RemoveIn(ctx context.Context, tx pgx.Tx, d domain.Domain, selector string) error {
	n, err := domainkeydb.New(tx).DeleteKey(ctx, domainkeydb.DeleteKeyParams{DomainID: d.ID, Selector: strings.ToLower(strings.TrimSpace(selector))})
	if err != nil {
		return fmt.Errorf("delete DKIM key: %w", err)
	}
	if n == 0 {
		return apperr.NotFoundf("no DKIM key with selector %q on %s", selector, d.Name)
	}
	return nil
}

// KeysIn lists d's keys in tx (the caller authorised).
func (m *Manager) KeysIn(ctx context.Context, tx pgx.Tx, d domain.Domain) ([]Key, error) {
	keys, err := domainkeydb.New(tx).Keys(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("list DKIM keys: %w", err)
	}
	return keys, nil
}

// Remove deletes a key: the selector stops existing in DNS (NXDOMAIN).
func (m *Manager) Remove(ctx context.Context, name, selector string) error {
	_, err := m.domains.Change(ctx, name, access.ManageDKIM, func(tx pgx.Tx, d domain.Domain) error {
		return m.RemoveIn(ctx, tx, d, selector)
	})
	return err
}

// Keys lists a domain's keys. The principal must hold
// [access.ViewReports] on the domain.
func (m *Manager) Keys(ctx context.Context, d domain.Domain) ([]Key, error) {
	if err := access.New(m.pool).Authorize(ctx, access.OnDomain(d.AccountID, d.ID), access.ViewReports); err != nil {
		return nil, err
	}
	keys, err := domainkeydb.New(m.pool).Keys(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("list DKIM keys: %w", err)
	}
	return keys, nil
}
