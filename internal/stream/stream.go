// Package stream is Vigil's durable spine: it starts the embedded NATS server or
// connects to an external cluster, declares the intake, events and dead-letter
// streams, and publishes with acknowledgements, classifying failures so sources can
// answer "full, retry later" or "unavailable" instead of losing data.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/wire"
)

// Stream and subject names.
const (
	IntakeStream = "VIGIL_RAW"
	EventsStream = "VIGIL_EVENTS"
	DLQStream    = "VIGIL_DLQ"
	// AggStream carries the samples of threshold rules from every processing worker
	// to the one aggregator of each rule (see internal/process/threshold).
	AggStream = "VIGIL_AGG"
)

// Limits of the aggregation stream. An aggregator replays it only from its last
// snapshot (taken every few seconds), so an hour is plenty; the byte limit keeps a
// rule whose aggregator is down from filling the disk (oldest samples go first).
const (
	aggMaxAge   = time.Hour
	aggMaxBytes = 1 << 30
)

// Stream is an open connection to the spine with its streams declared.
type Stream struct {
	srv    *server.Server // nil for an external buffer
	nc     *nats.Conn
	js     jetstream.JetStream
	cfg    config.Buffer
	log    *slog.Logger
	epoch  int64 // intake stream identity
	events int64 // events stream identity
	maxPay int

	// stopWatch ends the watchdog of an external connection (see watch).
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// embeddedMaxPayload leaves room for a batch of one large record (a CloudTrail file).
const embeddedMaxPayload = 8 << 20

// Open starts the embedded server under dataDir/stream or connects to the external
// one, then creates or updates the streams (intake, events, dead letters and
// aggregation samples). Close releases everything.
func Open(ctx context.Context, cfg config.Buffer, dataDir string, log *slog.Logger) (*Stream, error) {
	s := &Stream{cfg: cfg, log: log}
	var err error
	switch cfg.Type {
	case "embedded":
		err = s.startEmbedded(filepath.Join(dataDir, "stream"))
	case "nats":
		err = s.connectExternal(ctx)
	default:
		err = fmt.Errorf("buffer type %q", cfg.Type)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	s.maxPay = int(s.nc.MaxPayload())
	if s.js, err = jetstream.New(s.nc, jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout)); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.declare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.srv == nil {
		wctx, cancel := context.WithCancel(context.Background())
		s.stopWatch, s.watchDone = cancel, make(chan struct{})
		go func() { defer close(s.watchDone); s.watch(wctx) }()
	}
	return s, nil
}

func (s *Stream) startEmbedded(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	opts := &server.Options{
		ServerName:         "vigil",
		JetStream:          true,
		StoreDir:           dir,
		NoSigs:             true,
		NoLog:              true,
		DontListen:         true,
		MaxPayload:         embeddedMaxPayload,
		JetStreamMaxMemory: 64 << 20,
		SyncAlways:         s.cfg.Sync == "always",
		SyncInterval:       s.cfg.SyncInterval,
	}
	connOpts := []nats.Option{nats.Name("vigil"), nats.MaxReconnects(-1)}
	if s.cfg.Listen != "" {
		own, err := s.listenOptions(opts)
		if err != nil {
			return err
		}
		connOpts = append(connOpts, own...)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("stream: embedded server: %w", err)
	}
	s.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		return errors.New("stream: embedded server did not become ready in 30s")
	}
	nc, err := nats.Connect("", append(connOpts, nats.InProcessServer(srv))...)
	if err != nil {
		return fmt.Errorf("stream: in-process connection: %w", err)
	}
	s.nc = nc
	return nil
}

