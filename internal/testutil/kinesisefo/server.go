// Package kinesisefo is a minimal Kinesis endpoint for testing enhanced fan-out,
// which neither kinesalite nor moto implements (moto registers stream consumers but
// has no SubscribeToShard). It follows AWS's documented protocol: the awsJson 1.1
// API (X-Amz-Target: Kinesis_20131202.<operation>) over HTTPS with HTTP/2 — which
// AWS requires for SubscribeToShard, so a subscription over HTTP/1.1 is refused —
// and SubscribeToShard's response as an application/vnd.amazon.eventstream stream:
// an initial-response event, then SubscribeToShardEvent events, until the
// subscription's lifetime (5 minutes on AWS) ends it or the shard ends (an event
// with ChildShards and no ContinuationSequenceNumber).
//
// It answers DescribeStreamSummary, ListShards, RegisterStreamConsumer,
// DescribeStreamConsumer and SubscribeToShard. Records are put with Put, shards
// split with Split: from Go, not through the API.
//
// The server's certificate is self-signed: CAFile is a PEM file of it, for
// AWS_CA_BUNDLE.
package kinesisefo

import (
	"bytes"
	"crypto/md5"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream/eventstreamapi"
)

// Account is the account in the server's ARNs.
const Account = "123456789012"

// maxHashKey is 2^128 - 1, the top of the partition key hash space.
var maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// Server is the test endpoint. The zero value is not usable: use Start.
type Server struct {
	// Lifetime is how long a subscription lasts before the server ends it (AWS: 5
	// minutes); set before subscribing.
	Lifetime time.Duration
	// ActivateAfter is how long a registered consumer stays CREATING.
	ActivateAfter time.Duration
	// Heartbeat is how often an idle subscription gets an event without records.
	Heartbeat time.Duration
	// MaxPerEvent is the most records one event carries.
	MaxPerEvent int
	// Unlisted keeps the children of a split out of ListShards, as a shard list
	// that lags behind: a reader learns of them only from ChildShards.
	Unlisted bool

	srv    *httptest.Server
	caFile string

	mu            sync.Mutex
	changed       chan struct{} // closed and replaced when records are put or a shard closes
	seq           int64
	streams       map[string]*stream
	consumers     map[string]*consumer // by ARN
	subscriptions int
	// limit is how many SubscribeToShard calls to refuse with LimitExceededException.
	limit int
}

type stream struct {
	name, arn string
	created   time.Time
	shards    []*shard
}

type shard struct {
	id                 string
	parents            []string
	hashStart, hashEnd *big.Int
	startSeq, endSeq   string
	records            []record
	children           []*shard
	// subscribed holds the consumers with an open subscription to the shard.
	subscribed map[string]bool
}

type record struct {
	seq, key string
	data     []byte
	arrival  time.Time
}

type consumer struct {
	name, arn, streamARN string
	created              time.Time
}

// Start starts the server on a loopback port, with HTTP/2 over TLS; it stops when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{Lifetime: 5 * time.Minute, ActivateAfter: 200 * time.Millisecond, Heartbeat: time.Second, MaxPerEvent: 1000,
		changed: make(chan struct{}), streams: map[string]*stream{}, consumers: map[string]*consumer{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.caFile = filepath.Join(t.TempDir(), "kinesisefo-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	if err := os.WriteFile(s.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// Endpoint is the API's base URL (https).
func (s *Server) Endpoint() string { return s.srv.URL }

// CAFile is a PEM file of the server's certificate, for AWS_CA_BUNDLE.
func (s *Server) CAFile() string { return s.caFile }

// Subscriptions counts the SubscribeToShard calls that opened a stream.
func (s *Server) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscriptions
}

// Throttle makes the next n SubscribeToShard calls fail with
// LimitExceededException, as Kinesis answers more than one call per second per
// consumer and shard.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
}

