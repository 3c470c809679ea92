package pipeline

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/stream"
)

// streamCollector reports the stream's and each consumer's state at scrape time.
type streamCollector struct{ p *Pipeline }

var (
	descStreamBytes    = prometheus.NewDesc("vigil_stream_bytes", "Bytes stored in a stream.", []string{"stream"}, nil)
	descStreamMaxBytes = prometheus.NewDesc("vigil_stream_max_bytes", "A stream's byte limit.", []string{"stream"}, nil)
	descStreamMsgs     = prometheus.NewDesc("vigil_stream_messages", "Messages stored in a stream.", []string{"stream"}, nil)
	descStreamFill     = prometheus.NewDesc("vigil_stream_fill_ratio", "A stream's bytes over its byte limit; /readyz warns when the dead-letter stream passes 0.8.", []string{"stream"}, nil)
	descStreamUp       = prometheus.NewDesc("vigil_stream_up", "1 when the stream answered this scrape.", nil, nil)
	descLag            = prometheus.NewDesc("vigil_consumer_lag_messages", "Messages not yet delivered to a consumer.", []string{"consumer"}, nil)
	descPending        = prometheus.NewDesc("vigil_consumer_pending_ack_messages", "Messages delivered to a consumer and not yet acknowledged.", []string{"consumer"}, nil)
	descRedelivered    = prometheus.NewDesc("vigil_consumer_redelivered_messages", "Messages redelivered to a consumer and still unacknowledged.", []string{"consumer"}, nil)
	descOldest         = prometheus.NewDesc("vigil_consumer_oldest_unacked_age_seconds", "Age of the oldest message a consumer has not acknowledged (0 when caught up).", []string{"consumer"}, nil)
	descSinkLease      = prometheus.NewDesc("vigil_sink_lease_held", "1 when this node holds the sink's lease and runs it (on a cluster, one process node per sink).", []string{"sink"}, nil)
	descTimeLeft       = prometheus.NewDesc("vigil_consumer_retention_time_left_seconds", "Time before the stream's max_age would remove the oldest message this consumer has not acknowledged.", []string{"consumer"}, nil)
)

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStreamBytes, descStreamMaxBytes, descStreamMsgs, descStreamFill, descStreamUp, descLag, descPending, descRedelivered, descOldest, descTimeLeft, descSinkLease} {
		ch <- d
	}
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.st
	if st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	usages, err := st.Usages(ctx)
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descStreamUp, prometheus.GaugeValue, up)
	maxAge := map[string]time.Duration{}
	for _, u := range usages {
		ch <- prometheus.MustNewConstMetric(descStreamBytes, prometheus.GaugeValue, float64(u.Bytes), u.Name)
		ch <- prometheus.MustNewConstMetric(descStreamMaxBytes, prometheus.GaugeValue, float64(u.MaxBytes), u.Name)
		ch <- prometheus.MustNewConstMetric(descStreamMsgs, prometheus.GaugeValue, float64(u.Msgs), u.Name)
		if u.MaxBytes > 0 {
			ch <- prometheus.MustNewConstMetric(descStreamFill, prometheus.GaugeValue, float64(u.Bytes)/float64(u.MaxBytes), u.Name)
		}
		maxAge[u.Name] = u.MaxAge
	}
	type cons struct{ stream, name string }
	var list []cons
	if c.p.proc != nil {
		list = append(list, cons{stream.IntakeStream, process.ProcessingConsumer})
	}
	for _, r := range c.p.sinks {
		list = append(list, cons{stream.EventsStream, ConsumerName(r.cfg.Name)})
	}
	for _, l := range c.p.leased {
		list = append(list, cons{stream.EventsStream, ConsumerName(l.name)})
		held := 0.0
		if l.holding() != nil {
			held = 1
		}
		ch <- prometheus.MustNewConstMetric(descSinkLease, prometheus.GaugeValue, held, l.name)
	}
	js := st.JetStream()
	for _, k := range list {
		cn, err := js.Consumer(ctx, k.stream, k.name)
		if err != nil {
			continue
		}
		info, err := cn.Info(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(info.NumPending), k.name)
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(info.NumAckPending), k.name)
		ch <- prometheus.MustNewConstMetric(descRedelivered, prometheus.GaugeValue, float64(info.NumRedelivered), k.name)
		age, left := 0.0, maxAge[k.stream].Seconds()
		if info.NumPending+uint64(info.NumAckPending) > 0 {
			s, err := js.Stream(ctx, k.stream)
			if err == nil {
				if m, err := s.GetMsg(ctx, info.AckFloor.Stream+1); err == nil {
					a := time.Since(m.Time)
					age = a.Seconds()
					left = (maxAge[k.stream] - a).Seconds()
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age, k.name)
		ch <- prometheus.MustNewConstMetric(descTimeLeft, prometheus.GaugeValue, max(left, 0), k.name)
	}
}

// thresholdCollector reports the threshold rules' aggregators.
type thresholdCollector struct{ p *Pipeline }

var (
	descThreshLeader  = prometheus.NewDesc("vigil_threshold_leader", "1 when this node holds the rule's aggregator lease.", []string{"rule"}, nil)
	descThreshAlerts  = prometheus.NewDesc("vigil_threshold_alerts_total", "Alerts this node's aggregator published for the rule.", []string{"rule"}, nil)
	descThreshLate    = prometheus.NewDesc("vigil_threshold_late_events_total", "Events too late for their window (older than the watermark), not counted; as last seen by this node's aggregator.", []string{"rule"}, nil)
	descThreshEvicted = prometheus.NewDesc("vigil_threshold_evicted_groups_total", "Groups evicted by max_groups; as last seen by this node's aggregator.", []string{"rule"}, nil)
	descThreshGroups  = prometheus.NewDesc("vigil_threshold_groups", "Groups held by the rule's aggregator on this node.", []string{"rule"}, nil)
)

func (c *thresholdCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descThreshLeader, descThreshAlerts, descThreshLate, descThreshEvicted, descThreshGroups} {
		ch <- d
	}
}

func (c *thresholdCollector) Collect(ch chan<- prometheus.Metric) {
	for _, a := range c.p.aggs {
		leader := 0.0
		if a.Leader() {
			leader = 1
		}
		s := a.Stats()
		ch <- prometheus.MustNewConstMetric(descThreshLeader, prometheus.GaugeValue, leader, a.Name())
		ch <- prometheus.MustNewConstMetric(descThreshAlerts, prometheus.CounterValue, float64(a.Alerts()), a.Name())
		ch <- prometheus.MustNewConstMetric(descThreshLate, prometheus.CounterValue, float64(s.Late), a.Name())
		ch <- prometheus.MustNewConstMetric(descThreshEvicted, prometheus.CounterValue, float64(s.Evicted), a.Name())
		ch <- prometheus.MustNewConstMetric(descThreshGroups, prometheus.GaugeValue, float64(s.Groups), a.Name())
	}
}