// listenOptions sets up buffer.listen on opts: the address, the credentials of
// buffer.listen_auth and the TLS of buffer.listen_tls. It returns the options Vigil's
// own in-process connection needs to pass the same authentication: a user nkey made
// for this run, whose seed never leaves memory. (In-process connections skip TLS.)
func (s *Stream) listenOptions(opts *server.Options) ([]nats.Option, error) {
	host, port, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("buffer.listen: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("buffer.listen: bad port %q", port)
	}
	if p == 0 {
		p = server.RANDOM_PORT // nats-server reads 0 as its default, 4222
	}
	opts.DontListen, opts.Host, opts.Port = false, host, p
	if t := s.cfg.ListenTLS; t.CertFile != "" {
		tc, err := t.TLSConfig()
		if err != nil {
			return nil, fmt.Errorf("buffer.listen_tls.%w", err)
		}
		opts.TLS, opts.TLSConfig, opts.TLSVerify = true, tc, t.ClientCAFile != ""
		opts.TLSTimeout = 5
	}
	a := s.cfg.ListenAuth
	if a.User == "" && a.NKey == "" {
		return nil, nil
	}
	if a.User != "" {
		opts.Users = append(opts.Users, &server.User{Username: a.User, Password: a.Password})
	}
	if a.NKey != "" {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: a.NKey})
	}
	self, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("stream: in-process credentials: %w", err)
	}
	pub, err := self.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("stream: in-process credentials: %w", err)
	}
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pub})
	return []nats.Option{nats.Nkey(pub, self.Sign)}, nil
}

// ListenAddr is the address buffer.listen is bound to (with the port picked when it
// was 0), or "" when the embedded server opens no port or the buffer is external.
func (s *Stream) ListenAddr() string {
	if s.srv == nil || s.cfg.Listen == "" {
		return ""
	}
	if a := s.srv.Addr(); a != nil {
		return a.String()
	}
	return ""
}

// connectWait bounds the wait for the first connection to an external server.
const connectWait = 15 * time.Second

