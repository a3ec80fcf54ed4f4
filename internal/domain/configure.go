package domain

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/domain/domaindb"
)

// errNoWrite rolls back a Configure transaction that changed nothing.
var errNoWrite = errors.New("nothing to write")

// Configured is what [Service.Configure] did.
type Configured struct {
	// Domain is the domain after the change (as it would be, on a dry run,
	// for a claim that does not exist yet: unsaved).
	Domain Domain
	// Exists is whether the account held a claim on the name before.
	Exists bool
}

// Configure runs fn in one transaction on the account's claim on name,
// locked, after authorising each of perms on it: a step of a declared
// configuration (package domainconfig) composed of several packages'
// tx-level changes. Without a claim it authorises [access.ManageDomains]
// and each of perms in the account, and claims the name first in the same
// transaction, as [Service.Add] does (fn sees exists false). fn returns
// whether to keep what it wrote; then the domain is reloaded and
// republished to the edge and the transaction commits, and otherwise it
// rolls back, so that a dry run or a change of nothing writes nothing and
// bumps no edge serial.
func (s *Service) Configure(ctx context.Context, accountID uuid.UUID, name string, perms []access.Permission, fn func(tx pgx.Tx, d Domain, exists bool) (bool, error)) (Configured, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Configured{}, err
	}
	claims, err := domaindb.New(s.pool).ClaimsByName(ctx, n)
	if err != nil {
		return Configured{}, fmt.Errorf("load domain: %w", err)
	}
	var claim *domaindb.Domain
	for i := range claims {
		if claims[i].AccountID == accountID {
			claim = &claims[i]
		}
	}
	var check proofCheck
	if claim != nil {
		for _, p := range perms {
			if err := s.authorize(ctx, fromRow(*claim), p); err != nil {
				return Configured{}, err
			}
		}
	} else {
		for _, p := range append([]access.Permission{access.ManageDomains}, perms...) {
			if err := s.authz.Authorize(ctx, access.InAccount(accountID), p); err != nil {
				if errors.Is(err, apperr.ErrNotFound) {
					return Configured{}, apperr.NotFoundf("account not found")
				}
				return Configured{}, err
			}
		}
		if err := s.ownName(n); err != nil {
			return Configured{}, err
		}
		if err := fitsEdge(n, s.cfg.EdgeZone); err != nil {
			return Configured{}, err
		}
		token, err := s.proofToken(ctx, accountID)
		if err != nil {
			return Configured{}, err
		}
		check = s.checkProof(ctx, n, token)
	}
	var out Configured
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := domaindb.New(tx)
		var row domaindb.Domain
		var err error
		if claim != nil {
			row, err = q.DomainByIDForUpdate(ctx, claim.ID)
			if errors.Is(err, pgx.ErrNoRows) {
				return notFound(name)
			}
			if err != nil {
				return fmt.Errorf("lock domain: %w", err)
			}
		} else {
			row, err = q.InsertDomain(ctx, domaindb.InsertDomainParams{AccountID: accountID, Name: n})
			if errors.Is(err, pgx.ErrNoRows) {
				return apperr.Conflictf("domain %q was added to this account meanwhile; try again", n)
			}
			if err != nil {
				return fmt.Errorf("insert domain: %w", err)
			}
			if row, err = s.settle(ctx, tx, row, check, true); err != nil {
				return err
			}
		}
		out = Configured{Domain: fromRow(row), Exists: claim != nil}
		keep, err := fn(tx, out.Domain, out.Exists)
		if err != nil {
			return err
		}
		if !keep {
			return errNoWrite
		}
		if out.Domain, err = s.Reload(ctx, tx, out.Domain); err != nil {
			return err
		}
		return s.publish(ctx, tx, out.Domain)
	})
	if errors.Is(err, errNoWrite) {
		err = nil
	}
	if err != nil {
		return Configured{}, err
	}
	return out, nil
}
