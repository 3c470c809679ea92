package syslogsource

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
)

// handshakeTimeout bounds a TLS handshake (or idle_timeout when shorter), so that a
// client that connects and says nothing does not hold a connection slot for long.
const handshakeTimeout = 30 * time.Second

// Source is the syslog source.
type Source struct {
	cfg      Config
	name     string
	intake   component.Intake
	unitID   func() string // nil: batches go unnamed (component.SourceDeps.UnitID)
	log      *slog.Logger
	counters *component.Counters
	limited  rateLimit

	tlsConf *tls.Config
	tcpLn   net.Listener
	udpConn *net.UDPConn

	// runCtx is the context of every Store; Stop cancels it when its deadline passes,
	// which ends the retries of connections that still hold messages.
	runCtx    context.Context
	cancelRun context.CancelFunc
	done      chan struct{} // closed by Stop, ends waits in the accept loop

	// mu guards conns and orders closing against read deadlines (see readDeadline).
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closing  atomic.Bool
	started  bool
	stopOnce sync.Once
	wg       sync.WaitGroup
}

var _ component.Source = (*Source)(nil)

// New returns a syslog source.
func New(cfg *Config, deps component.SourceDeps) *Source {
	return &Source{cfg: *cfg, name: deps.Name, intake: deps.Intake, unitID: deps.UnitID, log: deps.Log,
		counters: deps.Metrics.For("source", deps.Name), conns: map[net.Conn]struct{}{},
		done: make(chan struct{})}
}

// Describe implements component.Source.
func (s *Source) Describe() string {
	var parts []string
	if s.cfg.TCP != "" {
		scheme := "tcp"
		if s.cfg.TLS.CertFile != "" {
			scheme = "tls"
		}
		parts = append(parts, scheme+"://"+s.TCPAddr())
	}
	if s.cfg.UDP != "" {
		parts = append(parts, "udp://"+s.UDPAddr())
	}
	return fmt.Sprintf("%s on %s", s.name, strings.Join(parts, " and "))
}

// TCPAddr is the TCP (or TLS) listener's address, with the real port when configured
// with port 0.
func (s *Source) TCPAddr() string {
	if s.tcpLn != nil {
		return s.tcpLn.Addr().String()
	}
	return s.cfg.TCP
}

// UDPAddr is the UDP listener's address, with the real port when configured with 0.
func (s *Source) UDPAddr() string {
	if s.udpConn != nil {
		return s.udpConn.LocalAddr().String()
	}
	return s.cfg.UDP
}

// Ready implements component.Source.
func (s *Source) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started && !s.closing.Load()
}

// Start implements component.Source: it binds the listeners and returns.
func (s *Source) Start(context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closing.Load() {
		return fmt.Errorf("syslog source %s: already started or stopped", s.name)
	}
	defer func() {
		if err != nil {
			s.closeListeners()
		}
	}()
	if s.cfg.TLS.CertFile != "" {
		if s.tlsConf, err = s.cfg.TLS.TLSConfig(); err != nil {
			return fmt.Errorf("syslog source %s: %w", s.name, err)
		}
	}
	if s.cfg.TCP != "" {
		if s.tcpLn, err = net.Listen("tcp", s.cfg.TCP); err != nil {
			return fmt.Errorf("syslog source %s: tcp: %w", s.name, err)
		}
	}
	if s.cfg.UDP != "" {
		addr, err := net.ResolveUDPAddr("udp", s.cfg.UDP)
		if err != nil {
			return fmt.Errorf("syslog source %s: udp: %w", s.name, err)
		}
		if s.udpConn, err = net.ListenUDP("udp", addr); err != nil {
			return fmt.Errorf("syslog source %s: udp: %w", s.name, err)
		}
		if s.cfg.UDPReadBuffer > 0 {
			if err := s.udpConn.SetReadBuffer(int(s.cfg.UDPReadBuffer)); err != nil {
				s.log.Warn("syslog source: could not set the UDP receive buffer; using the system default",
					"udp_read_buffer", int64(s.cfg.UDPReadBuffer), "err", err)
			}
		}
	}
	s.runCtx, s.cancelRun = context.WithCancel(context.Background())
	s.started = true
	if s.tcpLn != nil {
		s.wg.Go(s.acceptLoop)
	}
	if s.udpConn != nil {
		s.wg.Go(s.udpLoop)
	}
	return nil
}

func (s *Source) closeListeners() {
	if s.tcpLn != nil {
		_ = s.tcpLn.Close()
	}
	if s.udpConn != nil {
		_ = s.udpConn.Close()
	}
}

