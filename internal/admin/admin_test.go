package admin

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/vigil-sec/vigil/internal/config"
)

const token = "0123456789abcdef-admin"

// start runs an admin server on cfg with two routes standing in for the DLQ API,
// and returns its base URL as a client on this machine reaches it.
func start(t *testing.T, cfg config.Admin) string {
	t.Helper()
	s := New(cfg, prometheus.NewRegistry(), func() (bool, string) { return true, "ready" },
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("letters\n")) })
	s.Handle("GET /v1/dlq/entries", ok)
	s.Handle("POST /v1/dlq/replay", ok)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	_, port, _ := net.SplitHostPort(s.Addr())
	return "http://127.0.0.1:" + port
}

type request struct {
	method, path string
	header       map[string]string
	host         string
}

func do(t *testing.T, base string, r request) (int, string) {
	t.Helper()
	req, err := http.NewRequest(r.method, base+r.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.host != "" {
		req.Host = r.host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAccess(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	bearer := map[string]string{"Authorization": "Bearer " + token}
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	type check struct {
		name string
		req  request
		want int
	}
	tests := []struct {
		name   string
		cfg    config.Admin
		checks []check
	}{
		{"loopback with token", config.Admin{Address: "127.0.0.1:0", Token: token}, []check{
			{"healthz open", request{method: "GET", path: "/healthz"}, 200},
			{"metrics open on loopback", request{method: "GET", path: "/metrics"}, 200},
			{"readyz open on loopback", request{method: "GET", path: "/readyz"}, 200},
			{"dlq without token", request{method: "GET", path: "/v1/dlq/entries"}, 401},
			{"dlq with wrong token", request{method: "GET", path: "/v1/dlq/entries", header: map[string]string{"Authorization": "Bearer " + token + "x"}}, 401},
			{"dlq with a prefix of the token", request{method: "GET", path: "/v1/dlq/entries", header: map[string]string{"Authorization": "Bearer " + token[:8]}}, 401},
			{"dlq with basic auth", request{method: "GET", path: "/v1/dlq/entries", header: map[string]string{"Authorization": "Basic " + token}}, 401},
			{"dlq with token", request{method: "GET", path: "/v1/dlq/entries", header: bearer}, 200},
			{"scheme in any case", request{method: "GET", path: "/v1/dlq/entries", header: map[string]string{"Authorization": "bearer " + token}}, 200},
			{"any host name with a token", request{method: "GET", path: "/v1/dlq/entries", header: bearer, host: "vigil.example"}, 200},
			{"replay without token", request{method: "POST", path: "/v1/dlq/replay", header: map[string]string{RequestHeader: "1"}}, 401},
			{"replay as a form could send it", request{method: "POST", path: "/v1/dlq/replay", header: bearer}, 403},
			{"replay as text/plain", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, "Content-Type", "text/plain")}, 403},
			{"replay as a form", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, "Content-Type", "application/x-www-form-urlencoded")}, 403},
			{"replay with the header", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, RequestHeader, "1")}, 200},
			{"replay as JSON", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, "Content-Type", "application/json")}, 200},
			{"replay cross-site", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, RequestHeader, "1", "Sec-Fetch-Site", "cross-site")}, 403},
			{"replay same-site", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, RequestHeader, "1", "Sec-Fetch-Site", "same-site")}, 403},
			{"replay typed in", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, RequestHeader, "1", "Sec-Fetch-Site", "none")}, 403},
			{"replay same-origin", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, RequestHeader, "1", "Sec-Fetch-Site", "same-origin")}, 200},
			{"replay from another origin", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, RequestHeader, "1", "Origin", "https://evil.example")}, 403},
			{"replay from a null origin", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, RequestHeader, "1", "Origin", "null")}, 403},
			{"replay from the same origin", request{method: "POST", path: "/v1/dlq/replay", header: with(bearer, RequestHeader, "1", "Origin", "http://vigil.example"), host: "vigil.example"}, 200},
		}},
		{"every interface", config.Admin{Address: "0.0.0.0:0", Token: token}, []check{
			{"healthz open", request{method: "GET", path: "/healthz"}, 200},
			{"metrics needs the token", request{method: "GET", path: "/metrics"}, 401},
			{"readyz needs the token", request{method: "GET", path: "/readyz"}, 401},
			{"metrics with token", request{method: "GET", path: "/metrics", header: bearer}, 200},
			{"readyz with token", request{method: "GET", path: "/readyz", header: bearer}, 200},
			{"dlq without token", request{method: "GET", path: "/v1/dlq/entries"}, 401},
			{"dlq with token", request{method: "GET", path: "/v1/dlq/entries", header: bearer}, 200},
		}},
		{"loopback without token", config.Admin{Address: "127.0.0.1:0"}, []check{
			{"dlq open", request{method: "GET", path: "/v1/dlq/entries"}, 200},
			{"localhost", request{method: "GET", path: "/v1/dlq/entries", host: "localhost:8686"}, 200},
			{"IPv6", request{method: "GET", path: "/v1/dlq/entries", host: "[::1]:8686"}, 200},
			// A page whose name was rebound to 127.0.0.1 is "same-origin" to the browser.
			{"another host name", request{method: "GET", path: "/v1/dlq/entries", host: "rebound.evil.example:8686"}, 403},
			{"healthz by another name", request{method: "GET", path: "/healthz", host: "rebound.evil.example"}, 403},
			{"replay with the header", request{method: "POST", path: "/v1/dlq/replay", header: map[string]string{RequestHeader: "1"}}, 200},
			{"replay as a form could send it", request{method: "POST", path: "/v1/dlq/replay"}, 403},
			{"replay cross-site", request{method: "POST", path: "/v1/dlq/replay", header: map[string]string{RequestHeader: "1", "Sec-Fetch-Site": "cross-site"}}, 403},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := start(t, tt.cfg)
			for _, c := range tt.checks {
				code, body := do(t, base, c.req)
				if code != c.want {
					t.Errorf("%s: HTTP %d %q, want %d", c.name, code, body, c.want)
				}
				if code == 401 && !strings.Contains(body, `"error":"missing or wrong bearer token (admin.token)"`) {
					t.Errorf("%s: 401 body %q", c.name, body)
				}
			}
		})
	}
}

func TestStartRefusesOpenPublicAddress(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		s := New(config.Admin{Address: addr}, prometheus.NewRegistry(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		err := s.Start()
		if err == nil {
			_ = s.Stop(context.Background())
			t.Errorf("%s: started without a token", addr)
		} else if !strings.Contains(err.Error(), "admin.token is not set") {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

func TestValidToken(t *testing.T) {
	s := New(config.Admin{Token: token}, nil, nil, nil)
	for header, want := range map[string]bool{
		"Bearer " + token:        true,
		"BEARER  " + token + " ": true,
		"Bearer":                 false,
		"Bearer ":                false,
		token:                    false,
		"Bearer " + token + "0":  false,
		"Token " + token:         false,
	} {
		if got := s.validToken(header); got != want {
			t.Errorf("validToken(%q) = %v", header, got)
		}
	}
}
