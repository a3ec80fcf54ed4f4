package app_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/domainconfig"
	"github.com/rampartmail/rampart/internal/domainkey"
	"github.com/rampartmail/rampart/internal/enrich"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/mailout"
	"github.com/rampartmail/rampart/internal/mailout/mailtest"
	"github.com/rampartmail/rampart/internal/readiness"
	"github.com/rampartmail/rampart/internal/reporting"
	"github.com/rampartmail/rampart/internal/sender"
	"github.com/rampartmail/rampart/internal/spf"
)

// system lists the exported service methods that take no principal, and
// why: no request of a tenant reaches them. Every other exported method
// must decide for itself, and is called below with a stranger's principal.
var system = map[string]string{ //nolint:gosec // G101: method names and reasons, not credentials
	"account.Service.CreateOwner":        "operator command (rampart admin create-owner)",
	"account.Service.UserExists":         "operator command (the dev seed)",
	"auth.Service.Login":                 "proves the credential; no principal exists yet",
	"auth.Service.Refresh":               "proves the refresh token; no principal exists yet",
	"auth.Service.Logout":                "proves the refresh token it ends",
	"auth.Service.Authenticate":          "makes the principal from a credential",
	"auth.Service.AuthenticateDashboard": "makes the principal from a dashboard session id",
	"auth.Service.EndDashboardSession":   "ends the session whose secret id it is given",
	"auth.Service.PruneLoginFailures":    "periodic job",
	"domain.Service.Config":              "static configuration, no tenant data",
	"domain.Service.Compile":             "runs in the transaction of an authorised change or a job (takes its tx)",
	"domain.Service.Republish":           "runs in the transaction of an authorised change or a job (takes its tx)",
	"domain.Service.CheckClaims":         "periodic job",
	"domain.Service.MaintainEdge":        "periodic job",
	"sources.Classifier.Run":             "periodic job",
	"sources.Classifier.PrepareNewDay":   "the ingest job's, for the day of a report it stores (takes its tx)",
	"domain.Service.CheckPublished":      "periodic job",
	"domain.Service.VerifyAsOperator":    "operator command (rampart admin verify-domain)",
	"sender.Manager.SyncCatalog":         "start-up: the shipped catalog",
	"sender.Manager.ResolveRanges":       "periodic job",
	"sender.Manager.ExpirePins":          "periodic job",
	"sender.Manager.ResolveRangesFrom":   "periodic job (a bounded run of ResolveRanges)",
	"sender.Manager.ExpirePinsUntil":     "periodic job (a bounded run of ExpirePins)",
	"sender.Manager.RefreshAsOperator":   "operator command (rampart senders refresh)",
	"sender.Manager.SetResolver":         "configuration",
	"ingest.Store.Accept":                "intake with no principal: SMTP (checked recipient), IMAP and import (operator)",
	"ingest.Store.SetMaxSize":            "configuration",
	"ingest.Store.RecipientDomain":       "SMTP RCPT lookup of a report address",
	"ingest.Store.Outcomes":              "rampart import -wait reading the blobs it stored (operator, with the database credentials)",
	"enrich.Enricher.Run":                "periodic job",
	"enrich.Enricher.Get":                "public facts about IPs (reverse DNS, the operator's files), no tenant's: read for a report its caller is authorised for",
	"account.Service.SignUp":             "open sign-up (the operator's setting): no principal exists yet",
	"account.Service.AcceptInvitation":   "proves the invitation token, bound to its address (graph/people_test.go)",
	"account.Service.Expired":            "a value of an invitation the caller already holds",
	"auth.Service.Admit":                 "throttles attempts made before any principal exists",
	"auth.Service.StartSession":          "signs in a user another flow has just proved (sign-up, invitation)",
	"auth.Service.HashNewPassword":       "computation, no data",
	"auth.Service.RequestPasswordReset":  "no principal exists yet: the same answer for every address",
	"auth.Service.ResetPassword":         "proves the reset token",
	// The tx-level parts of changes, composed by domainconfig.Service.Apply
	// on a domain domain.Service.Configure locked after authorising.
	"domain.Service.SetPolicyIn":      "runs in the transaction of an authorised change (takes its tx)",
	"domain.Service.SetModeIn":        "runs in the transaction of an authorised change (takes its tx)",
	"domain.Service.Reload":           "runs in the transaction of an authorised change (takes its tx)",
	"sender.Manager.AddNetblockIn":    "runs in the transaction of an authorised change (takes its tx)",
	"sender.Manager.RemoveNetblockIn": "runs in the transaction of an authorised change (takes its tx)",
	"sender.Manager.EnableSenderIn":   "runs in the transaction of an authorised change (takes its tx)",
	"sender.Manager.DisableSenderIn":  "runs in the transaction of an authorised change (takes its tx)",
	"sender.Manager.PinIncludeIn":     "runs in the transaction of an authorised change (takes its tx)",
	"sender.Manager.UnpinIncludeIn":   "runs in the transaction of an authorised change (takes its tx)",
	"sender.Manager.CheckLookups":     "runs in the transaction of an authorised change (takes its tx)",
	"sender.Manager.StateIn":          "runs in the transaction of an authorised change (takes its tx)",
	"sender.Manager.ValidatePin":      "computation, no data",
	"sender.Manager.KnowCost":         "called by domainconfig.Service.Apply after its authorised first pass (and by EnableSender after authorising); reads a catalog or own service's cost",
	"domainkey.Manager.AddIn":         "runs in the transaction of an authorised change (takes its tx)",
	"domainkey.Manager.RevokeIn":      "runs in the transaction of an authorised change (takes its tx)",
	"domainkey.Manager.RemoveIn":      "runs in the transaction of an authorised change (takes its tx)",
	"domainkey.Manager.KeysIn":        "runs in the transaction of an authorised change (takes its tx)",
}

