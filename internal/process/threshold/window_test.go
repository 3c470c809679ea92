package threshold

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano()

func sec(s float64) int64 { return t0 + int64(s*float64(time.Second)) }

func mustRule(t *testing.T, c *Config) *rule {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := newRule("r", c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func cfg(mod func(c *Config)) *Config {
	c := NewConfig()
	c.Window = 10 * time.Minute
	c.Condition = "count >= 3"
	c.GroupBy = []string{"source.ip"}
	mod(c)
	return c
}

// in is one sample: time in seconds after t0, group, numbers, distinct values.
type in struct {
	at    float64
	group string
	nums  []float64
	strs  []string
}

func (i in) sample(r *rule, n int) *sample {
	s := &sample{t: sec(i.at), id: "e" + strconv.Itoa(n), group: []string{i.group}, nums: i.nums, strs: i.strs}
	for range i.strs {
		s.has = append(s.has, true)
	}
	for len(s.nums) < len(r.nums) {
		s.nums = append(s.nums, math.NaN())
	}
	return s
}

type fired struct {
	group string
	start float64 // seconds after t0
}

func run(t *testing.T, st *state, ins []in) []Alert {
	t.Helper()
	var out []Alert
	for n, i := range ins {
		out = st.add(i.sample(st.r, n), out)
	}
	return out
}

func TestWindows(t *testing.T) {
	tests := []struct {
		name string
		cfg  *Config
		give []in
		want []fired
		late uint64
	}{
		{
			name: "sliding count fires on the third event, once (suppressed after)",
			cfg:  cfg(func(*Config) {}),
			give: []in{{at: 0, group: "a"}, {at: 60, group: "a"}, {at: 61, group: "b"}, {at: 120, group: "a"}, {at: 130, group: "a"}},
			// The window is [120s − 10m, 120s], its start rounded down to a pane (1m).
			want: []fired{{"a", -480}},
		},
		{
			name: "sliding window forgets events older than the window",
			cfg:  cfg(func(*Config) {}),
			give: []in{{at: 0, group: "a"}, {at: 60, group: "a"}, {at: 900, group: "a"}, {at: 960, group: "a"}},
		},
		{
			name: "suppression ends: a second alert after suppress",
			cfg:  cfg(func(c *Config) { c.Suppress = time.Minute; c.Condition = "count >= 2" }),
			give: []in{{at: 0, group: "a"}, {at: 10, group: "a"}, {at: 20, group: "a"}, {at: 80, group: "a"}},
			want: []fired{{"a", -600}, {"a", -540}},
		},
		{
			name: "tumbling fires when the window closes by watermark, not before",
			cfg: cfg(func(c *Config) {
				c.WindowType, c.Window, c.Lateness = "tumbling", time.Minute, 10*time.Second
			}),
			give: []in{{at: 1, group: "a"}, {at: 2, group: "a"}, {at: 3, group: "a"}, {at: 65, group: "b"}, {at: 70, group: "b"}},
			want: []fired{{"a", 0}},
		},
		{
			name: "tumbling counts a late event within lateness, drops one after",
			cfg: cfg(func(c *Config) {
				c.WindowType, c.Window, c.Lateness = "tumbling", time.Minute, 10*time.Second
			}),
			give: []in{{at: 1, group: "a"}, {at: 2, group: "a"}, {at: 65, group: "b"}, {at: 59, group: "a"}, {at: 80, group: "b"}, {at: 58, group: "a"}},
			want: []fired{{"a", 0}},
			late: 1,
		},
		{
			name: "sliding drops events older than the watermark",
			cfg:  cfg(func(c *Config) { c.Lateness = 30 * time.Second }),
			give: []in{{at: 100, group: "a"}, {at: 50, group: "a"}, {at: 80, group: "a"}, {at: 90, group: "a"}},
			want: []fired{{"a", -540}},
			late: 1,
		},
		{
			name: "port scan: distinct destination.port >= 3",
			cfg: cfg(func(c *Config) {
				c.Aggregate = map[string]string{"ports": "distinct destination.port"}
				c.Condition = "ports >= 3"
				c.Window = time.Minute
			}),
			give: []in{{at: 0, group: "a", strs: []string{"22"}}, {at: 1, group: "a", strs: []string{"22"}},
				{at: 2, group: "a", strs: []string{"80"}}, {at: 3, group: "b", strs: []string{"443"}}, {at: 4, group: "a", strs: []string{"443"}}},
			want: []fired{{"a", -60}},
		},
		{
			name: "several aggregates: sum and max",
			cfg: cfg(func(c *Config) {
				c.Aggregate = map[string]string{"total": "sum bytes", "biggest": "max bytes", "n": "count"}
				c.Condition = "total > 100 && biggest >= 60 && n == 2"
			}),
			give: []in{{at: 0, group: "a", nums: []float64{50}}, {at: 1, group: "a", nums: []float64{60}}},
			want: []fired{{"a", -600}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newState(mustRule(t, tt.cfg))
			got := run(t, st, tt.give)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d alerts %+v, want %v", len(got), got, tt.want)
			}
			for i, w := range tt.want {
				if got[i].Group[0] != w.group || got[i].Start != sec(w.start) {
					t.Errorf("alert %d: group %s start %v, want %s %v", i, got[i].Group[0],
						float64(got[i].Start-t0)/1e9, w.group, w.start)
				}
			}
			if st.late != tt.late {
				t.Errorf("late = %d, want %d", st.late, tt.late)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	c := cfg(func(c *Config) {
		c.WindowType, c.Window, c.Lateness = "tumbling", 5*time.Minute, 0
		c.GroupBy = []string{"url.domain"}
		c.Aggregate = map[string]string{"p95": "aws.elb.target_processing_time.sec", "p50": "p50 aws.elb.target_processing_time.sec",
			"p99": "p99 aws.elb.target_processing_time.sec", "avg": "avg aws.elb.target_processing_time.sec"}
		c.Condition = "p95 > 2"
	})
	st := newState(mustRule(t, c))
	var ins []in
	for i := 1; i <= 1000; i++ {
		ins = append(ins, in{at: float64(i) / 10, group: "shop.example", nums: []float64{float64(i) / 400}})
	}
	ins = append(ins, in{at: 400, group: "other"}) // closes the first window
	got := run(t, st, ins)
	if len(got) != 1 {
		t.Fatalf("%d alerts, want 1: %+v", len(got), got)
	}
	want := map[string]float64{"avg": 1.25125, "p50": 1.25, "p95": 2.375, "p99": 2.475}
	for i, a := range st.r.aggs {
		v := got[0].Values[i]
		if math.Abs(v-want[a.name])/want[a.name] > 0.011 {
			t.Errorf("%s = %v, want %v ±1.1%%", a.name, v, want[a.name])
		}
	}
	if len(got[0].IDs) != maxAlertIDs || got[0].Start != t0 || got[0].End != sec(300) {
		t.Errorf("ids %v, window %d..%d", got[0].IDs, got[0].Start, got[0].End)
	}
}

func TestSketchAccuracy(t *testing.T) {
	var s sketch
	for i := 1; i <= 100000; i++ {
		s.add(float64(i) * 0.001)
	}
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99} {
		exact := float64(int64(q*float64(s.N-1))+1) * 0.001
		if got := s.quantile(q); math.Abs(got-exact)/exact > 0.01 {
			t.Errorf("q%v = %v, want %v within 1%%", q, got, exact)
		}
	}
	var empty sketch
	if !math.IsNaN(empty.quantile(0.5)) {
		t.Error("empty sketch: want NaN")
	}
}

func TestEviction(t *testing.T) {
	st := newState(mustRule(t, cfg(func(c *Config) { c.MaxGroups = 2; c.Condition = "count >= 2" })))
	got := run(t, st, []in{{at: 0, group: "a"}, {at: 1, group: "b"}, {at: 2, group: "c"}, {at: 3, group: "a"}, {at: 4, group: "c"}})
	// a was evicted by c, so its second event starts over; c fires.
	if len(got) != 1 || got[0].Group[0] != "c" || st.evicted != 2 || len(st.groups) != 2 {
		t.Fatalf("alerts %+v, evicted %d, groups %d", got, st.evicted, len(st.groups))
	}
}

func TestDistinctCap(t *testing.T) {
	st := newState(mustRule(t, cfg(func(c *Config) {
		c.MaxDistinct = 2
		c.Aggregate = map[string]string{"d": "distinct x"}
		c.Condition = "d > 2"
	})))
	got := run(t, st, []in{{at: 0, group: "a", strs: []string{"1"}}, {at: 1, group: "a", strs: []string{"2"}}, {at: 2, group: "a", strs: []string{"3"}}})
	if len(got) != 0 {
		t.Fatalf("distinct saturates at max_distinct: %+v", got)
	}
}

// TestSnapshotRoundTrip: a state restored from its snapshot goes on exactly as the
// original.
func TestSnapshotRoundTrip(t *testing.T) {
	for _, wt := range []string{"sliding", "tumbling"} {
		t.Run(wt, func(t *testing.T) {
			c := cfg(func(c *Config) {
				c.WindowType, c.Window, c.Lateness = wt, time.Minute, 0
				c.Aggregate = map[string]string{"count": "count", "p95": "p95 v", "d": "distinct port", "m": "min v"}
				c.Condition = "count >= 4 && p95 > 1 && d >= 2 && m < 1"
			})
			first := []in{{at: 1, group: "a", nums: []float64{0.5}, strs: []string{"1"}}, {at: 2, group: "a", nums: []float64{3}, strs: []string{"2"}}}
			rest := []in{{at: 3, group: "a", nums: []float64{2}, strs: []string{"2"}}, {at: 4, group: "a", nums: []float64{2}, strs: []string{"3"}},
				{at: 70, group: "b", nums: []float64{1}, strs: []string{"1"}}}
			whole := newState(mustRule(t, c))
			want := run(t, whole, append(append([]in{}, first...), rest...))

			st := newState(mustRule(t, c))
			run(t, st, first)
			b, err := json.Marshal(st.snapshot(7))
			if err != nil {
				t.Fatal(err)
			}
			var snap snapshot
			if err := json.Unmarshal(b, &snap); err != nil {
				t.Fatal(err)
			}
			restored := newState(mustRule(t, c))
			if !restored.restore(&snap) || snap.Seq != 7 {
				t.Fatal("restore refused its own snapshot")
			}
			var got []Alert
			for n, i := range rest {
				got = restored.add(i.sample(restored.r, n+len(first)), got)
			}
			if len(want) != 1 || len(got) != 1 || got[0].ID() != want[0].ID() || got[0].Values[0] != want[0].Values[0] {
				t.Fatalf("restored state raised %+v, the uninterrupted one %+v", got, want)
			}
			other := newState(mustRule(t, cfg(func(c *Config) { c.Window = time.Hour })))
			if other.restore(&snap) {
				t.Error("a snapshot of another window was restored")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *Config)
		ok   bool
	}{
		{"valid", func(*Config) {}, true},
		{"seed 003 shorthand", func(c *Config) {
			c.Aggregate = map[string]string{"p95": "aws.elb.target_processing_time.sec"}
			c.Condition = "p95 > 2"
		}, true},
		{"no window", func(c *Config) { c.Window = 0 }, false},
		{"bad window type", func(c *Config) { c.WindowType = "hopping" }, false},
		{"unknown aggregate", func(c *Config) { c.Aggregate = map[string]string{"x": "median y"} }, false},
		{"condition names an unknown aggregate", func(c *Config) { c.Condition = "total > 3" }, false},
		{"bad level", func(c *Config) { c.Level = "urgent" }, false},
		{"count with a field", func(c *Config) { c.Aggregate = map[string]string{"count": "count x"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cfg(tt.mod).Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestSampleRoundTrip(t *testing.T) {
	s := &sample{t: -5, id: "x", group: []string{"1.2.3.4", ""}, nums: []float64{1.5, math.NaN()}, strs: []string{"22", ""}, has: []bool{true, false}}
	var got sample
	if err := decodeSample(appendSample(nil, s), &got); err != nil {
		t.Fatal(err)
	}
	if got.t != -5 || got.id != "x" || got.group[0] != "1.2.3.4" || got.nums[0] != 1.5 || !math.IsNaN(got.nums[1]) || !got.has[0] || got.has[1] {
		t.Fatalf("%+v", got)
	}
	for i := range appendSample(nil, s) {
		_ = decodeSample(appendSample(nil, s)[:i], &got) // truncated input: no panic
	}
}

// TestIdle: a quiet stream's last tumbling window is evaluated by the wall clock,
// yet still takes late events until the event-time watermark closes it, and raises
// no second alert then.
func TestIdle(t *testing.T) {
	st := newState(mustRule(t, cfg(func(c *Config) {
		c.WindowType, c.Window, c.Lateness = "tumbling", time.Minute, 10*time.Second
	})))
	got := run(t, st, []in{{at: 1, group: "a"}, {at: 2, group: "a"}, {at: 3, group: "a"}})
	if len(got) != 0 {
		t.Fatalf("before idle: %+v", got)
	}
	now := time.Unix(0, sec(200))
	got = st.idle(now, nil)
	if len(got) != 1 || got[0].Start != t0 {
		t.Fatalf("idle: %+v", got)
	}
	if again := st.idle(now.Add(time.Second), nil); len(again) != 0 {
		t.Fatalf("idle evaluated an unchanged window again: %+v", again)
	}
	got = run(t, st, []in{{at: 30, group: "a"}, {at: 80, group: "b"}})
	if len(got) != 0 || st.late != 0 {
		t.Fatalf("after idle: alerts %+v, late %d (a late event within lateness must count)", got, st.late)
	}
}
