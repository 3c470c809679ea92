package threshold

import (
	"strconv"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
)

// BenchmarkThreshold measures events through the processor (the per-event cost on
// every worker: read the fields, encode the sample) and samples through one
// aggregator's windows (the single-holder cost), for the seed 003 rule.
func BenchmarkThreshold(b *testing.B) {
	c := NewConfig()
	c.Window, c.GroupBy, c.Condition = 5*time.Minute, []string{"url.domain"}, "p95 > 2 && n > 100"
	c.Aggregate = map[string]string{"p95": "aws.elb.target_processing_time.sec", "n": "count"}
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	events := make([]*event.Event, 1024)
	base := time.Now()
	for i := range events {
		e := &event.Event{}
		e.Set("@timestamp", event.Time(base.Add(time.Duration(i)*time.Millisecond)))
		e.Set("event.id", event.String("id-"+strconv.Itoa(i)))
		e.Set("event.dataset", event.String("aws.alb"))
		e.Set("url.domain", event.String("d"+strconv.Itoa(i%50)+".example.com"))
		e.Set("aws.elb.target_processing_time.sec", event.Float(float64(i%300)/100))
		events[i] = e
	}
	b.Run("processor", func(b *testing.B) {
		proc, err := newProcessor(c, process.Deps{Name: "slow-responses"})
		if err != nil {
			b.Fatal(err)
		}
		items := make([]*process.Item, len(events))
		for i, e := range events {
			items[i] = process.NewItem(e, nil, "alb")
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := proc.Process(items[i%len(items)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	for _, wt := range []string{"sliding", "tumbling"} {
		b.Run("aggregate-"+wt, func(b *testing.B) {
			cc := *c
			cc.WindowType = wt
			r, err := newRule("slow-responses", &cc)
			if err != nil {
				b.Fatal(err)
			}
			st := newState(r)
			s := sample{group: []string{""}, nums: []float64{0}}
			var out []Alert
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				s.t = base.UnixNano() + int64(i)*int64(time.Millisecond)
				s.id = "x"
				s.group[0] = "d" + strconv.Itoa(i%50)
				s.nums[0] = float64(i%300) / 100
				out = st.add(&s, out[:0])
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
