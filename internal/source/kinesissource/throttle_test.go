package kinesissource_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/source/kinesissource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// throttler proxies to a Kinesis emulator and answers the first n GetRecords calls
// with ProvisionedThroughputExceededException, as Kinesis does past 5 reads per
// second or 2 MB/s of a shard.
func throttler(t *testing.T, upstream string, n int64) *httptest.Server {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	var left atomic.Int64
	left.Store(n)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "Kinesis_20131202.GetRecords" && left.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// metric returns the value of the first series of name whose labels include want.
func metric(t *testing.T, p *pipeline.Pipeline, name string, want map[string]string) (float64, bool) {
	t.Helper()
	families, err := p.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestThrottled: throttled GetRecords calls are counted and retried after a back
// off, and nothing is lost; the shard's millis-behind-latest gauge is exported.
func TestThrottled(t *testing.T) {
	m := testutil.StartMoto(t)
	s := newStream(t, m.Endpoint(), "throttled", 1)
	s.put(t, 0, 50)
	proxy := throttler(t, m.Endpoint(), 3)
	dir := t.TempDir()
	n := startNode(t, dir, "", s.config(func(c *kinesissource.Config) { c.Endpoint = proxy.URL }))
	waitExactlyOnce(t, 50, dir)
	if v, _ := metric(t, n.p, "vigil_errors_total", map[string]string{"component": "central", "reason": "throughput_exceeded"}); v != 3 {
		t.Errorf("errors_total{reason=throughput_exceeded} = %v, want 3", v)
	}
	testutil.Eventually(t, 10*time.Second, "millis_behind_latest of the shard", func() bool {
		_, ok := metric(t, n.p, "vigil_millis_behind_latest", map[string]string{"component": "central", "shard": "shardId-000000000000"})
		return ok
	})
}
