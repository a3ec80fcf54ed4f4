package attacktest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/attacktest"
)

// The proxy the tests trust, and a peer they do not; both are loopback
// addresses the tests bind their sockets to.
const (
	proxyAddr     = "127.0.0.2"
	untrustedAddr = "127.0.0.3"
)

const loginMutation = `mutation($e: String!, $p: String!, $k: String) {
	login(email: $e, password: $p, knownClient: $k) { accessToken knownClientToken } }`

// loginFrom posts a login from the loopback address local, with an
// X-Forwarded-For header when xff is set.
func loginFrom(t *testing.T, s *attacktest.Serve, local, xff, email, password, known string) *apitest.Response {
	t.Helper()
	vars := map[string]any{"e": email, "p": password}
	if known != "" {
		vars["k"] = known
	}
	body, err := json.Marshal(map[string]any{"query": loginMutation, "variables": vars})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, s.URL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := &apitest.Response{Status: resp.StatusCode, Raw: string(raw)}
	require.NoError(t, json.Unmarshal(raw, r), "response: %s", raw)
	return r
}

func retryAfter(t *testing.T, r *apitest.Response) time.Duration {
	t.Helper()
	r.RequireCode(t, "RATE_LIMITED")
	secs, ok := r.Errors[0].Extensions["retryAfterSeconds"].(float64)
	require.True(t, ok, "response: %s", r.Raw)
	return time.Duration(secs) * time.Second
}

// TestLoginAttackCannotLockOutTheOwner attacks `rampart serve` behind a
// trusted proxy: attackers at many client addresses guess the owner's
// password. The attackers are slowed with a backoff that stops at its
// ceiling; the owner, from a client that logged in before, still gets in.
// The backoff is configured short (1 s, ceiling 4 s) so that the test can
// wait out the Retry-After the server announces.
func TestLoginAttackCannotLockOutTheOwner(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{Env: map[string]string{
		"RAMPART_TRUSTED_PROXIES":   proxyAddr + "/32",
		"RAMPART_LOGIN_BACKOFF":     "1s",
		"RAMPART_LOGIN_BACKOFF_MAX": "4s",
	}})
	o := s.API.NewOwner(t, "victim")

	// The owner's device logs in once and keeps its known-client token.
	r := loginFrom(t, s, proxyAddr, "198.51.100.10", o.Email, o.Password, "")
	r.NoErrors(t)
	var d struct {
		Login struct{ KnownClientToken string }
	}
	r.Decode(t, &d)
	require.NotEmpty(t, d.Login.KnownClientToken)

	// Ten attackers, two guesses each, every one a distinct client
	// through the proxy: the account's ten free failures. Were the
	// forwarded addresses ignored, the proxy's own address would be one
	// client, slowed after five.
	attacker := 0
	guess := func() *apitest.Response {
		attacker++
		return loginFrom(t, s, proxyAddr, "203.0.113."+strconv.Itoa(attacker/2), o.Email, "wrong guess "+strconv.Itoa(attacker), "")
	}
	for range 10 {
		guess().RequireCode(t, "UNAUTHENTICATED")
	}

	// From now on each guess waits: 1 s, 2 s, 4 s, then the ceiling
	// (less what time passed since the last failure, rounded up).
	// Waiting what the server says is enough: a slowdown, not a lock.
	var waits []time.Duration
	for len(waits) < 4 {
		r := guess()
		if r.Code() == "UNAUTHENTICATED" {
			continue
		}
		w := retryAfter(t, r)
		waits = append(waits, w)
		time.Sleep(w) // the announced Retry-After, configured short
		guess().RequireCode(t, "UNAUTHENTICATED")
	}
	for _, w := range waits {
		require.True(t, w >= time.Second && w <= 4*time.Second, "waits %v", waits)
	}
	require.Greater(t, waits[3], waits[0], "the wait grows: %v", waits)
	require.GreaterOrEqual(t, waits[3], 3*time.Second, "and reaches the ceiling: %v", waits)
	require.LessOrEqual(t, retryAfter(t, guess()), 4*time.Second, "and stays there")

	// While the attack holds the account, an unknown client (the owner on
	// a new device) is slowed too, but the owner's known device gets in,
	// from another address even, and so does the right password alone
	// once the announced wait has passed.
	w := retryAfter(t, loginFrom(t, s, proxyAddr, "198.51.100.20", o.Email, o.Password, ""))
	require.LessOrEqual(t, w, 4*time.Second)
	loginFrom(t, s, proxyAddr, "198.51.100.21", o.Email, o.Password, d.Login.KnownClientToken).NoErrors(t)
	loginFrom(t, s, proxyAddr, "198.51.100.21", o.Email, o.Password, "forged."+d.Login.KnownClientToken).RequireCode(t, "RATE_LIMITED")
}

