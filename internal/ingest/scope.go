package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/rampartmail/rampart/internal/ingest/ingestdb"
	"github.com/rampartmail/rampart/internal/report"
)

// scope is the set of hosted domains a blob's reports may be stored for.
type scope struct {
	// recipients is set for mail: a report must be for one of the
	// recipient domains or below it, and for a domain of that recipient's
	// account.
	recipients []ingestdb.BlobRecipientsRow
	// account is set for uploads: reports must be for domains of the
	// uploader's account or of the accounts below it and, when accounts is
	// set, of one of those accounts (the ones the uploader may manage).
	account  *uuid.UUID
	accounts []uuid.UUID
	// Neither is set for imports, which may be for any hosted domain.
}

func (in *ingester) scopeOf(ctx context.Context, b *ingestdb.BlobForIngestRow) (*scope, error) {
	switch {
	case Source(b.Source) == SourceSMTP:
		rcpts, err := ingestdb.New(in.pool).BlobRecipients(ctx, b.ID)
		if err != nil {
			return nil, fmt.Errorf("load blob recipients: %w", err)
		}
		if len(rcpts) == 0 {
			return nil, &report.Refusal{Reason: NotHosted, Detail: "the domain this report was sent to is no longer hosted"}
		}
		return &scope{recipients: rcpts}, nil
	case b.AccountID != nil:
		return &scope{account: b.AccountID, accounts: b.ScopeAccounts}, nil
	case Source(b.Source) == SourceImport:
		return &scope{}, nil
	}
	return nil, &report.Refusal{Reason: NotHosted, Detail: "the report has neither a recipient domain nor an account"}
}

// under reports whether name is domain or a subdomain of it.
func under(name, domain string) bool {
	return dns.IsSubDomain(dns.Fqdn(domain), dns.Fqdn(name))
}

// hostedDomain maps a policy domain to the hosted domain it belongs to:
// itself or its nearest hosted parent, within the scope.
func (in *ingester) hostedDomain(ctx context.Context, sc *scope, policyDomain string) (uuid.UUID, error) {
	name := normalizeDomain(policyDomain)
	names := parents(name)
	var within []ingestdb.BlobRecipientsRow
	if sc.recipients != nil {
		top := ""
		for _, r := range sc.recipients {
			if under(name, r.Name) {
				within = append(within, r)
				if top == "" || len(r.Name) < len(top) {
					top = r.Name
				}
			}
		}
		if top == "" {
			// The detail is shown to every recipient's owner, who may be
			// different tenants: it names no recipient but their own.
			what := "a domain it was sent to nor a subdomain of one"
			if len(sc.recipients) == 1 {
				what = sc.recipients[0].Name + " nor a subdomain of it"
			}
			return uuid.Nil, &report.Refusal{Reason: NotHosted,
				Detail: fmt.Sprintf("report for %s, which is neither %s", policyDomain, what)}
		}
		// Only the recipients and the names between them and the policy
		// domain may hold the report.
		names = names[:len(names)-strings.Count(top, ".")]
	}
	rows, err := ingestdb.New(in.pool).HostedDomains(ctx, ingestdb.HostedDomainsParams{Names: names, AccountID: sc.account, ScopeAccounts: sc.accounts})
	if err != nil {
		return uuid.Nil, fmt.Errorf("find hosted domain: %w", err)
	}
	best, bestLen := uuid.Nil, -1
	for _, d := range rows {
		if sc.recipients != nil && !slices.ContainsFunc(within, func(r ingestdb.BlobRecipientsRow) bool {
			return under(d.Name, r.Name) && d.AccountID == r.AccountID
		}) {
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