func (s *Stream) connectExternal(ctx context.Context) error {
	// URLs may carry a password or a token (nats://user:pass@host): every log line
	// and error names them redacted.
	servers := strings.Join(config.RedactURLs(s.cfg.URLs), ",")
	opts := []nats.Option{
		nats.Name("vigil"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("stream disconnected", "err", s.scrub(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { s.log.Info("stream reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	if s.cfg.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(s.cfg.CredentialsFile))
	}
	if s.cfg.User != "" {
		opts = append(opts, nats.UserInfo(s.cfg.User, s.cfg.Password))
	}
	if s.cfg.Token != "" {
		opts = append(opts, nats.Token(s.cfg.Token))
	}
	if s.cfg.TLS.Enabled() {
		tc, err := s.cfg.TLS.TLSConfig()
		if err != nil {
			return fmt.Errorf("buffer.%w", err)
		}
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(strings.Join(s.cfg.URLs, ","), opts...)
	if err != nil {
		return fmt.Errorf("stream: connect to %s: %w", servers, s.scrub(err))
	}
	s.nc = nc
	// RetryOnFailedConnect returns at once; wait a bounded time for the first
	// connection so that a wrong URL fails start-up with a clear error.
	deadline := time.Now().Add(connectWait)
	for !nc.IsConnected() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			err := fmt.Errorf("stream: no NATS server reachable at %s within %s", servers, connectWait)
			if ctx.Err() != nil {
				err = fmt.Errorf("stream: no NATS server reachable at %s: %w", servers, ctx.Err())
			}
			if last := nc.LastError(); last != nil {
				err = fmt.Errorf("%w (last error: %w)", err, s.scrub(last))
			}
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.log.Info("stream connected", "url", nc.ConnectedUrlRedacted(), "servers", servers)
	return nil
}

// scrub hides the URLs' passwords and tokens in an error nats.go wrote, such as a
// parse error quoting the URL; the error chain stays for errors.Is.
func (s *Stream) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	scrubbed := msg
	for _, raw := range s.cfg.URLs {
		for _, secret := range config.URLSecrets(raw) {
			scrubbed = strings.ReplaceAll(scrubbed, secret, "xxxxx")
		}
	}
	if scrubbed == msg {
		return err
	}
	return &scrubbedError{msg: scrubbed, err: err}
}

// scrubbedError is an error whose message had secrets removed.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func (s *Stream) declare(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	storage := jetstream.FileStorage
	specs := []jetstream.StreamConfig{
		{
			Name:        IntakeStream,
			Description: "Vigil intake: raw record batches as sources stored them",
			Subjects:    []string{wire.IntakeSubjects},
			Retention:   jetstream.LimitsPolicy,
			// Refuse new data when full rather than discard what is not yet processed;
			// the processing stage reclaims processed messages (see Reclaim).
			Discard:    jetstream.DiscardNew,
			MaxAge:     s.cfg.Intake.MaxAge,
			MaxBytes:   int64(s.cfg.Intake.MaxBytes),
			Duplicates: s.cfg.DuplicateWindow,
		},
		{
			Name:        EventsStream,
			Description: "Vigil events: ECS JSON event batches by dataset, one durable consumer per sink",
			Subjects:    []string{wire.EventsSubjects},
			Retention:   jetstream.LimitsPolicy,
			// A dead sink must not stop the others: the oldest events age out, and
			// each sink's lag and time left are on /metrics.
			Discard:    jetstream.DiscardOld,
			MaxAge:     s.cfg.Events.MaxAge,
			MaxBytes:   int64(s.cfg.Events.MaxBytes),
			Duplicates: s.cfg.DuplicateWindow,
		},
		{
			Name:        DLQStream,
			Description: "Vigil dead letters: records a stage rejected, with stage, reason and original bytes",
			Subjects:    []string{wire.DLQSubjects},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxAge:      s.cfg.DLQ.MaxAge,
			MaxBytes:    int64(s.cfg.DLQ.MaxBytes),
			Duplicates:  s.cfg.DuplicateWindow,
		},
		{
			Name:        AggStream,
			Description: "Vigil aggregation samples: what threshold rules aggregate, for each rule's aggregator",
			Subjects:    []string{wire.AggSubjects},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      aggMaxAge,
			MaxBytes:    aggMaxBytes,
			Duplicates:  s.cfg.DuplicateWindow,
		},
	}
	for _, spec := range specs {
		spec.Storage = storage
		spec.Replicas = max(1, s.cfg.Replicas)
		st, err := s.js.CreateOrUpdateStream(ctx, spec)
		if err != nil {
			return fmt.Errorf("stream: declare %s: %w", spec.Name, err)
		}
		switch spec.Name {
		case IntakeStream:
			s.epoch = st.CachedInfo().Created.UnixNano()
		case EventsStream:
			s.events = st.CachedInfo().Created.UnixNano()
		}
	}
	return nil
}

// JetStream returns the JetStream handle.
func (s *Stream) JetStream() jetstream.JetStream { return s.js }

// Conn returns the NATS connection.
func (s *Stream) Conn() *nats.Conn { return s.nc }

// Epoch identifies the intake stream's lifetime (its creation time); event IDs derive
// from it so that a recreated stream never reuses old IDs.
func (s *Stream) Epoch() int64 { return s.epoch }

// EventsEpoch identifies the events stream's lifetime (its creation time, Unix
// nanoseconds). Events stream sequences are unique only within one lifetime: a
// recreated stream (its folder wiped, `nats stream rm`, a new cluster) numbers from
// 1 again, so whatever remembers or names batches by sequence binds them to this.
func (s *Stream) EventsEpoch() int64 { return s.events }

// Replicas is the replica count of Vigil's streams (1 unless buffer.replicas says
// more); buckets that must survive a server's loss use it too.
func (s *Stream) Replicas() int { return max(1, s.cfg.Replicas) }

// PublishTimeout is how long a writer waits for an acknowledgement.
func (s *Stream) PublishTimeout() time.Duration { return s.cfg.PublishTimeout }

// MaxPayload is the largest message the server accepts.
func (s *Stream) MaxPayload() int { return s.maxPay }

// Embedded reports whether the server runs in this process.
func (s *Stream) Embedded() bool { return s.srv != nil }

// Ready reports whether the connection is up.
func (s *Stream) Ready() bool { return s.nc != nil && s.nc.IsConnected() }

// Publish stores one message and waits for JetStream's acknowledgement. msgID, when
// set, lets the stream drop a re-publish of the same message within the duplicate
// window. The error is component.ErrFull, component.ErrUnavailable or component.ErrTooLarge wrapped with detail.
func (s *Stream) Publish(ctx context.Context, msg *nats.Msg, msgID string) (*jetstream.PubAck, error) {
	if len(msg.Data) > s.maxPay-4096 {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", component.ErrTooLarge, len(msg.Data), s.maxPay)
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := s.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return nil, wire.Classify(err)
	}
	return ack, nil
}

// PublishAsync starts a publish and returns its future; wire.Classify the error it
// ends in.
func (s *Stream) PublishAsync(msg *nats.Msg, msgID string) (jetstream.PubAckFuture, error) {
	if len(msg.Data) > s.maxPay-4096 {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", component.ErrTooLarge, len(msg.Data), s.maxPay)
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	f, err := s.js.PublishMsgAsync(msg, opts...)
	if err != nil {
		return nil, wire.Classify(err)
	}
	return f, nil
}

// DeclareConsumer creates or updates a durable consumer of the named stream.
//
// On a node that is the only client of its embedded server (no buffer.listen),
// messages the consumer had handed out before a crash can be acknowledged by
// nobody: rather than wait ack_wait for them, DeclareConsumer has the server hand
// them out again at once, by lowering the consumer's ack_wait for a moment. It
// costs about a second, and only at a start that follows a crash.
func (s *Stream) DeclareConsumer(ctx context.Context, name string, cc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cons, err := s.js.CreateOrUpdateConsumer(ctx, name, cc)
	if err != nil || s.srv == nil || s.cfg.Listen != "" || cc.AckWait <= orphanAckWait {
		return cons, err
	}
	info, err := cons.Info(ctx)
	if err != nil || info.NumAckPending == 0 {
		return cons, nil
	}
	short := cc
	short.AckWait = orphanAckWait
	if _, err := s.js.UpdateConsumer(ctx, name, short); err != nil {
		s.log.Warn("stream: could not hand out a crashed run's messages at once; they come back after ack_wait",
			"consumer", cc.Durable, "err", err)
		return cons, nil
	}
	// The server checks pending messages against the new ack_wait shortly after the
	// update; give it that, then restore the configured ack_wait.
	t := time.NewTimer(orphanAckWait + 500*time.Millisecond)
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	t.Stop()
	s.log.Info("stream: messages a crashed run had taken are handed out again", "consumer", cc.Durable, "messages", info.NumAckPending)
	return s.js.CreateOrUpdateConsumer(ctx, name, cc)
}

// orphanAckWait is the ack_wait DeclareConsumer sets for a moment.
const orphanAckWait = time.Second

// Close drains the connection and shuts the embedded server down. Safe to call more
// than once and on a partly opened Stream.
func (s *Stream) Close() {
	if s.stopWatch != nil {
		s.stopWatch()
		<-s.watchDone
		s.stopWatch = nil
	}
	if s.nc != nil {
		_ = s.nc.Drain()
		deadline := time.Now().Add(5 * time.Second)
		for !s.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		s.nc.Close()
		s.nc = nil
	}
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Usage is a stream's bytes and messages used against its limit.
type Usage struct {
	Name     string
	Bytes    uint64
	Msgs     uint64
	MaxBytes int64
	FirstSeq uint64
	LastSeq  uint64
	FirstAt  time.Time
	MaxAge   time.Duration
}

// Usages returns the state of the streams: intake, events, dead letters and
// aggregation samples, in that order.
func (s *Stream) Usages(ctx context.Context) ([]Usage, error) {
	var out []Usage
	for _, name := range []string{IntakeStream, EventsStream, DLQStream, AggStream} {
		st, err := s.js.Stream(ctx, name)
		if err != nil {
			return out, err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, Usage{
			Name: name, Bytes: info.State.Bytes, Msgs: info.State.Msgs, MaxBytes: info.Config.MaxBytes,
			FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, FirstAt: info.State.FirstTime,
			MaxAge: info.Config.MaxAge,
		})
	}
	return out, nil
}