// Stop implements component.Source: it stops accepting and reading, stores what was
// already framed (retrying until ctx's deadline), and closes every connection.
// Bytes of a message only partly received are dropped and counted (shutdown_partial).
func (s *Source) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.closing.Store(true)
		now := time.Now()
		for c := range s.conns {
			_ = c.SetReadDeadline(now)
		}
		s.mu.Unlock()
		close(s.done)
		s.closeListeners()
	})
	if s.cancelRun == nil {
		return nil
	}
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		// Past the deadline: abandon the retries; what they held is counted as
		// discarded (reason shutdown) by the connections themselves.
		s.cancelRun()
		<-finished
		return fmt.Errorf("syslog source %s: stopped before every read message was stored: %w", s.name, ctx.Err())
	}
}

func (s *Source) acceptLoop() {
	backoff := 5 * time.Millisecond
	for {
		c, err := s.tcpLn.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and try again.
			s.counters.Error("accept")
			s.limited.warn(s.log, "syslog source: accept failed; retrying", "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !s.track(c) {
			_ = c.Close()
			continue
		}
		s.wg.Go(func() { s.serveConn(c) })
	}
}

// track registers a connection, or refuses it when closing or at max_connections.
func (s *Source) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if len(s.conns) >= s.cfg.MaxConnections {
		s.counters.Error("too_many_connections")
		s.limited.warn(s.log, "syslog source: max_connections reached; closing a new connection",
			"max_connections", s.cfg.MaxConnections, "remote", c.RemoteAddr().String())
		return false
	}
	s.conns[c] = struct{}{}
	s.counters.Connections().Inc()
	return true
}

func (s *Source) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.counters.Connections().Dec()
}

// readDeadline sets the connection's read deadline unless the source is closing.
// Holding mu orders it against Stop, which sets every deadline to now under mu: a
// deadline set here can never undo Stop's.
func (s *Source) readDeadline(c net.Conn, t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	_ = c.SetReadDeadline(t)
	return true
}

