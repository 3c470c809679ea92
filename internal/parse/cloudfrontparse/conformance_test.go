package cloudfrontparse

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
)

// TestConformance compares our events with other projects' expectations for the same
// lines in /work/shared/conformance/cloudfront, read at test time (the
// elastic_integrations_* files are Elastic-licensed and never copied here).
func TestConformance(t *testing.T) {
	dir := conformancetest.FormatDir(t, "cloudfront")
	t.Run("elastic_integrations", func(t *testing.T) { elasticCF(t, dir) })
	t.Run("logstash", func(t *testing.T) { logstashCF(t, dir) })
}

// elasticAllow lists Elastic fields where we differ on purpose ("line|field", "*" for
// every line).
var elasticAllow = map[string]string{
	"*|event.original": "set by the pipeline, not the parser",
	// "localhost:8080" in x-forwarded-for is not an address; Elastic's pipeline turns
	// anything starting with "localhost" into 127.0.0.1 (the README calls it a
	// resolution artefact). We keep only values that are IP addresses.
	"13|network.forwarded_ip": "non-IP x-forwarded-for entries are dropped, not resolved",
	"13|related.ip":           "follows from network.forwarded_ip",
}

func elasticCF(t *testing.T, dir string) {
	var exp struct {
		IgnoreFields []string         `json:"ignore_fields"`
		Expected     []map[string]any `json:"expected"`
	}
	conformancetest.ReadJSON(t, filepath.Join(dir, "elastic_integrations_test-cloudfront.elastic-integrations.expected.json"), &exp)
	lines := conformancetest.ReadLines(t, filepath.Join(dir, "elastic_integrations_test-cloudfront.log"))
	if len(lines) != len(exp.Expected) {
		t.Fatalf("elastic: %d lines but %d expectations", len(lines), len(exp.Expected))
	}
	ignored := func(k string) bool {
		for _, ig := range exp.IgnoreFields {
			if k == ig || strings.HasPrefix(k, ig+".") {
				return true
			}
		}
		return false
	}
	// One parser for the whole file: the #Fields header sets the layout of the lines
	// that follow.
	p := New(Config{})
	var s conformancetest.Score
	for i, line := range lines {
		res := conformancetest.RunLine(p, line)
		where := fmt.Sprintf("line %d", i+1)
		if exp.Expected[i] == nil {
			// Elastic drops header lines; we must not emit anything for them either.
			if len(res.Docs) != 0 || len(res.Errs) != 0 {
				s.Different++
				s.Note("%s: peer drops the line, we made %d events, errors %v", where, len(res.Docs), res.Errs)
			} else {
				s.Equal++
			}
			continue
		}
		want := map[string]any{}
		conformancetest.Flatten("", exp.Expected[i], want)
		if len(res.Docs) != 1 {
			s.Missing += len(want)
			s.Note("%s: no event: %v", where, res.Errs)
			continue
		}
		got := res.Docs[0]
		for _, k := range conformancetest.SortedKeys(want) {
			if ignored(k) {
				continue
			}
			if _, ok := elasticAllow["*|"+k]; ok {
				s.Allowed++
				continue
			}
			if _, ok := elasticAllow[fmt.Sprintf("%d|%s", i+1, k)]; ok {
				s.Allowed++
				continue
			}
			g, ok := got[k]
			s.Compare(where, k, want[k], g, ok)
		}
	}
	s.Report(t, "cloudfront", "elastic_integrations")
}

// logstashMap maps the CLOUDFRONT_ACCESS_LOG grok captures (ECS-v1 mode) to our paths
// where the names differ; other keys are compared as they are.
var logstashMap = map[string]string{
	"aws.cloudfront.http.request.size":           "http.response.body.bytes", // sc-content-len
	"timestamp":                                  "@timestamp",
	"aws.cloudfront.x_edge_location":             "aws.cloudfront.edge_location",
	"aws.cloudfront.x_edge_result_type":          "aws.cloudfront.edge_result_type",
	"aws.cloudfront.x_edge_request_id":           "http.request.id",
	"aws.cloudfront.x_edge_response_result_type": "aws.cloudfront.edge_response_result_type",
	"aws.cloudfront.x_edge_detailed_result_type": "aws.cloudfront.edge_detailed_result_type",
	"aws.cloudfront.http.request.host":           "destination.domain",
	"aws.cloudfront.ssl_protocol":                "tls.version", // compared after "TLSv" is stripped
	"aws.cloudfront.time_taken":                  "event.duration",
	"aws.cloudfront.time_to_first_byte":          "aws.cloudfront.time_to_first_byte",
	"destination.bytes":                          "http.response.bytes",
	"source.bytes":                               "http.request.bytes",
	"http.request.mime_type":                     "http.response.mime_type",
	"url.domain":                                 "aws.cloudfront.domain",
}

// logstashAllow: fields where we follow Elastic's integration instead of logstash.
var logstashAllow = map[string]string{
	// CloudFront writes the user agent URL-encoded; Elastic decodes it once, logstash
	// keeps it raw.
	"user_agent.original": "decoded once, like Elastic",
}

func logstashCF(t *testing.T, dir string) {
	var exp struct {
		Cases []struct {
			Name     string         `json:"name"`
			Line     int            `json:"line"`
			Expected map[string]any `json:"expected"`
			Absent   []string       `json:"expected_absent_keys"`
		} `json:"cases"`
	}
	conformancetest.ReadJSON(t, filepath.Join(dir, "logstash_CLOUDFRONT_ACCESS_LOG.logstash-patterns-core.expected.json"), &exp)
	lines := conformancetest.ReadLines(t, filepath.Join(dir, "logstash_CLOUDFRONT_ACCESS_LOG.log"))
	var s conformancetest.Score
	for _, c := range exp.Cases {
		res := conformancetest.RunLine(New(Config{}), lines[c.Line-1])
		if len(res.Docs) != 1 {
			s.Missing++
			s.Note("%s: no event: %v", c.Name, res.Errs)
			continue
		}
		got := res.Docs[0]
		want := map[string]any{}
		conformancetest.Flatten("", c.Expected, want)
		for _, k := range conformancetest.SortedKeys(want) {
			if _, ok := logstashAllow[k]; ok {
				s.Allowed++
				continue
			}
			ours := k
			if m, ok := logstashMap[k]; ok {
				ours = m
			}
			w := want[k]
			switch k {
			case "timestamp":
				w = strings.Replace(w.(string), "\t", "T", 1) // date<TAB>time as captured
			case "aws.cloudfront.ssl_protocol":
				w = strings.TrimPrefix(w.(string), "TLSv")
			case "aws.cloudfront.time_taken":
				w = fmt.Sprint(int64(w.(float64)*1e9 + 0.5)) // seconds → our nanoseconds
			}
			g, ok := got[ours]
			s.Compare(c.Name, k, w, g, ok)
		}
		for _, k := range c.Absent {
			if _, ok := got[k]; ok {
				s.Different++
			} else {
				s.Equal++
			}
		}
	}
	s.Report(t, "cloudfront", "logstash")
}
