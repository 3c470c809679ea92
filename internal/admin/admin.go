// Package admin is the admin HTTP listener: /metrics (Prometheus), /healthz (the
// process is alive), /readyz (the stream is up and every source is accepting) and
// the routes mounted with Handle (the DLQ API, which reads raw evidence and replays
// it).
//
// Access, decided per request before any handler runs:
//
//   - /healthz is always open, so that liveness probes need no secret; it says "ok"
//     and nothing else.
//   - The mounted routes need `Authorization: Bearer <admin.token>` whenever a token
//     is set; /metrics and /readyz need it too when the address is not loopback.
//     Start refuses a non-loopback address without a token.
//   - Without a token (loopback only), a request must name the listener by an IP
//     address or "localhost": a web page that rebinds its own host name to 127.0.0.1
//     would otherwise be same-origin with the listener and could read dead letters.
//   - A mutating request (POST, PUT, DELETE, PATCH) sent by a browser from another
//     origin (Sec-Fetch-Site other than same-origin, or an Origin that is not this
//     host) is refused, and one that a plain HTML form could send (no RequestHeader,
//     and no Content-Type or a form or text/plain one) is refused too, so that no
//     web page can trigger a replay.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-sec/vigil/internal/config"
)

// RequestHeader marks a request as sent by a program rather than a web form; a
// mutating request needs it unless its Content-Type is one a form cannot send
// (such as application/json). Any value will do.
const RequestHeader = "X-Vigil-Request"

// Readiness reports whether the node is ready and, if not, why.
type Readiness func() (bool, string)

// Server is the admin listener.
type Server struct {
	cfg   config.Admin
	reg   *prometheus.Registry
	ready Readiness
	log   *slog.Logger
	// tokenSum is the SHA-256 of cfg.Token: comparing digests takes the same time
	// whatever the length of the token presented.
	tokenSum [sha256.Size]byte

	// routes are extra handlers (the DLQ API) mounted at Start.
	routes []route

	srv *http.Server
	ln  net.Listener
	wg  sync.WaitGroup
}

type route struct {
	pattern string
	h       http.Handler
}

// Handle mounts h on pattern (a net/http ServeMux pattern such as
// "GET /v1/dlq/summary") when the server starts, behind the bearer token when one
// is set; call it before Start.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.routes = append(s.routes, route{pattern, h})
}

// New returns an admin server for cfg (admin.address and admin.token).
func New(cfg config.Admin, reg *prometheus.Registry, ready Readiness, log *slog.Logger) *Server {
	return &Server{cfg: cfg, reg: reg, ready: ready, log: log, tokenSum: sha256.Sum256([]byte(cfg.Token))}
}

// Addr is the bound address (after Start).
func (s *Server) Addr() string {
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.cfg.Address
}

// Start binds the listener and serves in the background until Stop. It refuses an
// address other machines can reach when no token is set.
func (s *Server) Start() error {
	host, _, err := net.SplitHostPort(s.cfg.Address)
	if err != nil {
		return fmt.Errorf("admin: address: %w", err)
	}
	public := !config.IsLoopback(host)
	if public && s.cfg.Token == "" {
		return fmt.Errorf("admin: %s is reachable from other machines but admin.token is not set", s.cfg.Address)
	}
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", s.authorize(public, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))
	mux.Handle("GET /readyz", s.authorize(public, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, why := s.ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(why + "\n"))
	})))
	for _, r := range s.routes {
		h := r.h
		mux.Handle(r.pattern, s.authorize(true, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			// Dead letters are evidence: no cache keeps a copy.
			w.Header().Set("Cache-Control", "no-store")
			h.ServeHTTP(w, req)
		})))
	}
	s.srv = &http.Server{Handler: s.guard(mux), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}
	s.wg.Go(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "err", err)
		}
	})
	return nil
}

// guard applies the checks every request passes, whatever its route.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if s.cfg.Token == "" && !localHost(r.Host) {
			writeError(w, http.StatusForbidden, "this admin listener has no admin.token, so it only answers requests "+
				"addressed to an IP address or localhost; set admin.token to reach it by another name")
			return
		}
		if !safeMethod(r.Method) {
			if crossOrigin(r) {
				writeError(w, http.StatusForbidden, "cross-origin request refused")
				return
			}
			if formable(r) {
				writeError(w, http.StatusForbidden, "a mutating request needs the "+RequestHeader+
					" header or a Content-Type such as application/json (a web form can send neither)")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authorize requires the bearer token on h when required and a token is set.
func (s *Server) authorize(required bool, h http.Handler) http.Handler {
	if !required || s.cfg.Token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.validToken(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (admin.token)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// validToken reports, in time independent of the token's content and length,
// whether an Authorization header carries the configured bearer token.
func (s *Server) validToken(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// localHost reports whether a Host header names this machine the way no other site
// can: an IP address or localhost.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// crossOrigin reports whether a browser sent the request from a page of another
// origin. Programs send neither header.
func crossOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site != "same-origin"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		return err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host)
	}
	return false
}

// formable reports whether a plain HTML form, which browsers send cross-site without
// asking, could have sent the request.
func formable(r *http.Request) bool {
	if r.Header.Get(RequestHeader) != "" {
		return false
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Stop closes the listener. Idempotent and safe without Start.
func (s *Server) Stop(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	return err
}
