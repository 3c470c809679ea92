package stream

import (
	"context"
	"time"
)

// A NATS client stays with its server as long as the TCP connection holds. When that
// server is cut off from the rest of its cluster (a network partition), the
// connection holds but JetStream cannot serve it: every store times out, and the
// node stays stuck until the partition heals. The watchdog asks the server for the
// JetStream account info every watchEvery; a server without a cluster quorum
// answers "cluster not available" (or not at all). After watchAfter of failures it
// makes the client reconnect to another server of the pool, at most once per
// watchMoveEvery.
const (
	watchEvery     = time.Second
	watchAfter     = 3 * time.Second
	watchMoveEvery = 10 * time.Second
)

// watch runs until ctx ends (Close).
func (s *Stream) watch(ctx context.Context) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	var failingSince, moved time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.nc.IsConnected() || len(s.nc.Servers()) < 2 {
			failingSince = time.Time{}
			continue
		}
		c, cancel := context.WithTimeout(ctx, watchEvery)
		_, err := s.js.AccountInfo(c)
		cancel()
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if err == nil {
			failingSince = time.Time{}
			continue
		}
		if failingSince.IsZero() {
			failingSince = now
			continue
		}
		if now.Sub(failingSince) < watchAfter || now.Sub(moved) < watchMoveEvery {
			continue
		}
		s.log.Warn("stream: the NATS server this node is connected to cannot serve JetStream (cut off from its cluster?); moving to another server",
			"server", s.nc.ConnectedServerName(), "url", s.nc.ConnectedUrlRedacted(), "failing_for", now.Sub(failingSince).Round(time.Second), "err", s.scrub(err))
		if err := s.nc.ForceReconnect(); err != nil {
			s.log.Warn("stream: reconnecting failed", "err", s.scrub(err))
		}
		moved, failingSince = now, time.Time{}
	}
}

// ServerName is the name of the NATS server the connection is on now.
func (s *Stream) ServerName() string {
	if s.nc == nil {
		return ""
	}
	return s.nc.ConnectedServerName()
}
