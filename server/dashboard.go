package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/request"
)

// DashboardCookie carries a browser's job dashboard session: a browser sends
// no Authorization header when it follows a link, so POST <prefix>/session
// (with the header) starts a session and sets this cookie, scoped to the
// dashboard's path, HttpOnly, SameSite=Strict, Secure over TLS. Its value is
// an opaque, expiring session id, never the bearer token.
const DashboardCookie = "rampart_dashboard"

// Dashboard is the gate in front of the job dashboard (the River UI), which
// shows and steers every tenant's jobs and so is for instance operators
// only. The decisions are the domain's (the functions below); this type
// carries credentials from the request to them and refuses cross-origin
// writes.
type Dashboard struct {
	// Prefix is the dashboard's path, e.g. "/riverui".
	Prefix string
	// SecureCookies marks the session cookie Secure, and takes https as the
	// dashboard's own scheme, even for requests that arrive without TLS:
	// for a TLS-terminating proxy in front of the server.
	SecureCookies bool
	// Authenticate checks a bearer credential from the Authorization header.
	Authenticate Authenticator
	// AuthenticateSession checks a session id from the cookie; it refuses
	// anything else, bearer tokens included, as UNAUTHENTICATED.
	AuthenticateSession Authenticator
	// StartSession starts a session for the principal in the context,
	// refusing (FORBIDDEN) anyone but an operator.
	StartSession func(ctx context.Context) (id string, expires time.Time, err error)
	// EndSession ends a session by its id.
	EndSession func(ctx context.Context, id string) error
	// Operator reports whether the principal in the context is an
	// instance operator; asked on every request, so revoking the role
	// takes effect at once.
	Operator func(ctx context.Context) (bool, error)
	Log      *slog.Logger
}

// DashboardSession answers POST <prefix>/session (Authorization header
// only: an operator's access token) by starting a session and setting the
// cookie, and DELETE <prefix>/session (the cookie, from the dashboard's own
// origin) by ending it.
func DashboardSession(d *Dashboard) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.FromContext(r.Context())
		if !d.sameOrigin(r, info.Bearer != "") {
			WriteError(w, http.StatusForbidden, apperr.Forbidden, "cross-origin request refused", info.ID)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if r.Method == http.MethodDelete {
			if c, err := r.Cookie(DashboardCookie); err == nil && c.Value != "" {
				if err := d.EndSession(r.Context(), c.Value); err != nil {
					d.fail(w, r, err)
					return
				}
			}
			http.SetCookie(w, d.cookie(r, "", time.Unix(1, 0), -1))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if info.Bearer == "" {
			WriteError(w, http.StatusUnauthorized, apperr.Unauthenticated, "a session starts with an Authorization: Bearer header", info.ID)
			return
		}
		p, err := d.Authenticate(r.Context(), info.Bearer)
		if err != nil {
			d.fail(w, r, err)
			return
		}
		id, exp, err := d.StartSession(access.NewContext(r.Context(), p))
		if err != nil {
			d.fail(w, r, err)
			return
		}
		http.SetCookie(w, d.cookie(r, id, exp, int(time.Until(exp).Seconds())))
		w.WriteHeader(http.StatusNoContent)
	})
}

func (d *Dashboard) cookie(r *http.Request, value string, exp time.Time, maxAge int) *http.Cookie {
	return &http.Cookie{ //nolint:gosec // G124: HttpOnly and SameSite=Strict always; Secure over TLS or when the operator says a proxy terminates it
		Name: DashboardCookie, Value: value, Path: d.Prefix, Expires: exp, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil || d.SecureCookies, SameSite: http.SameSiteStrictMode,
	}
}

// OperatorOnly lets through only instance operators, authenticated by the
// Authorization header or by the session cookie. A state-changing request
// (any method but GET, HEAD and OPTIONS) must come from the dashboard's
// own origin: the River UI sends no CSRF token, so its Origin header is the
// defence against another site making the operator's browser post to it.
func OperatorOnly(d *Dashboard, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.FromContext(r.Context())
		var (
			p   access.Principal
			err error
		)
		switch c, cerr := r.Cookie(DashboardCookie); {
		case info.Bearer != "":
			p, err = d.Authenticate(r.Context(), info.Bearer)
		case cerr == nil && c.Value != "":
			p, err = d.AuthenticateSession(r.Context(), c.Value)
		default:
			WriteError(w, http.StatusUnauthorized, apperr.Unauthenticated, "authentication required", info.ID)
			return
		}
		if err != nil {
			d.fail(w, r, err)
			return
		}
		if !d.sameOrigin(r, info.Bearer != "") {
			WriteError(w, http.StatusForbidden, apperr.Forbidden, "cross-origin request refused", info.ID)
			return
		}
		ctx := access.NewContext(r.Context(), p)
		ok, err := d.Operator(ctx)
		if err != nil {
			d.fail(w, r, err)
			return
		}
		if !ok {
			WriteError(w, http.StatusForbidden, apperr.Forbidden, "the job dashboard is for instance operators", info.ID)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// sameOrigin reports whether a request may change state: safe methods
// always may; others must carry an Origin header naming this dashboard
// (scheme and host), except requests authenticated by an Authorization
// header without one, which no other site can make a browser send.
func (d *Dashboard) sameOrigin(r *http.Request, byHeader bool) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return byHeader
	}
	scheme := "http"
	if r.TLS != nil || d.SecureCookies {
		scheme = "https"
	}
	return strings.EqualFold(origin, scheme+"://"+r.Host)
}

// fail answers an error from a domain function: its code when it is an
// apperr.Error meant for the client, INTERNAL with the request id otherwise.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	id := request.FromContext(r.Context()).ID
	if ae, ok := apperr.As(err); ok {
		switch ae.Code {
		case apperr.Unauthenticated:
			WriteError(w, http.StatusUnauthorized, ae.Code, ae.Message, id)
			return
		case apperr.Forbidden:
			WriteError(w, http.StatusForbidden, ae.Code, ae.Message, id)
			return
		}
	}
	d.Log.ErrorContext(r.Context(), "job dashboard", "err", err, "request_id", id)
	WriteError(w, http.StatusInternalServerError, apperr.Internal, "internal error (request "+id+")", id)
}
