// Package graph implements Rampart's public GraphQL API with gqlgen: the
// resolvers (one file per schema file in schema/), the conversions between
// GraphQL and domain types, and the limits and error presentation wired by
// [NewHandler]. Resolvers are thin: they parse arguments and call the domain
// services in internal/, which authorise every call.
package graph

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"log/slog"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/domainconfig"
	"github.com/rampartmail/rampart/internal/domainkey"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/readiness"
	"github.com/rampartmail/rampart/internal/reporting"
	"github.com/rampartmail/rampart/internal/sender"
)

// Resolver holds the services the resolvers call.
type Resolver struct {
	AccountSvc *account.Service
	DomainSvc  *domain.Service
	AuthSvc    *auth.Service
	SenderSvc  *sender.Manager
	KeySvc     *domainkey.Manager
	// ConfigSvc applies domains' declared configurations.
	ConfigSvc *domainconfig.Service
	Reporting *reporting.Reader
	// AuthReports reads the authentication report.
	AuthReports *authreport.Reader
	// ReadinessSvc decides domains' readiness for enforcement.
	ReadinessSvc *readiness.Reader
	// Store takes uploaded report inputs in.
	Store *ingest.Store
	Log   *slog.Logger
	// Teams manages teams and answers the caller's effective grants.
	TeamSvc *access.Teams
	// Pool is for authorisation checks that belong to no single service.
	Pool *pgxpool.Pool
}
