package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/stream"
)

// Status is the cluster as one node sees it: the streams with their replicas, the
// nodes and what they run, and each consumer's lag. `vigil status` prints it.
type Status struct {
	// Self is the node that answered.
	Self NodeInfo `json:"self"`
	// Nodes are the nodes in the registry (on a cluster; only Self otherwise).
	Nodes     []NodeInfo       `json:"nodes"`
	Streams   []StreamStatus   `json:"streams"`
	Consumers []ConsumerStatus `json:"consumers"`
	// Errors are what could not be read (a stream without a leader, say).
	Errors []string `json:"errors,omitempty"`
}

// StreamStatus is one stream's state and its replicas.
type StreamStatus struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// Cluster and Leader: the NATS cluster and the server that leads the stream's
	// replica group (empty on a single server).
	Cluster string        `json:"cluster,omitempty"`
	Leader  string        `json:"leader,omitempty"`
	Peers   []ReplicaInfo `json:"peers,omitempty"`
}

// ReplicaInfo is a follower replica of a stream.
type ReplicaInfo struct {
	Server  string `json:"server"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	// Lag is how many operations the replica is behind the leader.
	Lag uint64 `json:"lag"`
	// Active is how long ago the leader last heard from it.
	Active time.Duration `json:"active_ns"`
}

// ConsumerStatus is one durable consumer: processing, or a sink's.
type ConsumerStatus struct {
	Name   string `json:"name"`
	Stream string `json:"stream"`
	// Sink is the sink it feeds ("" for processing); Holder the node that runs it
	// now (from the sink's lease, on a cluster).
	Sink   string `json:"sink,omitempty"`
	Holder string `json:"holder,omitempty"`
	// Pending is the lag: messages not yet delivered. AckPending: delivered, not
	// yet acknowledged.
	Pending     uint64 `json:"pending"`
	AckPending  int    `json:"ack_pending"`
	Redelivered int    `json:"redelivered"`
	AckFloor    uint64 `json:"ack_floor"`
	Leader      string `json:"leader,omitempty"`
}

// Status reads the cluster's state.
func (p *Pipeline) Status(ctx context.Context) (*Status, error) {
	p.mu.Lock()
	st := p.st
	p.mu.Unlock()
	if st == nil {
		return nil, errors.New("not started")
	}
	out := &Status{Self: p.self(time.Time{})}
	js := st.JetStream()
	names := map[string]string{} // node id → name
	if kv, err := js.KeyValue(ctx, NodesBucket); err == nil {
		if keys, err := kv.ListKeys(ctx); err == nil {
			for k := range keys.Keys() {
				e, err := kv.Get(ctx, k)
				if err != nil {
					continue
				}
				var n NodeInfo
				if json.Unmarshal(e.Value(), &n) == nil {
					out.Nodes = append(out.Nodes, n)
					names[n.ID] = n.Name
				}
			}
		} else {
			out.Errors = append(out.Errors, "node registry: "+err.Error())
		}
	}
	if len(out.Nodes) == 0 {
		out.Nodes = []NodeInfo{out.Self}
	}
	sort.Slice(out.Nodes, func(i, j int) bool {
		if out.Nodes[i].Name != out.Nodes[j].Name {
			return out.Nodes[i].Name < out.Nodes[j].Name
		}
		return out.Nodes[i].ID < out.Nodes[j].ID
	})
	for _, name := range []string{stream.IntakeStream, stream.EventsStream, stream.DLQStream, stream.AggStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			out.Errors = append(out.Errors, name+": "+err.Error())
			continue
		}
		info := s.CachedInfo()
		ss := StreamStatus{Name: name, Replicas: info.Config.Replicas, Messages: info.State.Msgs, Bytes: info.State.Bytes,
			FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}
		if c := info.Cluster; c != nil {
			ss.Cluster, ss.Leader = c.Name, c.Leader
			for _, r := range c.Replicas {
				ss.Peers = append(ss.Peers, ReplicaInfo{Server: r.Name, Current: r.Current, Offline: r.Offline, Lag: r.Lag, Active: r.Active})
			}
		}
		out.Streams = append(out.Streams, ss)
	}
	holders := map[string]string{}
	if p.node != nil {
		// From the leader, as the nodes themselves read their leases (readLease).
		for _, sc := range p.cfg.Sinks {
			if e, err := readLease(ctx, js.Conn(), SinkLeaseBucket, sc.Name); err == nil && !e.free() {
				id, _, _ := strings.Cut(e.value, " ")
				holders[sc.Name] = id
				if n := names[id]; n != "" {
					holders[sc.Name] = n
				}
			}
		}
	}
	type cons struct{ stream, name, sink string }
	list := []cons{{stream.IntakeStream, process.ProcessingConsumer, ""}}
	for _, sc := range p.cfg.Sinks {
		list = append(list, cons{stream.EventsStream, ConsumerName(sc.Name), sc.Name})
	}
	for _, k := range list {
		c, err := js.Consumer(ctx, k.stream, k.name)
		if err != nil {
			if !errors.Is(err, jetstream.ErrConsumerNotFound) {
				out.Errors = append(out.Errors, k.name+": "+err.Error())
			}
			continue
		}
		info := c.CachedInfo()
		cs := ConsumerStatus{Name: k.name, Stream: k.stream, Sink: k.sink, Holder: holders[k.sink],
			Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered,
			AckFloor: info.AckFloor.Stream}
		if info.Cluster != nil {
			cs.Leader = info.Cluster.Leader
		}
		if k.sink != "" && cs.Holder == "" && p.node == nil && p.cfg.RunsSinks() {
			cs.Holder = out.Self.Name
		}
		out.Consumers = append(out.Consumers, cs)
	}
	return out, nil
}
