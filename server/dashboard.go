package server

import (
	"log/slog"
	"net/http"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/request"
)

// DashboardCookie carries the bearer credential of a browser session on the
// job dashboard: a browser sends no Authorization header when it follows a
// link, so POST /riverui/session (with the header) sets this cookie, scoped
// to the dashboard's path, HttpOnly and SameSite=Strict.
const DashboardCookie = "rampart_dashboard"

// DashboardSession answers POST /riverui/session: it must run behind
// RequireAuth, and stores the request's bearer credential in the cookie.
func DashboardSession(prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{
			Name: DashboardCookie, Value: request.FromContext(r.Context()).Bearer, Path: prefix,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 3600,
		})
		w.WriteHeader(http.StatusNoContent)
	})
}

// OperatorOnly lets through only operators (owners of a top-level
// account), authenticated by the Authorization header or the dashboard
// cookie. The job dashboard shows every tenant's jobs, so account owners
// below an MSP and members may not see it.
func OperatorOnly(authenticate Authenticator, authz *access.Authorizer, log *slog.Logger, next http.Handler) http.Handler {
	gate := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, err := authz.Operator(r.Context())
		if err != nil {
			id := request.FromContext(r.Context()).ID
			log.ErrorContext(r.Context(), "check operator", "err", err, "request_id", id)
			WriteError(w, http.StatusInternalServerError, apperr.Internal, "internal error (request "+id+")", id)
			return
		}
		if !ok {
			WriteError(w, http.StatusForbidden, apperr.Forbidden, "the job dashboard is for the owners of top-level accounts", request.FromContext(r.Context()).ID)
			return
		}
		next.ServeHTTP(w, r)
	})
	auth := RequireAuth(authenticate, log, gate)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.FromContext(r.Context())
		if info.Bearer == "" {
			if c, err := r.Cookie(DashboardCookie); err == nil && c.Value != "" {
				info.Bearer = c.Value
				r = r.WithContext(request.NewContext(r.Context(), info))
			}
		}
		auth.ServeHTTP(w, r)
	})
}
