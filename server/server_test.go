package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rampartmail/rampart/internal/request"
	"github.com/rampartmail/rampart/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs the server on loopback with a GraphQL stand-in and an upload
// route that both answer the client address the middleware recorded.
func start(t *testing.T, proxies string) string {
	t.Helper()
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprint(w, request.FromContext(r.Context()).Client)
	})
	srv := server.New(server.Config{Addr: "127.0.0.1:0", TrustedProxies: request.MustParseProxies(proxies)},
		echo, nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), server.Route{Pattern: "POST /upload", Handler: echo})
	require.NoError(t, srv.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + srv.Addr()
}

// clientFrom posts to url from the loopback address local with the given
// X-Forwarded-For lines and returns the client address the server saw.
func clientFrom(t *testing.T, local, url string, xff ...string) string {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	require.NoError(t, err)
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

func TestClientAddressFromTrustedProxiesOnly(t *testing.T) {
	t.Parallel()
	base := start(t, "127.0.0.2/32")
	for _, path := range []string{"/graphql", "/upload"} {
		url := base + path
		// Through the trusted proxy: the rightmost untrusted hop, not what
		// the client wrote to the left of it.
		require.Equal(t, "198.51.100.7", clientFrom(t, "127.0.0.2", url, "198.51.100.7"), path)
		require.Equal(t, "198.51.100.7", clientFrom(t, "127.0.0.2", url, "203.0.113.1, 198.51.100.7"), path)
		require.Equal(t, "198.51.100.7", clientFrom(t, "127.0.0.2", url, "203.0.113.1", "198.51.100.7, 127.0.0.2"), path)
		// The trusted proxy without a header is the client.
		require.Equal(t, "127.0.0.2", clientFrom(t, "127.0.0.2", url), path)
		// Any other peer's header is ignored.
		require.Equal(t, "127.0.0.3", clientFrom(t, "127.0.0.3", url, "198.51.100.7"), path)
		require.Equal(t, "127.0.0.3", clientFrom(t, "127.0.0.3", url, "198.51.100.7, 127.0.0.2"), path)
	}
}

func TestClientAddressWithoutTrustedProxies(t *testing.T) {
	t.Parallel()
	base := start(t, "")
	require.Equal(t, "127.0.0.2", clientFrom(t, "127.0.0.2", base+"/graphql", "198.51.100.7"))
}
