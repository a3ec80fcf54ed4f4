package ingest_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/ingest"
)

// TestUnverifiedClaimGetsNoReports: a claim whose account has not proven
// it controls the name receives nothing: its report address is unknown at
// RCPT, and an upload for the name is refused, even by the claimant.
func TestUnverifiedClaimGetsNoReports(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	claimer := e.addAccount(t, "claimer", nil)
	var id uuid.UUID
	var token string
	require.NoError(t, e.pool.QueryRow(ctx, `INSERT INTO domains (account_id, name) VALUES ($1, 'claimed.example')
		RETURNING id, report_token`, claimer).Scan(&id, &token))

	_, _, ok, err := e.store.RecipientDomain(ctx, token)
	require.NoError(t, err)
	require.False(t, ok, "an unverified claim's report address must be unknown")

	acc := e.accept(t, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &claimer, Raw: simple("u1", "claimed.example", day0)})
	require.True(t, cancelled(e.worker.Ingest(ctx, acc.BlobID)))
	require.Equal(t, "report for claimed.example, which this account does not host", *e.blob(t, acc.BlobID).Detail)

	// Mail already queued for a domain that lost its verification is refused too.
	_, err = e.pool.Exec(ctx, `UPDATE domains SET verified_at = NULL, verified_how = NULL, claim_expires_at = now() + interval '1 day'
		WHERE id = $1`, e.domains["example.com"])
	require.NoError(t, err)
	acc = e.accept(t, ingest.Incoming{Source: ingest.SourceSMTP, Recipients: []uuid.UUID{e.domains["example.com"]}, Raw: simple("u2", "example.com", day0)})
	require.True(t, cancelled(e.worker.Ingest(ctx, acc.BlobID)))
	require.Zero(t, e.count(t, `SELECT count(*) FROM reports`))
}

// TestDedupeKeyHasTheDomain: a report stored for one account's domain does
// not make another domain's copy of it a duplicate. Account B hosts
// shared.example, A hosts sub.shared.example (both verified): B uploads a
// forged copy of the report sub.shared.example's receivers send to A, and
// it is stored for B's parent domain; A's real report still arrives and is
// stored for A. The same report arriving for A again is a duplicate.
func TestDedupeKeyHasTheDomain(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	a, b := e.addAccount(t, "a", nil), e.addAccount(t, "b", nil)
	e.addDomain(t, a, "sub.shared.example")
	e.addDomain(t, b, "shared.example")
	real := simple("r-1", "sub.shared.example", day0)
	forged := xmlReport("reporter.example", "r-1", "sub.shared.example", day0, rec{"198.51.100.7", 1000, "none", "pass", "pass", ""})

	acc := e.accept(t, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &b, Raw: forged})
	require.NoError(t, e.worker.Ingest(ctx, acc.BlobID))
	require.Equal(t, "stored", e.blob(t, acc.BlobID).Status)

	acc = e.accept(t, ingest.Incoming{Source: ingest.SourceSMTP, Recipients: []uuid.UUID{e.domains["sub.shared.example"]}, Raw: real})
	require.NoError(t, e.worker.Ingest(ctx, acc.BlobID))
	require.Equal(t, "stored", e.blob(t, acc.BlobID).Status, "A's report must not be a duplicate of B's forgery")
	require.Equal(t, int64(3), e.count(t, `SELECT sum(messages) FROM report_sources WHERE domain_id = $1`, e.domains["sub.shared.example"]))

	acc = e.accept(t, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &a, Raw: real})
	require.NoError(t, e.worker.Ingest(ctx, acc.BlobID))
	require.Equal(t, "duplicate", e.blob(t, acc.BlobID).Status)
	require.Equal(t, int64(2), e.count(t, `SELECT count(*) FROM reports`))
}
