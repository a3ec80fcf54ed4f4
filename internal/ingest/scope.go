package ingest

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/net/idna"

	"github.com/rampartmail/rampart/internal/ingest/ingestdb"
	"github.com/rampartmail/rampart/internal/report"
)

// scope is the set of hosted domains a blob's reports may be stored for.
type scope struct {
	// recipient and recipientAccount are set for mail: reports must be for
	// the recipient domain or below it, and for domains of its account.
	recipient        string
	recipientAccount uuid.UUID
	// account is set for uploads: reports must be for domains of the
	// uploader's account or of the accounts below it and, when accounts is
	// set, of one of those accounts (the ones the uploader may manage).
	account  *uuid.UUID
	accounts []uuid.UUID
	// Neither is set for imports, which may be for any hosted domain.
}

func scopeOf(b *ingestdb.BlobForIngestRow) (*scope, error) {
	switch {
	case b.DomainID != nil:
		if b.RecipientName == nil || b.RecipientAccount == nil {
			return nil, &report.Refusal{Reason: NotHosted, Detail: "the domain this report was sent to is no longer hosted"}
		}
		return &scope{recipient: *b.RecipientName, recipientAccount: *b.RecipientAccount}, nil
	case b.AccountID != nil:
		return &scope{account: b.AccountID, accounts: b.ScopeAccounts}, nil
	case Source(b.Source) == SourceImport:
		return &scope{}, nil
	}
	return nil, &report.Refusal{Reason: NotHosted, Detail: "the report has neither a recipient domain nor an account"}
}

// hostedDomain maps a policy domain to the hosted domain it belongs to:
// itself or its nearest hosted parent, within the scope.
func (in *ingester) hostedDomain(ctx context.Context, sc *scope, policyDomain string) (uuid.UUID, error) {
	name := normalizeDomain(policyDomain)
	names := parents(name)
	if sc.recipient != "" {
		r := sc.recipient
		if name != r && !strings.HasSuffix(name, "."+r) {
			return uuid.Nil, &report.Refusal{Reason: NotHosted,
				Detail: fmt.Sprintf("report for %s, which is neither %s nor a subdomain of it", policyDomain, r)}
		}
		// Only the recipient and the names between it and the policy
		// domain may hold the report.
		names = names[:len(names)-strings.Count(r, ".")]
	}
	rows, err := ingestdb.New(in.pool).HostedDomains(ctx, ingestdb.HostedDomainsParams{Names: names, AccountID: sc.account, ScopeAccounts: sc.accounts})
	if err != nil {
		return uuid.Nil, fmt.Errorf("find hosted domain: %w", err)
	}
	best, bestLen := uuid.Nil, -1
	for _, d := range rows {
		if sc.recipient != "" && d.AccountID != sc.recipientAccount {
			continue
		}
		if len(d.Name) > bestLen {
			best, bestLen = d.ID, len(d.Name)
		}
	}
	if bestLen < 0 {
		what := "which is not hosted here"
		if sc.account != nil {
			what = "which this account does not host"
		}
		return uuid.Nil, &report.Refusal{Reason: NotHosted, Detail: fmt.Sprintf("report for %s, %s", policyDomain, what)}
	}
	return best, nil
}

// normalizeDomain gives a policy domain the stored form of domain names:
// ASCII, lower case, no trailing dot. A name IDNA refuses is kept as it is
// and will match nothing.
func normalizeDomain(s string) string {
	s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(s); err == nil {
				return a
			}
			break
		}
	}
	return s
}

// parents returns name and each of its parents, longest first:
// a.b.example.com, b.example.com, example.com, com.
func parents(name string) []string {
	out := []string{name}
	for {
		i := strings.IndexByte(name, '.')
		if i < 0 || i == len(name)-1 {
			return out
		}
		name = name[i+1:]
		out = append(out, name)
	}
}