// Consumers returns the names of the registered consumers of a stream.
func (s *Server) Consumers(streamName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if st := s.streams[streamName]; st != nil {
		for _, c := range s.consumers {
			if c.streamARN == st.arn {
				out = append(out, c.name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// nextSeq returns a new sequence number: fixed width, so that the order of the
// strings is the order of the numbers. The caller holds s.mu.
func (s *Server) nextSeq() string {
	s.seq++
	return fmt.Sprintf("49%028d", s.seq)
}

// notify wakes the subscriptions. The caller holds s.mu.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// CreateStream creates an active stream whose shards split the hash key space
// evenly.
func (s *Server) CreateStream(name string, shards int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &stream{name: name, arn: fmt.Sprintf("arn:aws:kinesis:us-east-1:%s:stream/%s", Account, name), created: time.Now()}
	width := new(big.Int).Div(new(big.Int).Add(maxHashKey, big.NewInt(1)), big.NewInt(int64(shards)))
	for i := range shards {
		lo := new(big.Int).Mul(width, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Add(lo, width), big.NewInt(1))
		if i == shards-1 {
			hi = maxHashKey
		}
		st.shards = append(st.shards, &shard{id: fmt.Sprintf("shardId-%012d", i), hashStart: lo, hashEnd: hi, startSeq: s.nextSeq(),
			subscribed: map[string]bool{}})
	}
	s.streams[name] = st
}

// Put adds a record to the open shard whose hash key range holds the MD5 of the
// partition key, as Kinesis does; it returns the shard and the sequence number.
func (s *Server) Put(streamName, key string, data []byte) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[streamName]
	if st == nil {
		panic("kinesisefo: no stream " + streamName)
	}
	sum := md5.Sum([]byte(key))
	h := new(big.Int).SetBytes(sum[:])
	for _, sh := range st.shards {
		if sh.endSeq == "" && h.Cmp(sh.hashStart) >= 0 && h.Cmp(sh.hashEnd) <= 0 {
			seq := s.nextSeq()
			sh.records = append(sh.records, record{seq: seq, key: key, data: bytes.Clone(data), arrival: time.Now()})
			s.notify()
			return sh.id, seq
		}
	}
	panic("kinesisefo: no open shard for key " + key)
}

// Split closes an open shard and creates two children, each with half of its hash
// key range, as SplitShard does at the range's middle.
func (s *Server) Split(streamName, shardID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[streamName]
	var parent *shard
	for _, sh := range st.shards {
		if sh.id == shardID && sh.endSeq == "" {
			parent = sh
		}
	}
	if parent == nil {
		panic("kinesisefo: no open shard " + shardID)
	}
	parent.endSeq = s.nextSeq()
	mid := new(big.Int).Div(new(big.Int).Add(parent.hashStart, parent.hashEnd), big.NewInt(2))
	for _, r := range [][2]*big.Int{{parent.hashStart, mid}, {new(big.Int).Add(mid, big.NewInt(1)), parent.hashEnd}} {
		c := &shard{id: fmt.Sprintf("shardId-%012d", len(st.shards)), parents: []string{parent.id}, hashStart: r[0], hashEnd: r[1],
			startSeq: s.nextSeq(), subscribed: map[string]bool{}}
		parent.children = append(parent.children, c)
		st.shards = append(st.shards, c)
	}
	s.notify()
}

// apiError is an awsJson 1.1 error response.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func badRequest(typ, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, msg: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.typ, "message": e.msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
	if r.Method != http.MethodPost || !ok {
		writeError(w, badRequest("UnknownOperationException", "want a POST with X-Amz-Target: Kinesis_20131202.<operation>"))
		return
	}
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, badRequest("SerializationException", "body: %v", err))
		return
	}
	str := func(k string) string { v, _ := in[k].(string); return v }
	var out any
	var err *apiError
	switch op {
	case "DescribeStreamSummary":
		out, err = s.describeStreamSummary(str("StreamName"))
	case "ListShards":
		out, err = s.listShards(str("StreamName"))
	case "RegisterStreamConsumer":
		out, err = s.registerConsumer(str("StreamARN"), str("ConsumerName"))
	case "DescribeStreamConsumer":
		out, err = s.describeConsumer(str("StreamARN"), str("ConsumerName"), str("ConsumerARN"))
	case "SubscribeToShard":
		if r.ProtoMajor != 2 {
			writeError(w, badRequest("InvalidArgumentException", "SubscribeToShard needs HTTP/2, got %s", r.Proto))
			return
		}
		pos, _ := in["StartingPosition"].(map[string]any)
		s.subscribe(w, r, str("ConsumerARN"), str("ShardId"), pos)
		return
	default:
		err = badRequest("UnknownOperationException", "%s is not implemented by this test server", op)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (s *Server) stream(name string) (*stream, *apiError) {
	st := s.streams[name]
	if st == nil {
		return nil, badRequest("ResourceNotFoundException", "Stream %s under account %s not found.", name, Account)
	}
	return st, nil
}

func (s *Server) describeStreamSummary(name string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(name)
	if err != nil {
		return nil, err
	}
	open, consumers := 0, 0
	for _, sh := range st.shards {
		if sh.endSeq == "" {
			open++
		}
	}
	for _, c := range s.consumers {
		if c.streamARN == st.arn {
			consumers++
		}
	}
	return map[string]any{"StreamDescriptionSummary": map[string]any{"StreamName": st.name, "StreamARN": st.arn,
		"StreamStatus": "ACTIVE", "RetentionPeriodHours": 24, "StreamCreationTimestamp": epoch(st.created),
		"EnhancedMonitoring": []any{map[string]any{"ShardLevelMetrics": []string{}}}, "EncryptionType": "NONE",
		"OpenShardCount": open, "ConsumerCount": consumers}}, nil
}

func hashRange(sh *shard) map[string]string {
	return map[string]string{"StartingHashKey": sh.hashStart.String(), "EndingHashKey": sh.hashEnd.String()}
}

func (s *Server) listShards(name string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(name)
	if err != nil {
		return nil, err
	}
	var shards []any
	for _, sh := range st.shards {
		if s.Unlisted && len(sh.parents) > 0 {
			continue
		}
		seqRange := map[string]string{"StartingSequenceNumber": sh.startSeq}
		if sh.endSeq != "" {
			seqRange["EndingSequenceNumber"] = sh.endSeq
		}
		m := map[string]any{"ShardId": sh.id, "HashKeyRange": hashRange(sh), "SequenceNumberRange": seqRange}
		if len(sh.parents) > 0 {
			m["ParentShardId"] = sh.parents[0]
		}
		if len(sh.parents) > 1 {
			m["AdjacentParentShardId"] = sh.parents[1]
		}
		shards = append(shards, m)
	}
	return map[string]any{"Shards": shards}, nil
}

func (s *Server) streamByARN(arn string) (*stream, *apiError) {
	for _, st := range s.streams {
		if st.arn == arn {
			return st, nil
		}
	}
	return nil, badRequest("ResourceNotFoundException", "Stream %s not found.", arn)
}

// status is a consumer's status: CREATING for ActivateAfter, then ACTIVE. The
// caller holds s.mu.
func (s *Server) status(c *consumer) string {
	if time.Since(c.created) < s.ActivateAfter {
		return "CREATING"
	}
	return "ACTIVE"
}

func (s *Server) registerConsumer(streamARN, name string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamByARN(streamARN)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, badRequest("InvalidArgumentException", "ConsumerName is required")
	}
	for _, c := range s.consumers {
		if c.streamARN == st.arn && c.name == name {
			return nil, badRequest("ResourceInUseException", "Consumer %s already exists", c.arn)
		}
	}
	now := time.Now()
	c := &consumer{name: name, streamARN: st.arn, created: now, arn: fmt.Sprintf("%s/consumer/%s:%d", st.arn, name, now.Unix())}
	s.consumers[c.arn] = c
	return map[string]any{"Consumer": map[string]any{"ConsumerName": c.name, "ConsumerARN": c.arn, "ConsumerStatus": s.status(c),
		"ConsumerCreationTimestamp": epoch(c.created)}}, nil
}

func (s *Server) describeConsumer(streamARN, name, arn string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.consumers[arn]
	if arn == "" {
		for _, cand := range s.consumers {
			if cand.streamARN == streamARN && cand.name == name {
				c = cand
			}
		}
	}
	if c == nil {
		return nil, badRequest("ResourceNotFoundException", "Consumer %s%s not found.", arn, name)
	}
	return map[string]any{"ConsumerDescription": map[string]any{"ConsumerName": c.name, "ConsumerARN": c.arn,
		"ConsumerStatus": s.status(c), "ConsumerCreationTimestamp": epoch(c.created), "StreamARN": c.streamARN}}, nil
}

// start returns the index of the first record a starting position reads. The
// caller holds s.mu.
func start(sh *shard, pos map[string]any) (int, *apiError) {
	typ, _ := pos["Type"].(string)
	seq, _ := pos["SequenceNumber"].(string)
	switch typ {
	case "TRIM_HORIZON":
		return 0, nil
	case "LATEST":
		return len(sh.records), nil
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		if seq == "" {
			return 0, badRequest("InvalidArgumentException", "StartingPosition %s needs a SequenceNumber", typ)
		}
		return sort.Search(len(sh.records), func(i int) bool {
			if typ == "AT_SEQUENCE_NUMBER" {
				return sh.records[i].seq >= seq
			}
			return sh.records[i].seq > seq
		}), nil
	case "AT_TIMESTAMP":
		ts, _ := pos["Timestamp"].(float64)
		at := time.UnixMilli(int64(ts * 1000))
		return sort.Search(len(sh.records), func(i int) bool { return !sh.records[i].arrival.Before(at) }), nil
	}
	return 0, badRequest("InvalidArgumentException", "StartingPosition.Type %q", typ)
}

// subscribe serves one SubscribeToShard call.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, consumerARN, shardID string, pos map[string]any) {
	s.mu.Lock()
	c := s.consumers[consumerARN]
	var sh *shard
	var apiErr *apiError
	var next int
	switch {
	case s.limit > 0:
		s.limit--
		apiErr = badRequest("LimitExceededException", "Rate exceeded for consumer %s and shard %s.", consumerARN, shardID)
	case c == nil:
		apiErr = badRequest("ResourceNotFoundException", "Consumer %s not found.", consumerARN)
	case s.status(c) != "ACTIVE":
		apiErr = badRequest("ResourceInUseException", "Consumer %s is not ACTIVE.", consumerARN)
	default:
		st, _ := s.streamByARN(c.streamARN)
		for _, cand := range st.shards {
			if cand.id == shardID {
				sh = cand
			}
		}
		switch {
		case sh == nil:
			apiErr = badRequest("ResourceNotFoundException", "Shard %s in stream %s not found.", shardID, st.name)
		case sh.subscribed[consumerARN]:
			// AWS allows one subscription per consumer and shard at a time.
			apiErr = badRequest("ResourceInUseException", "Another active subscription exists for consumer %s and shard %s.", consumerARN, shardID)
		default:
			next, apiErr = start(sh, pos)
		}
	}
	if apiErr != nil {
		s.mu.Unlock()
		writeError(w, apiErr)
		return
	}
	sh.subscribed[consumerARN] = true
	s.subscriptions++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(sh.subscribed, consumerARN)
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	enc := eventstream.NewEncoder()
	send := func(eventType string, payload []byte) bool {
		var msg eventstream.Message
		msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.EventMessageType))
		msg.Headers.Set(eventstreamapi.EventTypeHeader, eventstream.StringValue(eventType))
		msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue("application/json"))
		msg.Payload = payload
		if err := enc.Encode(w, msg); err != nil {
			return false
		}
		http.NewResponseController(w).Flush() //nolint:errcheck // a gone client shows in the next Encode
		return true
	}
	if !send("initial-response", []byte("{}")) {
		return
	}
	end := time.After(s.Lifetime)
	for {
		select {
		case <-end:
			return
		default:
		}
		s.mu.Lock()
		changed := s.changed
		batch := sh.records[next:min(len(sh.records), next+s.MaxPerEvent)]
		caughtUp := next+len(batch) == len(sh.records)
		ev := map[string]any{"MillisBehindLatest": 0}
		var recs []any
		for _, rec := range batch {
			recs = append(recs, map[string]any{"SequenceNumber": rec.seq, "PartitionKey": rec.key, "Data": rec.data,
				"ApproximateArrivalTimestamp": epoch(rec.arrival)})
		}
		ev["Records"] = append([]any{}, recs...)
		next += len(batch)
		if !caughtUp {
			ev["MillisBehindLatest"] = time.Since(sh.records[next].arrival).Milliseconds()
		}
		finished := caughtUp && sh.endSeq != ""
		if finished {
			// The shard's last event: its children, and no continuation.
			var children []any
			for _, c := range sh.children {
				children = append(children, map[string]any{"ShardId": c.id, "ParentShards": c.parents, "HashKeyRange": hashRange(c)})
			}
			ev["ChildShards"] = children
		} else if next > 0 {
			ev["ContinuationSequenceNumber"] = sh.records[next-1].seq
		} else {
			ev["ContinuationSequenceNumber"] = sh.startSeq
		}
		s.mu.Unlock()
		payload, _ := json.Marshal(ev)
		if !send("SubscribeToShardEvent", payload) || finished {
			return
		}
		if !caughtUp {
			continue
		}
		select {
		case <-changed:
		case <-time.After(s.Heartbeat):
		case <-end:
			return
		case <-r.Context().Done():
			return
		}
	}
}
