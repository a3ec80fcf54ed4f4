// Package intaketest sets up what the intake tests share: a fresh migrated
// database with an account and hosted domains, an [ingest.Store] over an
// insert-only River client, readers for the report_blobs and river_job rows
// that Accept writes, and self-signed TLS certificates for loopback servers.
package intaketest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/ingest"
)

// Env is one test's database.
type Env struct {
	Pool  *pgxpool.Pool
	Store *ingest.Store
	// Account is an account created by New.
	Account uuid.UUID
}

// New returns an Env on a fresh database with one account.
func New(t testing.TB) *Env {
	t.Helper()
	pool := dbtest.NewPool(t)
	// Insert-only: the tests look at the rows Accept writes, not at decoding.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	e := &Env{Pool: pool, Store: ingest.NewStore(pool, client, nil)}
	e.Account = e.AddAccount(t, "acme")
	return e
}

// AddAccount creates an account.
func (e *Env) AddAccount(t testing.TB, name string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, e.Pool.QueryRow(context.Background(),
		`INSERT INTO accounts (name) VALUES ($1) RETURNING id`, name).Scan(&id))
	return id
}

// AddDomain hosts a verified domain in the account and returns its id and report
// token (the local part of its rua address).
func (e *Env) AddDomain(t testing.TB, account uuid.UUID, name string) (uuid.UUID, string) {
	t.Helper()
	var id uuid.UUID
	var token string
	require.NoError(t, e.Pool.QueryRow(context.Background(),
		`INSERT INTO domains (account_id, name, verified_at, verified_how, claim_expires_at)
		 VALUES ($1, $2, now(), 'operator', NULL) RETURNING id, report_token`, account, name).Scan(&id, &token))
	return id, token
}

// AddOwner creates a user who owns the account and returns the user's id.
func (e *Env) AddOwner(t testing.TB, account uuid.UUID, email string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var id uuid.UUID
	require.NoError(t, e.Pool.QueryRow(ctx,
		`INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id`, email).Scan(&id))
	_, err := e.Pool.Exec(ctx, `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'owner')`, account, id)
	require.NoError(t, err)
	return id
}

// Blob is a report_blobs row as Accept wrote it.
type Blob struct {
	ID        uuid.UUID
	Source    string
	Raw       []byte
	AccountID *uuid.UUID
	// Recipients are the domains a mail blob was sent to, in id order.
	Recipients []uuid.UUID
	Remote     string
	Filename   string
	Status     string
}

// Blobs returns every stored blob, oldest first.
func (e *Env) Blobs(t testing.TB) []Blob {
	t.Helper()
	rows, err := e.Pool.Query(context.Background(),
		`SELECT b.id, b.source, b.raw, b.account_id,
			coalesce((SELECT array_agg(r.domain_id ORDER BY r.domain_id) FROM report_blob_recipients r WHERE r.blob_id = b.id), '{}'),
			b.remote, b.filename, b.status
		FROM report_blobs b ORDER BY b.received_at, b.id`)
	require.NoError(t, err)
	blobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Blob, error) {
		var b Blob
		err := r.Scan(&b.ID, &b.Source, &b.Raw, &b.AccountID, &b.Recipients, &b.Remote, &b.Filename, &b.Status)
		return b, err
	})
	require.NoError(t, err)
	return blobs
}

// Count runs a query that returns one number.
func (e *Env) Count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// BlobCount is the number of stored blobs.
func (e *Env) BlobCount(t testing.TB) int {
	t.Helper()
	return e.Count(t, `SELECT count(*) FROM report_blobs`)
}

// IngestJobs is the number of report.ingest jobs enqueued.
func (e *Env) IngestJobs(t testing.TB) int {
	t.Helper()
	return e.Count(t, `SELECT count(*) FROM river_job WHERE kind = 'report.ingest'`)
}

// TLS returns a server configuration with a fresh self-signed certificate
// for the names (and 127.0.0.1), and a client configuration that trusts it.
func TLS(t testing.TB, names ...string) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "rampart test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}
	client = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if len(names) > 0 {
		client.ServerName = names[0]
	}
	return server, client
}
