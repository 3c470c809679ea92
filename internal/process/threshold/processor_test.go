package threshold

import (
	"math"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
)

func TestProcessorSample(t *testing.T) {
	c := NewConfig()
	c.Window, c.GroupBy, c.Condition = time.Minute, []string{"source.ip"}, "ports >= 50 && p95 > 1"
	c.Aggregate = map[string]string{"ports": "distinct destination.port", "p95": "p95 t"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	proc, err := newProcessor(c, process.Deps{Name: "scan"})
	if err != nil {
		t.Fatal(err)
	}
	p := proc.(*processor)
	ts := time.Unix(100, 0)
	e := &event.Event{}
	e.Set("@timestamp", event.Time(ts))
	e.Set("event.id", event.String("id1"))
	e.Set("source.ip", event.Raw([]byte(`"10.0.0.1"`)))
	e.Set("destination.port", event.Int(22))
	e.Set("t", event.String("1.5"))
	if v, err := p.Process(process.NewItem(e, nil, "x")); err != nil || v != process.Pass {
		t.Fatal(v, err)
	}
	var s sample
	if err := decodeSample(p.buf, &s); err != nil {
		t.Fatal(err)
	}
	if s.t != ts.UnixNano() || s.id != "id1" || s.group[0] != "10.0.0.1" || s.strs[0] != "22" || s.nums[0] != 1.5 {
		t.Fatalf("%+v", s)
	}
	e.Delete("t")
	_, _ = p.Process(process.NewItem(e, nil, "x"))
	_ = decodeSample(p.buf, &s)
	if !math.IsNaN(s.nums[0]) {
		t.Errorf("missing number: %v, want NaN", s.nums[0])
	}
	if _, err := newProcessor(c, process.Deps{}); err == nil {
		t.Error("a threshold without a name was built")
	}
}