// TestForwardedForFromUntrustedPeerIgnored: a peer that is not a trusted
// proxy cannot pose as many clients. Its guesses at one address are one
// client's, slowed after five, although each names another address; were
// the header believed, they would be the address's ten free failures.
func TestForwardedForFromUntrustedPeerIgnored(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{Env: map[string]string{
		"RAMPART_TRUSTED_PROXIES": proxyAddr + "/32",
		"RAMPART_LOGIN_BACKOFF":   "1m",
	}})
	o := s.API.NewOwner(t, "victim")
	for i := range 5 {
		loginFrom(t, s, untrustedAddr, "192.0.2."+strconv.Itoa(i+1), o.Email, "wrong guess", "").RequireCode(t, "UNAUTHENTICATED")
	}
	w := retryAfter(t, loginFrom(t, s, untrustedAddr, "192.0.2.99", o.Email, o.Password, ""))
	require.True(t, w > 0 && w <= time.Minute, "%v", w)
	// Through the trusted proxy the same header is a client of its own.
	loginFrom(t, s, proxyAddr, "192.0.2.99", o.Email, o.Password, "").NoErrors(t)
}

// TestSMTPProxyProtocol: the rua mail server behind a trusted proxy gives
// each real client its own limits (one session at a time here), and a PROXY
// header from any other peer is refused.
func TestSMTPProxyProtocol(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{SMTP: true, Env: map[string]string{
		"RAMPART_TRUSTED_PROXIES":      proxyAddr + "/32",
		"RAMPART_SMTP_MAX_CONN_PER_IP": "1",
	}})
	session := func(local string, header []byte) (net.Conn, *bufio.Reader) {
		nc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).Dial("tcp", s.SMTPAddr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = nc.Close() })
		require.NoError(t, nc.SetDeadline(time.Now().Add(20*time.Second)))
		if header != nil {
			_, err = nc.Write(header)
			require.NoError(t, err)
		}
		return nc, bufio.NewReader(nc)
	}
	header := func(version byte, client string) []byte {
		b, err := proxyproto.HeaderProxyFromAddrs(version, &net.TCPAddr{IP: net.ParseIP(client), Port: 40000},
			&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 25}).Format()
		require.NoError(t, err)
		return b
	}
	line := func(r *bufio.Reader) string {
		l, err := r.ReadString('\n')
		require.NoError(t, err)
		return l
	}

	// Two clients through one proxy: a session each. The first client's
	// second session is over its limit.
	_, r := session(proxyAddr, header(1, "198.51.100.7"))
	require.True(t, strings.HasPrefix(line(r), "220 "))
	_, r = session(proxyAddr, header(2, "198.51.100.8"))
	require.True(t, strings.HasPrefix(line(r), "220 "))
	_, r = session(proxyAddr, header(2, "198.51.100.7"))
	require.True(t, strings.HasPrefix(line(r), "421 4.7.0 "))

	// Another peer's header is refused.
	nc, r := session(untrustedAddr, nil)
	require.True(t, strings.HasPrefix(line(r), "220 "))
	_, err := nc.Write(header(1, "198.51.100.9"))
	require.NoError(t, err)
	l := line(r)
	require.True(t, strings.HasPrefix(l, "421 4.7.0 "), l)
	s.WaitLog(t, "SMTP PROXY header from an untrusted peer refused", 10*time.Second)
	_, err = r.ReadString('\n')
	require.ErrorIs(t, err, io.EOF)
}
