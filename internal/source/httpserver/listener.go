// Package httpserver is what the HTTP intake sources (http, firehose, hec,
// elasticsearch_bulk) share: the listener lifecycle, the server settings they all
// take, and the one mapping from intake errors to HTTP status codes. Each source
// keeps its own protocol: paths, authentication and the bodies of its answers.
package httpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
)

// Listener is the listener lifecycle every HTTP-based source shares: bind (with TLS
// when configured), serve in the background, count open connections, and on Stop
// refuse new work while requests in flight finish with their true outcome. The
// zero value is ready to Start.
type Listener struct {
	srv     *http.Server
	ln      net.Listener
	closing atomic.Bool
	ready   atomic.Bool
	wg      sync.WaitGroup
}

// ListenerConfig is what Start needs.
type ListenerConfig struct {
	// What names the source in errors and logs ("hec source splunk").
	What string
	// Server gives the address, TLS and read timeout.
	Server Config
	// WriteTimeout, when set, bounds writing the answer.
	WriteTimeout time.Duration
	Log          *slog.Logger
	Counters     *component.Counters
}

// Start binds the address and serves h until Stop.
func (l *Listener) Start(c ListenerConfig, h http.Handler) error {
	ln, err := net.Listen("tcp", c.Server.Address)
	if err != nil {
		return fmt.Errorf("%s: %w", c.What, err)
	}
	if c.Server.TLS.Enabled() {
		tc, err := c.Server.TLS.TLSConfig()
		if err != nil {
			ln.Close()
			return fmt.Errorf("%s: %w", c.What, err)
		}
		ln = tls.NewListener(ln, tc)
	}
	l.ln = ln
	l.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       c.Server.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(c.Log.Handler(), slog.LevelWarn),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				c.Counters.Connections().Inc()
			case http.StateClosed, http.StateHijacked:
				c.Counters.Connections().Dec()
			}
		},
	}
	l.ready.Store(true)
	l.wg.Go(func() {
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.ready.Store(false)
			c.Log.Error(c.What+" stopped serving", "err", err)
		}
	})
	return nil
}

// Addr is the bound address (the real port when configured with 0), or configured
// before Start.
func (l *Listener) Addr(configured string) string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return configured
}

// Ready reports whether the listener is serving and not closing.
func (l *Listener) Ready() bool { return l.ready.Load() && !l.closing.Load() }

// Closing reports whether Stop was called: handlers answer 503 then.
func (l *Listener) Closing() bool { return l.closing.Load() }

// StartClosing makes handlers answer 503 from now on while the listener keeps
// serving, so a load balancer sees the node draining before Stop closes it.
func (l *Listener) StartClosing() { l.closing.Store(true) }

// Stop refuses new requests, lets those in flight finish before ctx's deadline, and
// closes the rest. Idempotent and safe without Start.
func (l *Listener) Stop(ctx context.Context) error {
	l.closing.Store(true)
	if l.srv == nil {
		return nil
	}
	err := l.srv.Shutdown(ctx)
	if err != nil {
		_ = l.srv.Close()
	}
	l.wg.Wait()
	l.ready.Store(false)
	return err
}
