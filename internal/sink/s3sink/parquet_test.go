package s3sink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// pqRow is the part of the Parquet schema the test reads back.
type pqRow struct {
	Timestamp *time.Time `parquet:"@timestamp,optional,timestamp(nanosecond)"`
	Doc       string     `parquet:"doc"`
	Message   *string    `parquet:"message,optional"`
	Event     struct {
		ID      *string `parquet:"id,optional"`
		Dataset *string `parquet:"dataset,optional"`
		Action  *string `parquet:"action,optional"`
		Outcome *string `parquet:"outcome,optional"`
	} `parquet:"event"`
	Source struct {
		IP   *string `parquet:"ip,optional"`
		Port *int64  `parquet:"port,optional"`
	} `parquet:"source"`
	User struct {
		Name *string `parquet:"name,optional"`
	} `parquet:"user"`
	HTTP struct {
		Response struct {
			StatusCode *int64 `parquet:"status_code,optional"`
		} `parquet:"response"`
	} `parquet:"http"`
	Cloud struct {
		Region *string `parquet:"region,optional"`
	} `parquet:"cloud"`
}

// TestParquet writes Parquet objects, reads them back with parquet-go and checks
// every event's typed columns against its doc column.
func TestParquet(t *testing.T) {
	g := startGateway(t)
	cfg := sinkConfig(g)
	cfg.Encoding = "parquet"
	cfg.MaxBytes = 128 << 10
	s := newSink(t, cfg, "lake")
	a := newAcks()
	want := map[string][]uint64{}
	for q := uint64(1); q <= 40; q++ {
		ds := "aws.cloudtrail"
		if q%2 == 0 {
			ds = "nginx.access"
		}
		want[ds] = append(want[ds], q)
		if err := s.Consume(context.Background(), batch(ds, q, streamTime, 25, a)); err != nil {
			t.Fatal(err)
		}
	}
	// A document without most fields gets nulls, not zeros.
	b := batch("syslog", 41, streamTime, 0, a)
	b.Docs = []byte(`{"message":"bare","event":{"dataset":"syslog","id":"syslog-41-0"}}` + "\n")
	b.Count = 1
	if err := s.Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.acked() != 41 {
		t.Fatalf("%d acknowledged, want 41 (failed %v)", a.acked(), a.failed())
	}
	var docs []map[string]any
	for _, k := range g.DataKeys(t) {
		if !strings.HasSuffix(k, ".parquet") {
			t.Fatalf("unexpected object %s", k)
		}
		data := g.Get(t, k)
		rows, err := parquet.Read[pqRow](bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		for _, r := range rows {
			var d map[string]any
			if err := json.Unmarshal([]byte(r.Doc), &d); err != nil {
				t.Fatalf("%s: doc %q: %v", k, r.Doc, err)
			}
			docs = append(docs, d)
			checkColumns(t, r, d)
		}
	}
	if n := countIDs(docs)["syslog-41-0"]; n != 1 {
		t.Errorf("bare document stored %d times", n)
	}
	var rest []map[string]any
	for _, d := range docs {
		if d["message"] != "bare" {
			rest = append(rest, d)
		}
	}
	checkExactlyOnce(t, rest, want, 25)
}

func checkColumns(t *testing.T, r pqRow, d map[string]any) {
	t.Helper()
	str := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	num := func(p *int64) any {
		if p == nil {
			return nil
		}
		return float64(*p)
	}
	f := func(path string) any {
		cur := any(d)
		for _, seg := range strings.Split(path, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[seg]
		}
		return cur
	}
	checks := []struct {
		path string
		got  any
	}{
		{"event.id", str(r.Event.ID)},
		{"event.dataset", str(r.Event.Dataset)},
		{"event.action", str(r.Event.Action)},
		{"event.outcome", str(r.Event.Outcome)},
		{"message", str(r.Message)},
		{"source.ip", str(r.Source.IP)},
		{"source.port", num(r.Source.Port)},
		{"user.name", str(r.User.Name)},
		{"http.response.status_code", num(r.HTTP.Response.StatusCode)},
		{"cloud.region", str(r.Cloud.Region)},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(f(c.path)) {
			t.Errorf("%v: column %s = %v, doc has %v", f("event.id"), c.path, c.got, f(c.path))
		}
	}
	ts, _ := f("@timestamp").(string)
	switch {
	case ts == "" && r.Timestamp != nil:
		t.Errorf("%v: @timestamp column %v, doc has none", f("event.id"), r.Timestamp)
	case ts != "":
		want, _ := time.Parse(time.RFC3339Nano, ts)
		if r.Timestamp == nil || !r.Timestamp.Equal(want) {
			t.Errorf("%v: @timestamp column %v, want %v", f("event.id"), r.Timestamp, want)
		}
	}
}
