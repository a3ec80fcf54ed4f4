package ingest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/ingest"
)

// TestUploadScopeIsWhatThePrincipalMayManage: BeginUpload authorises with
// the access decision every operation uses, and the reports of an upload
// land only in domains of accounts where its principal may manage domains:
// an MSP's owner reaches every customer account below it (customers'
// customers too, as owners act at every level of nesting), whatever account
// it uploads to; an account above or beside is refused as a stranger's is.
func TestUploadScopeIsWhatThePrincipalMayManage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	msp := e.addAccount(t, "msp", nil)
	child := e.addAccount(t, "customer", &msp)
	grandchild := e.addAccount(t, "customer's customer", &child)
	stranger := e.addAccount(t, "stranger", nil)
	e.addDomain(t, msp, "msp.example")
	e.addDomain(t, child, "child.example")
	e.addDomain(t, grandchild, "grand.example")
	e.addDomain(t, stranger, "stranger.example")
	owner := func(account uuid.UUID) context.Context {
		var id uuid.UUID
		require.NoError(t, e.pool.QueryRow(ctx, `INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id`,
			strings.ReplaceAll(uuid.NewString(), "-", "")+"@example.com").Scan(&id))
		_, err := e.pool.Exec(ctx, `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'owner')`, account, id)
		require.NoError(t, err)
		return access.NewContext(ctx, access.Principal{UserID: id})
	}
	mspOwner, childOwner := owner(msp), owner(child)
	mspToken := e.token(t, msp)

	n := 0
	outcome := func(asWho context.Context, account uuid.UUID, policyDomain string) string {
		t.Helper()
		up, err := e.store.BeginUpload(asWho, account)
		require.NoError(t, err)
		n++
		acc, err := up.Add(asWho, ingest.UploadedFile{Filename: "r.xml", Raw: simple(strings.Repeat("u", n), policyDomain, day0)})
		require.NoError(t, err)
		if err := e.worker.Ingest(ctx, acc.BlobID); err != nil {
			require.True(t, cancelled(err), "%v", err)
			return *e.blob(t, acc.BlobID).Detail
		}
		return "stored"
	}
	refused := func(domain string) string { return "report for " + domain + ", which this account does not host" }
	for _, c := range []struct {
		who      string
		as       context.Context
		account  uuid.UUID
		domain   string
		expected string
	}{
		{"msp owner", mspOwner, msp, "msp.example", "stored"},
		{"msp owner", mspOwner, msp, "child.example", "stored"},
		{"msp owner", mspOwner, msp, "grand.example", "stored"},
		{"msp owner", mspOwner, msp, "stranger.example", refused("stranger.example")},
		{"msp owner", mspOwner, child, "child.example", "stored"},
		{"msp owner", mspOwner, child, "grand.example", "stored"},
		{"msp token", mspToken, msp, "child.example", "stored"},
		{"msp token", mspToken, msp, "grand.example", "stored"},
		{"child owner", childOwner, child, "grand.example", "stored"},
		{"child owner", childOwner, grandchild, "grand.example", "stored"},
		{"child owner", childOwner, child, "msp.example", refused("msp.example")},
	} {
		require.Equal(t, c.expected, outcome(c.as, c.account, c.domain), "%s uploading to %s a report for %s", c.who, c.account, c.domain)
	}

	// Naming an account outside one's standing: NOT_FOUND, as for any
	// operation there, before anything is read or stored.
	for _, c := range []struct {
		as      context.Context
		account uuid.UUID
	}{{childOwner, msp}, {mspOwner, stranger}, {mspToken, stranger}, {mspOwner, uuid.New()}} {
		_, err := e.store.BeginUpload(c.as, c.account)
		require.ErrorIs(t, err, apperr.ErrNotFound)
	}
	_, err := e.store.BeginUpload(ctx, msp)
	require.ErrorIs(t, err, apperr.ErrUnauthenticated)
}

// TestUploadRefusesNamesThatAreNotText: a file name PostgreSQL could not
// store is BAD_USER_INPUT naming the field, not an internal error.
func TestUploadRefusesNamesThatAreNotText(t *testing.T) {
	t.Parallel()
	e := setup(t)
	asToken := e.token(t, e.account)
	up, err := e.store.BeginUpload(asToken, e.account)
	require.NoError(t, err)
	for _, name := range []string{"a\x00b.xml", "a\xffb.xml", "\xe2\x82.xml"} {
		_, err := up.Add(asToken, ingest.UploadedFile{Filename: name, Raw: simple("n", "example.com", day0)})
		ae, ok := apperr.As(err)
		require.True(t, ok, "%q: %v", name, err)
		require.Equal(t, apperr.BadUserInput, ae.Code)
		require.Equal(t, "filename", ae.Field)
	}
	_, err = e.store.Accept(context.Background(), ingest.Incoming{Source: ingest.SourceImport, Raw: []byte("x"), Filename: "a\x00"})
	require.ErrorIs(t, err, apperr.ErrBadUserInput)
	require.Zero(t, e.count(t, `SELECT count(*) FROM report_blobs`))
	_, err = up.Add(asToken, ingest.UploadedFile{Filename: "résumé.xml", Raw: simple("n", "example.com", day0)})
	require.NoError(t, err)
}