// serveConn reads one TCP connection: read, frame, batch, store. While a batch is not
// stored the connection is not read, so the sender blocks once its window is full.
func (s *Source) serveConn(raw net.Conn) {
	defer func() {
		// A bug on one connection closes that connection (its sender reconnects and
		// resends what it did not get written), never the node.
		if r := recover(); r != nil {
			s.counters.Error("panic")
			s.log.Error("syslog source: a connection failed on a bug; closing it", "remote", raw.RemoteAddr().String(), "panic", r)
		}
	}()
	defer s.untrack(raw)
	defer raw.Close()
	remote := raw.RemoteAddr().String()
	var conn net.Conn = raw
	if s.tlsConf != nil {
		tc := tls.Server(raw, s.tlsConf)
		if !s.readDeadline(raw, time.Now().Add(min(s.cfg.IdleTimeout, handshakeTimeout))) {
			return
		}
		if err := tc.HandshakeContext(s.runCtx); err != nil {
			s.counters.Error("tls_handshake")
			s.limited.warn(s.log, "syslog source: TLS handshake failed", "remote", remote, "err", err)
			return
		}
		conn = tc
	}
	s.log.Debug("syslog connection opened", "remote", remote)
	f := NewFramer(int(s.cfg.MaxMessageBytes))
	var b batch
	for {
		for {
			fr, ok := f.Next()
			if !ok {
				break
			}
			s.take(&b, fr, remote)
			if b.len() >= s.cfg.BatchMaxRecords || !b.fits(int(s.cfg.MaxMessageBytes)) {
				if s.storeRetrying(s.runCtx, &b, "tcp") != nil {
					return
				}
			}
		}
		if f.eof || s.closing.Load() {
			break
		}
		deadline := time.Now().Add(s.cfg.IdleTimeout)
		if !b.empty() {
			deadline = b.first.Add(s.cfg.BatchMaxWait)
		}
		if !s.readDeadline(raw, deadline) {
			break
		}
		n, err := f.Fill(conn)
		if n > 0 {
			s.counters.Received(0, n)
		}
		switch {
		case err == nil || err == io.EOF:
		case isTimeout(err) && s.closing.Load():
		case isTimeout(err) && !b.empty():
			if s.storeRetrying(s.runCtx, &b, "tcp") != nil {
				return
			}
		case isTimeout(err):
			s.log.Debug("syslog connection idle; closing", "remote", remote, "idle_timeout", s.cfg.IdleTimeout)
			f.End()
		default:
			// Reset by the peer and the like: keep what was received.
			s.log.Debug("syslog connection read failed", "remote", remote, "err", err)
			f.End()
		}
	}
	if !f.eof && f.Buffered() > 0 {
		s.counters.Discarded("shutdown_partial", 1)
	}
	if !b.empty() {
		_ = s.storeRetrying(s.runCtx, &b, "tcp")
	}
	s.log.Debug("syslog connection closed", "remote", remote)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// take adds a framed message to the batch, or a dead letter for an oversized or
// incomplete one.
func (s *Source) take(b *batch, fr Frame, remote string) {
	s.counters.Received(1, 0)
	now := time.Now()
	var reason string
	switch {
	case fr.Oversized && fr.Size < 0:
		reason = fmt.Sprintf("syslog message from %s longer than max_message_bytes (%d); the first %d bytes are kept here and the rest was skipped",
			remote, s.cfg.MaxMessageBytes, len(fr.Msg))
	case fr.Oversized:
		reason = fmt.Sprintf("syslog message from %s of %d bytes is over max_message_bytes (%d); the first %d bytes are kept here and the rest was skipped",
			remote, fr.Size, s.cfg.MaxMessageBytes, len(fr.Msg))
	case fr.Incomplete:
		reason = fmt.Sprintf("connection from %s ended %d bytes into an octet-counted message of %d bytes", remote, len(fr.Msg), fr.Size)
	default:
		b.add(fr.Msg, now)
		return
	}
	if fr.Oversized {
		s.counters.Error("too_large")
	} else {
		s.counters.Error("incomplete")
	}
	b.addLetter(component.Letter{Stage: "intake", Reason: reason, Time: now, Original: fr.Msg}, now)
}

// udpLoop reads datagrams, one message each, and stores them in batches. UDP cannot
// push back: a batch the stream does not take is counted and dropped.
func (s *Source) udpLoop() {
	maxMsg := int(s.cfg.MaxMessageBytes)
	// One byte more than the limit tells an oversized datagram from one of exactly
	// max_message_bytes.
	buf := make([]byte, maxMsg+1)
	var b batch
	flush := func() {
		if b.empty() {
			return
		}
		if err := s.storeOnce(s.runCtx, &b); err != nil {
			n := b.len() + len(b.letters)
			s.counters.Discarded("udp_stream_unavailable", n)
			s.limited.warn(s.log, "syslog source: intake stream did not take UDP messages; they are dropped (UDP cannot push back)",
				"messages", n, "err", err)
		}
		b.reset()
	}
	defer flush()
	errBackoff := time.Millisecond
	for {
		var deadline time.Time // none while nothing waits to be stored
		if !b.empty() {
			deadline = b.first.Add(s.cfg.BatchMaxWait)
		}
		_ = s.udpConn.SetReadDeadline(deadline)
		n, from, err := s.udpConn.ReadFromUDPAddrPort(buf)
		if err != nil {
			switch {
			case s.closing.Load() || errors.Is(err, net.ErrClosed):
				return
			case isTimeout(err):
				flush()
			default:
				s.counters.Error("udp_read")
				s.limited.warn(s.log, "syslog source: UDP read failed", "err", err)
				t := time.NewTimer(errBackoff)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
					return
				}
				errBackoff = min(errBackoff*2, time.Second)
			}
			continue
		}
		errBackoff = time.Millisecond
		s.counters.Received(0, n)
		now := time.Now()
		if n > maxMsg {
			s.counters.Received(1, 0)
			s.counters.Error("too_large")
			b.addLetter(component.Letter{Stage: "intake", Time: now, Original: buf[:maxMsg],
				Reason: fmt.Sprintf("syslog datagram from %s is over max_message_bytes (%d); the first %d bytes are kept here", from, maxMsg, maxMsg)}, now)
		} else if msg := trimDatagram(buf[:n]); len(msg) > 0 {
			s.counters.Received(1, 0)
			b.add(msg, now)
		}
		if b.len() >= s.cfg.BatchMaxRecords || !b.fits(maxMsg) || s.cfg.BatchMaxWait == 0 {
			flush()
		}
	}
}

// trimDatagram drops the line ends and NUL some senders append to a datagram.
func trimDatagram(p []byte) []byte {
	for len(p) > 0 {
		switch p[len(p)-1] {
		case '\n', '\r', 0:
			p = p[:len(p)-1]
			continue
		}
		break
	}
	return p
}

// rateLimit lets a repeated warning through at most every 10 seconds, so that a
// stream outage or a flood of bad connections cannot flood the log.
type rateLimit struct{ last atomic.Int64 }

func (r *rateLimit) warn(log *slog.Logger, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := r.last.Load()
	if last != 0 && now-last < int64(10*time.Second) {
		return
	}
	if r.last.CompareAndSwap(last, now) {
		log.Warn(msg, args...)
	}
}
