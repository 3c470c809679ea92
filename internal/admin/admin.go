// Package admin is the admin HTTP listener: /metrics (Prometheus), /healthz (the
// process is alive) and /readyz (the stream is up and every source is accepting).
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness reports whether the node is ready and, if not, why.
type Readiness func() (bool, string)

// Server is the admin listener.
type Server struct {
	addr  string
	reg   *prometheus.Registry
	ready Readiness
	log   *slog.Logger

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
// "GET /v1/dlq/summary") when the server starts; call it before Start.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.routes = append(s.routes, route{pattern, h})
}

// New returns an admin server for addr.
func New(addr string, reg *prometheus.Registry, ready Readiness, log *slog.Logger) *Server {
	return &Server{addr: addr, reg: reg, ready: ready, log: log}
}

// Addr is the bound address (after Start).
func (s *Server) Addr() string {
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// Start binds the listener and serves in the background until Stop.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.ln = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, why := s.ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(why + "\n"))
	})
	for _, r := range s.routes {
		mux.Handle(r.pattern, r.h)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Go(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "err", err)
		}
	})
	return nil
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
