package process

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
)

// setPipelineFieldsOneByOne is how the pipeline fields were set before
// setPipelineFields: one Event.Set (a pass over the fields) each.
func setPipelineFieldsOneByOne(n *Normalizer, e *event.Event, ts time.Time, id, dataset string, rec *Record) {
	e.Set("@timestamp", event.Time(ts))
	e.Set("event.id", event.String(id))
	e.Set("event.dataset", event.String(dataset))
	e.Set("event.ingested", event.Time(rec.Received))
	if n.KeepOriginal {
		if _, ok := e.Get("event.original"); !ok {
			e.Set("event.original", event.Bytes(rec.Data))
		}
	} else {
		e.Delete("event.original")
	}
	e.Set("agent.type", event.String("vigil"))
	if n.AgentName != "" {
		e.Set("agent.name", event.String(n.AgentName))
	}
	if n.AgentVersion != "" {
		e.Set("agent.version", event.String(n.AgentVersion))
	}
	e.Set("ecs.version", event.String(ECSVersion))
}

// TestSetPipelineFieldsLikeSet: the one-pass version leaves exactly the fields and
// values that one Event.Set after another left (the fields already there in their
// place, the new ones appended, possibly in another order), and so the same
// document, for events that already hold some of the keys (once or twice, or below
// event.original); what it appends is one ascending run of keys.
func TestSetPipelineFieldsLikeSet(t *testing.T) {
	keys := []string{"@timestamp", "event.id", "event.dataset", "event.ingested", "event.original", "event.original.x",
		"agent.type", "agent.name", "agent.version", "ecs.version", "message", "host.name", "event.kind", "agent", "zzz"}
	rng := rand.New(rand.NewPCG(3, 4))
	rec := &Record{Data: []byte("<13>1 - - - - - - hello"), Received: time.Unix(1700000000, 5)}
	ts := time.Unix(1700000001, 0)
	var enc event.Encoder
	for round := range 5000 {
		var a, b event.Event
		for range rng.IntN(12) {
			k := keys[rng.IntN(len(keys))]
			v := event.Int(int64(rng.IntN(100)))
			a.Add(k, v)
			b.Add(k, v)
		}
		n := &Normalizer{KeepOriginal: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			n.AgentName = "node-1"
		}
		if rng.IntN(2) == 0 {
			n.AgentVersion = "1.2.3"
		}
		setPipelineFieldsOneByOne(n, &a, ts, "id-1", "ds", rec)
		if !n.KeepOriginal {
			b.Delete("event.original")
		}
		had := len(b.Fields)
		n.setPipelineFields(&b, ts, "id-1", "ds", rec)
		if da, db := string(enc.Append(nil, &a)), string(enc.Append(nil, &b)); da != db {
			t.Fatalf("round %d: documents differ:\n%s\n%s", round, da, db)
		}
		if len(a.Fields) != len(b.Fields) {
			t.Fatalf("round %d: %d fields one by one, %d in one pass:\n%v\n%v", round, len(a.Fields), len(b.Fields), a.Fields, b.Fields)
		}
		for i := range had {
			if a.Fields[i].Key != b.Fields[i].Key || !a.Fields[i].Value.Equal(b.Fields[i].Value) {
				t.Fatalf("round %d: field %d, set before: %v one by one, %v in one pass", round, i, a.Fields[i], b.Fields[i])
			}
		}
		for i := had + 1; i < len(b.Fields); i++ {
			if b.Fields[i-1].Key >= b.Fields[i].Key {
				t.Fatalf("round %d: appended %q after %q", round, b.Fields[i].Key, b.Fields[i-1].Key)
			}
		}
		byKey := func(x, y event.Field) int { return strings.Compare(x.Key, y.Key) }
		slices.SortStableFunc(a.Fields, byKey)
		slices.SortStableFunc(b.Fields, byKey)
		for i := range a.Fields {
			if a.Fields[i].Key != b.Fields[i].Key || !a.Fields[i].Value.Equal(b.Fields[i].Value) {
				t.Fatalf("round %d: field %d: %v one by one, %v in one pass", round, i, a.Fields[i], b.Fields[i])
			}
		}

	}
}