// TestServicesAuthorizeStrangers calls every exported method of the domain
// services directly, as a resolver or handler would, with the principal of
// a stranger (an owner of another account): each must refuse by itself,
// with NOT_FOUND (the stranger may not learn the objects exist), and
// without a principal with UNAUTHENTICATED. The owner's own calls succeed,
// so a refusal is the authorisation's, not a broken fixture. A method
// added to a service without an entry here fails the test.
func TestServicesAuthorizeStrangers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	box := mailtest.Start(t, mailtest.Options{})
	cfg := &app.Config{EdgeZone: "edge.rampart.test", ReportsDomain: "reports.rampart.test", JWTKeyID: "k1", DNSResolver: "off",
		SMTPRelay: box.Addr, SMTPRelayTLS: mailout.TLSNone}
	seed, err := auth.GenerateSeed()
	require.NoError(t, err)
	cfg.JWTKey = base64.StdEncoding.EncodeToString(seed)
	log := slog.New(slog.DiscardHandler)
	svc, err := app.NewServices(pool, cfg, log)
	require.NoError(t, err)
	// The senders enabled below resolve (their cost must be known) from a
	// loopback vendor zone.
	vendors := apitest.ServeZone(t, map[string][]string{
		"_spf.google.com": {"v=spf1 ip4:64.233.160.0/19 ~all"},
		"amazonses.com":   {"v=spf1 ip4:54.240.0.0/18 ~all"},
	})
	svc.Senders.SetResolver(spf.NewDNSResolver(vendors.Addr))
	reader := reporting.NewReader(pool)
	authReports := authreport.New(pool)
	store := ingest.NewStore(pool, nil, log)

	owner := newOwner(t, svc.Accounts, "owner")
	stranger := newOwner(t, svc.Accounts, "stranger")
	asOwner := access.NewContext(ctx, access.Principal{UserID: owner.user})
	asStranger := access.NewContext(ctx, access.Principal{UserID: stranger.user})

	const name = "victim-domain.com"
	_, err = svc.Domains.Add(asOwner, owner.account, name)
	require.NoError(t, err)
	d, err := svc.Domains.VerifyAsOperator(ctx, name, &owner.account)
	require.NoError(t, err)
	services, err := catalog.Load()
	require.NoError(t, err)
	require.NoError(t, svc.Senders.SyncCatalog(ctx, services))
	_, err = svc.Senders.AddNetblock(asOwner, name, "192.0.2.0/24", "office")
	require.NoError(t, err)
	_, err = svc.Senders.EnableSender(asOwner, name, "google-workspace")
	require.NoError(t, err)
	_, err = svc.Senders.PinInclude(asOwner, name, "_spf.vendor.example", time.Now().Add(time.Hour))
	require.NoError(t, err)
	// fresh names a probe can create as the owner before acting on them.
	var n int
	fresh := func(prefix string) string { n++; return fmt.Sprintf("%s%d", prefix, n) }
	ownerKey := func() string {
		sel := fresh("k")
		_, _, err := svc.Keys.Add(asOwner, name, domainkey.NewKey{Selector: sel, CNAMETarget: sel + ".dkim.vendor.example"})
		require.NoError(t, err)
		return sel
	}
	strangersDomain, err := svc.Domains.Add(asStranger, stranger.account, "stranger-own.com")
	require.NoError(t, err)
	// Customer accounts hang below an MSP of their own, so that the owner
	// keeps one account (its default); the MSP's owner makes the owner's
	// calls of the customer probes.
	msp := newOwner(t, svc.Accounts, "msp")
	asMSP := access.NewContext(ctx, access.Principal{UserID: msp.user})
	mspOr := func(c context.Context) context.Context {
		if c == asOwner {
			return asMSP
		}
		return c
	}
	customer, _, err := svc.Accounts.CreateCustomer(asMSP, msp.account, "customer", "")
	require.NoError(t, err)

	week := authreport.LastDays(time.Now(), 7)
	domainReport, err := authReports.Domain(asOwner, owner.account, d.ID, week)
	require.NoError(t, err)
	accountReport, err := authReports.Account(asOwner, owner.account, week)
	require.NoError(t, err)

	// People: an invitation and a member of the owner's account, sessions
	// and a password of the owner's.
	invite := func() account.Invitation {
		inv, err := svc.Accounts.Invite(asOwner, owner.account, fresh("inv")+"@invitee.test", account.RoleMember)
		require.NoError(t, err)
		return inv
	}
	newMember := func() uuid.UUID {
		email := fresh("member") + "@invitee.test"
		_, err := svc.Accounts.Invite(asOwner, owner.account, email, account.RoleMember)
		require.NoError(t, err)
		token := regexp.MustCompile(`rinv_[A-Za-z0-9_-]{43}`).FindString(box.All()[len(box.All())-1].Body)
		a, err := svc.Accounts.AcceptInvitation(ctx, token, &account.NewUser{Name: "m", Hash: func() (string, error) { return "x", nil }})
		require.NoError(t, err)
		return a.UserID
	}
	ownerSession := func() uuid.UUID {
		tok, err := svc.Auth.StartSession(ctx, owner.user, auth.LoginClient{})
		require.NoError(t, err)
		id, err := svc.Auth.Authenticate(ctx, tok.AccessToken)
		require.NoError(t, err)
		return id.SessionID
	}
	sessionAlive := func(id uuid.UUID) bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL`, id).Scan(&n))
		return n > 0
	}
	const ownerPassword = "owner's long password 1"
	setPassword := func(user uuid.UUID, pw string) {
		h, err := svc.Auth.HashNewPassword(ctx, pw)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, h, user)
		require.NoError(t, err)
	}
	setPassword(owner.user, ownerPassword)
	setPassword(stranger.user, "stranger's long password 1")
	team, err := svc.Teams.Create(asOwner, owner.account, "probed")
	require.NoError(t, err)
	_, ownerTok, err := svc.Auth.CreateAPIToken(asOwner, owner.account, "owner's")
	require.NoError(t, err)
	ownerToken := access.NewContext(ctx, access.Principal{APITokenID: ownerTok.ID, TokenAccountID: owner.account})

	// Each call acts on the owner's objects; reads return a value to show
	// the owner's call saw them.
	calls := map[string]func(context.Context) error{
		"account.Service.Invite": func(c context.Context) error {
			_, err := svc.Accounts.Invite(c, owner.account, fresh("i")+"@invitee.test", account.RoleMember)
			return err
		},
		"account.Service.Invitations": func(c context.Context) error {
			_, err := svc.Accounts.Invitations(c, owner.account)
			return err
		},
		"account.Service.ResendInvitation": func(c context.Context) error {
			_, err := svc.Accounts.ResendInvitation(c, owner.account, invite().ID)
			return err
		},
		"account.Service.RevokeInvitation": func(c context.Context) error {
			_, err := svc.Accounts.RevokeInvitation(c, owner.account, invite().ID)
			return err
		},
		"account.Service.RemoveMember": func(c context.Context) error {
			return svc.Accounts.RemoveMember(c, owner.account, newMember())
		},
		"account.Service.ChangeMemberRole": func(c context.Context) error {
			_, err := svc.Accounts.ChangeMemberRole(c, owner.account, newMember(), account.RoleMember)
			return err
		},
		"account.Service.TransferOwnership": func(c context.Context) error {
			m := newMember()
			if err := svc.Accounts.TransferOwnership(c, owner.account, m); err != nil {
				return err
			}
			// Back to the owner, for the probes that follow.
			return svc.Accounts.TransferOwnership(access.NewContext(ctx, access.Principal{UserID: m}), owner.account, owner.user)
		},
		// A user's sessions and password are their own: a stranger reaches
		// only theirs, never the owner's.
		"auth.Service.ListSessions": func(c context.Context) error {
			sid := ownerSession()
			return onlyOwn(c, sid, func(c context.Context) ([]uuid.UUID, error) {
				list, err := svc.Auth.ListSessions(c)
				ids := make([]uuid.UUID, len(list))
				for i, s := range list {
					ids[i] = s.ID
				}
				return ids, err
			})
		},
		"auth.Service.RevokeSession": func(c context.Context) error { return svc.Auth.RevokeSession(c, ownerSession()) },
		"auth.Service.SignOutEverywhere": func(c context.Context) error {
			sid := ownerSession()
			_, err := svc.Auth.SignOutEverywhere(c, false)
			if err == nil && c != asOwner && sessionAlive(sid) {
				return apperr.NotFoundf("the stranger ended only their own sessions")
			}
			return err
		},
		"auth.Service.ChangePassword": func(c context.Context) error {
			_, err := svc.Auth.ChangePassword(c, ownerPassword, ownerPassword, auth.LoginClient{Addr: "192.0.2.9"})
			if errors.Is(err, auth.ErrWrongPassword) && c != asOwner {
				return apperr.NotFoundf("the owner's password opens nothing of the stranger's")
			}
			return err
		},
		"account.Service.CreateCustomer": func(c context.Context) error {
			c = mspOr(c)
			_, _, err := svc.Accounts.CreateCustomer(c, msp.account, fresh("customer"), "")
			return err
		},
		"account.Service.Customers": func(c context.Context) error {
			c = mspOr(c)
			return onlyOwn(c, customer.ID, func(c context.Context) ([]uuid.UUID, error) {
				p, err := svc.Accounts.Customers(c, msp.account, account.CustomerFilter{}, 10, "")
				ids := make([]uuid.UUID, len(p.Accounts))
				for i, a := range p.Accounts {
					ids[i] = a.ID
				}
				return ids, err
			})
		},
		"account.Service.Overviews": func(c context.Context) error {
			c = mspOr(c)
			return onlyOwn(c, customer.ID, func(c context.Context) ([]uuid.UUID, error) {
				m, err := svc.Accounts.Overviews(c, []uuid.UUID{customer.ID})
				ids := []uuid.UUID{}
				for id := range m {
					ids = append(ids, id)
				}
				return ids, err
			})
		},
		"account.Service.SuspendCustomer": func(c context.Context) error {
			c = mspOr(c)
			_, err := svc.Accounts.SuspendCustomer(c, customer.ID)
			return err
		},
		"account.Service.ResumeCustomer": func(c context.Context) error {
			c = mspOr(c)
			_, err := svc.Accounts.ResumeCustomer(c, customer.ID)
			return err
		},
		"account.Service.RemoveCustomer": func(c context.Context) error {
			c = mspOr(c)
			empty, _, err := svc.Accounts.CreateCustomer(asMSP, msp.account, fresh("gone"), "")
			require.NoError(t, err)
			_, err = svc.Accounts.RemoveCustomer(c, empty.ID)
			return err
		},
		"account.Service.Get":     func(c context.Context) error { _, err := svc.Accounts.Get(c, owner.account); return err },
		"account.Service.Members": func(c context.Context) error { _, err := svc.Accounts.Members(c, owner.account); return err },
		"account.Service.User":    func(c context.Context) error { _, err := svc.Accounts.User(c, owner.user); return err },
		"account.Service.List": func(c context.Context) error {
			return onlyOwn(c, owner.account, func(c context.Context) ([]uuid.UUID, error) {
				list, err := svc.Accounts.List(c)
				ids := make([]uuid.UUID, len(list))
				for i, a := range list {
					ids[i] = a.ID
				}
				return ids, err
			})
		},
		"account.Service.Default": func(c context.Context) error {
			return onlyOwn(c, owner.account, func(c context.Context) ([]uuid.UUID, error) {
				a, err := svc.Accounts.Default(c)
				return []uuid.UUID{a.ID}, err
			})
		},
		"auth.Service.CreateScopedAPIToken": func(c context.Context) error {
			_, _, err := svc.Auth.CreateScopedAPIToken(c, owner.account, auth.NewAPIToken{Name: "scoped", Level: access.LevelRead, ReadOnly: true})
			return err
		},
		"auth.Service.Self": func(c context.Context) error {
			if c == asOwner { // the owner's own token reads itself
				c = ownerToken
			}
			_, err := svc.Auth.Self(c)
			return err
		},
		"auth.Service.CreatorEmail": func(c context.Context) error {
			_, err := svc.Auth.CreatorEmail(c, owner.account, owner.user)
			return err
		},
		"domain.Service.SetLabels": func(c context.Context) error {
			_, err := svc.Domains.SetLabels(c, name, []string{"marketing"})
			return err
		},
		"access.Teams.Create": func(c context.Context) error {
			_, err := svc.Teams.Create(c, owner.account, fresh("team"))
			return err
		},
		"access.Teams.Get":    func(c context.Context) error { _, err := svc.Teams.Get(c, team.ID); return err },
		"access.Teams.List":   func(c context.Context) error { _, err := svc.Teams.List(c, owner.account); return err },
		"access.Teams.Rename": func(c context.Context) error { _, err := svc.Teams.Rename(c, team.ID, fresh("team")); return err },
		"access.Teams.Delete": func(c context.Context) error {
			gone, err := svc.Teams.Create(asOwner, owner.account, fresh("gone"))
			if err != nil {
				return err
			}
			_, err = svc.Teams.Delete(c, gone.ID)
			return err
		},
		"access.Teams.AddMember": func(c context.Context) error { _, err := svc.Teams.AddMember(c, team.ID, owner.user); return err },
		"access.Teams.RemoveMember": func(c context.Context) error {
			if _, err := svc.Teams.AddMember(asOwner, team.ID, owner.user); err != nil {
				return err
			}
			_, err := svc.Teams.RemoveMember(c, team.ID, owner.user)
			return err
		},
		"access.Teams.Members": func(c context.Context) error { _, err := svc.Teams.Members(c, team.ID); return err },
		"access.Teams.Grants":  func(c context.Context) error { _, err := svc.Teams.Grants(c, team.ID); return err },
		"access.Teams.Grant": func(c context.Context) error {
			_, err := svc.Teams.Grant(c, team.ID, owner.account, access.GrantRequest{Level: access.LevelRead, DomainNames: []string{name}})
			return err
		},
		"access.Teams.RevokeGrant": func(c context.Context) error {
			g, err := svc.Teams.Grant(asOwner, team.ID, owner.account, access.GrantRequest{Level: access.LevelRead})
			if err != nil {
				return err
			}
			_, err = svc.Teams.RevokeGrant(c, team.ID, g.ID)
			return err
		},
		"access.Teams.DomainNames": func(c context.Context) error {
			_, err := svc.Teams.DomainNames(c, owner.account, []uuid.UUID{d.ID})
			return err
		},
		"access.Teams.Effective": func(c context.Context) error {
			return onlyOwn(c, owner.account, func(c context.Context) ([]uuid.UUID, error) {
				list, err := svc.Teams.Effective(c)
				ids := make([]uuid.UUID, len(list))
				for i, e := range list {
					ids[i] = e.AccountID
				}
				return ids, err
			})
		},
		"auth.Service.CreateAPIToken": func(c context.Context) error {
			_, _, err := svc.Auth.CreateAPIToken(c, owner.account, "x")
			return err
		},
		"auth.Service.ListAPITokens": func(c context.Context) error {
			_, err := svc.Auth.ListAPITokens(c, owner.account)
			return err
		},
		"auth.Service.RevokeAPIToken": func(c context.Context) error {
			_, tok, err := svc.Auth.CreateAPIToken(asOwner, owner.account, fresh("t"))
			if err != nil {
				return err
			}
			return svc.Auth.RevokeAPIToken(c, owner.account, tok.ID)
		},
		"auth.Service.StartDashboardSession": func(c context.Context) error {
			_, err := svc.Auth.StartDashboardSession(c)
			if errors.Is(err, auth.ErrNotOperator) && c == asOwner {
				return nil // the owner is not an operator either: owning an account never makes one
			}
			return err
		},
		"domain.Service.Get": func(c context.Context) error { _, err := svc.Domains.Get(c, name); return err },
		"domain.Service.Add": func(c context.Context) error {
			_, err := svc.Domains.Add(c, owner.account, "other-domain.com")
			return err
		},
		"domain.Service.Remove": func(c context.Context) error {
			gone := fresh("gone") + ".com"
			if _, err := svc.Domains.Add(asOwner, owner.account, gone); err != nil {
				return err
			}
			_, err := svc.Domains.Remove(c, gone)
			return err
		},
		"domain.Service.SetMode": func(c context.Context) error { _, err := svc.Domains.SetMode(c, name, d.Mode); return err },
		"domain.Service.SetBIMI": func(c context.Context) error { _, err := svc.Domains.SetBIMI(c, name, "", ""); return err },
		"domain.Service.Verify": func(c context.Context) error {
			// DNS checks are off here: CONFLICT is the owner's answer, given
			// only after the decision.
			_, err := svc.Domains.Verify(c, name)
			return allow(err, apperr.Conflict)
		},
		"domain.Service.CheckDNSSetup": func(c context.Context) error {
			// DNS checks are off here: CONFLICT is the owner's answer, given
			// only after the decision.
			_, err := svc.Domains.CheckDNSSetup(c, name)
			return allow(err, apperr.Conflict)
		},
		"domain.Service.DNSSetup": func(c context.Context) error { _, err := svc.Domains.DNSSetup(c, d); return err },
		"domain.Service.Proof":    func(c context.Context) error { _, err := svc.Domains.Proof(c, d); return err },
		"domain.Service.ProofFor": func(c context.Context) error {
			_, err := svc.Domains.ProofFor(c, owner.account, "next-domain.com")
			return err
		},
		"domain.Service.UpdatePolicy": func(c context.Context) error {
			_, err := svc.Domains.UpdatePolicy(c, name, func(*domain.Policy) {}, false)
			return err
		},
		"domain.Service.SetReadinessThreshold": func(c context.Context) error {
			_, err := svc.Domains.SetReadinessThreshold(c, name, 90)
			return err
		},
		"domain.Service.SetSenderThreshold": func(c context.Context) error {
			threshold := 90.0
			_, err := svc.Domains.SetSenderThreshold(c, name, "google-workspace", &threshold)
			return err
		},
		"readiness.Reader.Get": func(c context.Context) error { _, err := svc.Readiness.Get(c, owner.account, d.ID); return err },
		"readiness.Reader.NotReady": func(c context.Context) error {
			_, err := svc.Readiness.NotReady(c, []uuid.UUID{owner.account})
			return err
		},
		"readiness.Reader.GetMany": func(c context.Context) error {
			_, errs, err := svc.Readiness.GetMany(c, []readiness.Domain{{Account: owner.account, ID: d.ID}})
			if err != nil {
				return err
			}
			return errs[0]
		},
		"readiness.Reader.PolicyChanges": func(c context.Context) error {
			_, err := svc.Readiness.PolicyChanges(c, owner.account, d.ID, 10)
			return err
		},
		"domain.Service.Configure": func(c context.Context) error {
			_, err := svc.Domains.Configure(c, owner.account, name, []access.Permission{access.ManagePolicy}, func(pgx.Tx, domain.Domain, bool) (bool, error) { return false, nil })
			return err
		},
		"domainconfig.Service.Apply": func(c context.Context) error {
			_, err := svc.Configs.Apply(c, owner.account, domainconfig.Config{Name: name, Senders: []string{}}, true, false)
			return err
		},
		"domain.Service.Change": func(c context.Context) error {
			_, err := svc.Domains.Change(c, name, access.ManagePolicy, func(pgx.Tx, domain.Domain) error { return nil })
			return err
		},
		"domain.Service.List": func(c context.Context) error {
			_, err := svc.Domains.List(c, domain.Filter{AccountID: &owner.account}, 10, "")
			return err
		},
		"sender.Manager.AddNetblock": func(c context.Context) error {
			_, err := svc.Senders.AddNetblock(c, name, "198.51.100.0/24", "")
			return err
		},
		"sender.Manager.RemoveNetblock": func(c context.Context) error {
			block := fmt.Sprintf("203.0.113.%d/32", len(fresh("")))
			if _, err := svc.Senders.AddNetblock(asOwner, name, block, ""); err != nil {
				return err
			}
			_, err := svc.Senders.RemoveNetblock(c, name, block)
			return err
		},
		"sender.Manager.EnableSender": func(c context.Context) error {
			_, err := svc.Senders.EnableSender(c, name, "google-workspace")
			return err
		},
		"sender.Manager.DisableSender": func(c context.Context) error {
			if _, err := svc.Senders.EnableSender(asOwner, name, "amazon-ses"); err != nil {
				return err
			}
			_, err := svc.Senders.DisableSender(c, name, "amazon-ses")
			return err
		},
		"sender.Manager.PinInclude": func(c context.Context) error {
			_, err := svc.Senders.PinInclude(c, name, "_spf.vendor.example", time.Now().Add(time.Hour))
			return err
		},
		"sender.Manager.UnpinInclude": func(c context.Context) error {
			inc := fresh("_spf") + ".vendor.example"
			if _, err := svc.Senders.PinInclude(asOwner, name, inc, time.Now().Add(time.Hour)); err != nil {
				return err
			}
			_, err := svc.Senders.UnpinInclude(c, name, inc)
			return err
		},
		"sender.Manager.Netblocks": func(c context.Context) error { _, err := svc.Senders.Netblocks(c, d); return err },
		"sender.Manager.Enabled":   func(c context.Context) error { _, err := svc.Senders.Enabled(c, d); return err },
		"sender.Manager.Pins":      func(c context.Context) error { _, err := svc.Senders.Pins(c, d); return err },
		"sender.Manager.LookupsOf": func(c context.Context) error { _, _, err := svc.Senders.LookupsOf(c, d); return err },
		"sender.Manager.RefreshRanges": func(c context.Context) error {
			// Enabling it looked it up: lift the once-a-minute limit.
			if _, err := pool.Exec(ctx, `UPDATE sender_services SET resolve_attempted_at = NULL`); err != nil {
				return err
			}
			_, err := svc.Senders.RefreshRanges(c, "google-workspace")
			return err
		},
		"sender.Manager.Explain": func(c context.Context) error { _, err := svc.Senders.Explain(c, name, "192.0.2.1", ""); return err },
		"sender.Manager.Catalog": func(c context.Context) error {
			return anyoneSignedIn(c, asStranger, func(c context.Context) error { _, err := svc.Senders.Catalog(c); return err })
		},
		"sender.Manager.Service": func(c context.Context) error {
			return anyoneSignedIn(c, asStranger, func(c context.Context) error {
				_, err := svc.Senders.Service(c, "google-workspace")
				return err
			})
		},
		"sender.Manager.CreateService": func(c context.Context) error {
			_, err := svc.Senders.CreateService(c, owner.account, fresh("relay"), sender.ServiceInput{Name: "Relay", Ranges: []string{"198.51.100.0/24"}})
			return err
		},
		"sender.Manager.UpdateService": func(c context.Context) error {
			s, err := svc.Senders.CreateService(asOwner, owner.account, fresh("relay"), sender.ServiceInput{Name: "Relay", Ranges: []string{"198.51.100.0/24"}})
			if err != nil {
				return err
			}
			name := "Relay EU"
			_, err = svc.Senders.UpdateService(c, s.Slug, sender.ServicePatch{Name: &name})
			return err
		},
		"sender.Manager.DeleteService": func(c context.Context) error {
			s, err := svc.Senders.CreateService(asOwner, owner.account, fresh("relay"), sender.ServiceInput{Name: "Relay", Ranges: []string{"198.51.100.0/24"}})
			if err != nil {
				return err
			}
			_, err = svc.Senders.DeleteService(c, s.Slug)
			return err
		},
		"sender.Manager.AccountServices": func(c context.Context) error {
			_, err := svc.Senders.AccountServices(c, owner.account)
			return err
		},
		"domainkey.Manager.Add": func(c context.Context) error {
			sel := fresh("a")
			_, _, err := svc.Keys.Add(c, name, domainkey.NewKey{Selector: sel, CNAMETarget: sel + ".dkim.vendor.example"})
			return err
		},
		"domainkey.Manager.Revoke": func(c context.Context) error { _, err := svc.Keys.Revoke(c, name, ownerKey()); return err },
		"domainkey.Manager.Remove": func(c context.Context) error { return svc.Keys.Remove(c, name, ownerKey()) },
		"domainkey.Manager.Keys":   func(c context.Context) error { _, err := svc.Keys.Keys(c, d); return err },
		"domainkey.Manager.Discovered": func(c context.Context) error {
			_, err := svc.Keys.Discovered(c, d, 30, 50, true)
			return err
		},
		"domainkey.Manager.Probe": func(c context.Context) error { _, err := svc.Keys.Probe(c, d, "s1"); return err },
		"domainkey.Manager.Import": func(c context.Context) error {
			_, _, err := svc.Keys.Import(c, name, fresh("i"))
			if errors.Is(err, apperr.ErrConflict) && c == asOwner {
				return nil // past authorisation: this server does not check DNS (graph's TestDKIMDiscovery imports)
			}
			return err
		},
		"reporting.Reader.Reports": func(c context.Context) error {
			_, err := reader.Reports(c, owner.account, d.ID, 10, "")
			return err
		},
		"reporting.Reader.DomainProblems": func(c context.Context) error {
			_, err := reader.DomainProblems(c, owner.account, d.ID, 10)
			return err
		},
		"reporting.Reader.AccountProblems": func(c context.Context) error {
			_, err := reader.AccountProblems(c, owner.account, 10)
			return err
		},
		"reporting.Reader.UnmatchedProblems": func(c context.Context) error {
			_, err := reader.UnmatchedProblems(c, 10)
			if errors.Is(err, apperr.ErrForbidden) && c == asOwner {
				return nil // the owner is not an operator: unmatched reports are no tenant's
			}
			return err
		},
		"ingest.Store.BeginUpload": func(c context.Context) error { _, err := store.BeginUpload(c, owner.account); return err },
		"authreport.Reader.Domain": func(c context.Context) error {
			_, err := authReports.Domain(c, owner.account, d.ID, week)
			return err
		},
		"authreport.Reader.Account": func(c context.Context) error {
			_, err := authReports.Account(c, owner.account, week)
			return err
		},
		// The reads of a scope authorise it again: the owner's scope in a
		// stranger's hands reads nothing.
		"authreport.Reader.Summaries": func(c context.Context) error {
			_, err := authReports.Summaries(c, []*authreport.Scope{domainReport, accountReport})
			return err
		},
		"authreport.Reader.Senders": func(c context.Context) error {
			_, err := authReports.Senders(c, domainReport, authreport.SenderQuery{First: 10})
			return err
		},
		"authreport.Reader.Daily": func(c context.Context) error {
			_, err := authReports.Daily(c, accountReport, "")
			return err
		},
		"authreport.Reader.Unidentified": func(c context.Context) error {
			_, err := authReports.Unidentified(c, domainReport, 10)
			return err
		},
		"authreport.Reader.Source": func(c context.Context) error {
			_, err := authReports.Source(c, domainReport, "192.0.2.1")
			return err
		},
	}

	// Every exported method is probed or named as system work.
	enricher := enrich.New(pool, enrich.Config{}, log)
	for _, v := range []any{svc.Accounts, svc.Auth, svc.Domains, svc.Senders, svc.Keys, svc.Sources, svc.Readiness, reader, store, enricher, authReports, svc.Teams, svc.Configs} {
		typ := reflect.TypeOf(v)
		prefix := typ.Elem().String() + "."
		for i := range typ.NumMethod() {
			m := prefix + typ.Method(i).Name
			_, probed := calls[m]
			_, sys := system[m]
			require.True(t, probed != sys, "%s must be either probed with a stranger's principal or listed as system work, not both or neither", m)
		}
	}

	// The job dashboard is the instance's, not a tenant's: a stranger is
	// refused as not an operator (the owner too, whom owning an account
	// does not make one), and no principal is refused as auth's own.
	refusedAs := map[string][2]error{
		"auth.Service.StartDashboardSession": {auth.ErrNotOperator, auth.ErrUnauthenticated},
		"reporting.Reader.UnmatchedProblems": {apperr.ErrForbidden, apperr.ErrUnauthenticated},
	}

	names := make([]string, 0, len(calls))
	for m := range calls {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		call := calls[m]
		require.NoError(t, call(asOwner), "%s: the owner's own call", m)
		stranger, anonymous := error(apperr.ErrNotFound), error(apperr.ErrUnauthenticated)
		if r, ok := refusedAs[m]; ok {
			stranger, anonymous = r[0], r[1]
		}
		err := call(asStranger)
		require.ErrorIs(t, err, stranger, "%s: a stranger's call must be refused, got %v", m, err)
		err = call(ctx)
		require.ErrorIs(t, err, anonymous, "%s: a call without a principal must be UNAUTHENTICATED, got %v", m, err)
	}

	// A stranger naming its own account with the owner's domain is
	// refused too: the domain is bound to its account.
	_, err = reader.Reports(asStranger, stranger.account, d.ID, 10, "")
	require.ErrorIs(t, err, apperr.ErrNotFound)
	_, err = reader.Reports(asStranger, stranger.account, strangersDomain.ID, 10, "")
	require.NoError(t, err, "the stranger's own domain")
	_, err = svc.Readiness.Get(asStranger, stranger.account, d.ID)
	require.ErrorIs(t, err, apperr.ErrNotFound)
	_, err = svc.Readiness.Get(asStranger, stranger.account, strangersDomain.ID)
	require.NoError(t, err, "the stranger's own domain")
	_, errs, err := svc.Readiness.GetMany(asStranger, []readiness.Domain{{Account: stranger.account, ID: d.ID}, {Account: stranger.account, ID: strangersDomain.ID}})
	require.NoError(t, err)
	require.ErrorIs(t, errs[0], apperr.ErrNotFound)
	require.NoError(t, errs[1], "the stranger's own domain")
}

type ownerIDs struct{ user, account uuid.UUID }

func newOwner(t *testing.T, accounts *account.Service, label string) ownerIDs {
	t.Helper()
	a, u, err := accounts.CreateOwner(context.Background(), account.NewOwner{
		Email: label + "-" + uuid.NewString()[:8] + "@example.com", Name: label, PasswordHash: "x", AccountName: label,
	})
	require.NoError(t, err)
	return ownerIDs{user: u.ID, account: a.ID}
}

// onlyOwn turns a listing into a decision: the owner's listing holds the
// account; anyone else's listing that holds it is a leak (reported as
// success, which the test refuses), and one that does not is NOT_FOUND.
func onlyOwn(c context.Context, acct uuid.UUID, list func(context.Context) ([]uuid.UUID, error)) error {
	ids, err := list(c)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id == acct {
			return nil
		}
	}
	return apperr.NotFoundf("not listed")
}

// anyoneSignedIn is for what every signed-in caller may read (the shipped
// sender catalog): the stranger's call must succeed, and is then reported
// as NOT_FOUND only to fit the table; without a principal it must fail.
func anyoneSignedIn(c, stranger context.Context, call func(context.Context) error) error {
	err := call(c)
	if err == nil && c == stranger {
		return apperr.NotFoundf("global catalog: readable by every signed-in caller")
	}
	return err
}

// allow turns the given codes, answers that come only after the decision,
// into success for the owner's call.
func allow(err error, codes ...apperr.Code) error {
	if ae, ok := apperr.As(err); ok && slices.Contains(codes, ae.Code) {
		return nil
	}
	return err
}
