package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// NodesBucket is the KV bucket where every node of a cluster announces itself
// (key: node id, value: NodeInfo as JSON), renewed every nodeHeartbeat; an entry
// not renewed for nodeTTL is gone.
const NodesBucket = "VIGIL_NODES"

const (
	nodeHeartbeat = 5 * time.Second
	nodeTTL       = 30 * time.Second
)

// NodeInfo is what a node announces about itself.
type NodeInfo struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Host    string `json:"host"`
	PID     int    `json:"pid"`
	Version string `json:"version"`
	Admin   string `json:"admin,omitempty"`
	// NATS is the server this node's connection is on.
	NATS string `json:"nats,omitempty"`
	// Sources are the sources this node runs; Processing whether it processes.
	Sources    []string `json:"sources,omitempty"`
	Processing bool     `json:"processing"`
	// Sinks are the sinks this node runs now (holds the lease of).
	Sinks     []string  `json:"sinks,omitempty"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

// registry keeps this node's entry in NodesBucket fresh until stopped, then
// deletes it.
type registry struct {
	p      *Pipeline
	kv     jetstream.KeyValue
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startRegistry(ctx context.Context, p *Pipeline) (*registry, error) {
	kv, err := p.st.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: NodesBucket,
		Description: "Vigil nodes: what each node of the cluster runs, renewed every 5s", TTL: nodeTTL,
		Storage: jetstream.FileStorage, Replicas: p.st.Replicas()})
	if err != nil {
		return nil, err
	}
	r := &registry{p: p, kv: kv, start: time.Now()}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { r.run(runCtx) })
	return r, nil
}

func (r *registry) run(ctx context.Context) {
	t := time.NewTicker(nodeHeartbeat)
	defer t.Stop()
	for {
		r.put()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *registry) put() {
	b, err := json.Marshal(r.p.self(r.start))
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeHeartbeat)
	defer cancel()
	_, _ = r.kv.Put(ctx, r.p.node.id, b)
}

// stop ends the heartbeat and removes the entry. Safe on a nil registry.
func (r *registry) stop() {
	if r == nil || r.cancel == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.kv.Delete(ctx, r.p.node.id)
}

// self describes this node now.
func (p *Pipeline) self(started time.Time) NodeInfo {
	host, _ := os.Hostname()
	name := p.cfg.NodeName
	if name == "" {
		name = host
	}
	n := NodeInfo{Name: name, Role: p.cfg.Role, Host: host, PID: os.Getpid(), Version: p.opts.Version,
		Admin: p.cfg.Admin.Address, Processing: p.proc != nil, Started: started, Heartbeat: time.Now()}
	if p.node != nil {
		n.ID = p.node.id
	}
	if p.st != nil {
		n.NATS = p.st.ServerName()
	}
	for _, s := range p.sources {
		n.Sources = append(n.Sources, s.name)
	}
	for _, r := range p.sinks {
		n.Sinks = append(n.Sinks, r.cfg.Name)
	}
	for _, l := range p.leased {
		if l.holding() != nil {
			n.Sinks = append(n.Sinks, l.name)
		}
	}
	sort.Strings(n.Sinks)
	return n
}
