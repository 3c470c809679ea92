package vpcflowparse

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
)

// TestConformance compares our events with other projects' expectations for the same
// records in /work/shared/conformance/vpcflow, read at test time (the
// elastic_integrations_* files are Elastic-licensed and never copied here).
func TestConformance(t *testing.T) {
	dir := conformancetest.FormatDir(t, "vpcflow")
	t.Run("elastic_integrations", func(t *testing.T) { elasticVPC(t, dir) })
	t.Run("vrl", func(t *testing.T) { vrlVPC(t, dir) })
	t.Run("otel", func(t *testing.T) { otelVPC(t, dir) })
}

// elasticAllow lists Elastic fields where we differ on purpose.
var elasticAllow = map[string]string{
	"event.original": "set by the pipeline, not the parser",
	"event.ingested": "set by the pipeline at ingest time",
	// Community ID (a hash of the 5-tuple) is an enrichment, not a parse result; it
	// is left to a processing step so every flow format gets it the same way.
	"network.community_id": "computed by enrichment, not the parser",
}

// The extra-samples file is from the ECS 1.10 era of the integration: event.type
// "flow", event.category "network_traffic" and outcome "allow"/"deny". We follow the
// current integration (v5-all-fields file): ["connection"], ["network"],
// "success"/"failure".
var elasticOldECS = map[string]bool{"event.type": true, "event.category": true, "event.outcome": true}

func elasticVPC(t *testing.T, dir string) {
	var s conformancetest.Score
	for _, name := range []string{"test-extra-samples", "test-v5-all-fields"} {
		var exp struct {
			IgnoreFields []string         `json:"ignore_fields"`
			Expected     []map[string]any `json:"expected"`
		}
		conformancetest.ReadJSON(t, filepath.Join(dir, "elastic_integrations_"+name+".elastic-integrations.expected.json"), &exp)
		lines := conformancetest.ReadLines(t, filepath.Join(dir, "elastic_integrations_"+name+".log"))
		if len(lines) != len(exp.Expected) {
			t.Fatalf("elastic %s: %d lines but %d expectations", name, len(lines), len(exp.Expected))
		}
		ignored := func(k string) bool {
			for _, ig := range exp.IgnoreFields {
				if k == ig || strings.HasPrefix(k, ig+".") {
					return true
				}
			}
			return false
		}
		for i, line := range lines {
			res := conformancetest.RunLine(New(Config{}), line)
			where := fmt.Sprintf("%s line %d", name, i+1)
			want := map[string]any{}
			conformancetest.Flatten("", exp.Expected[i], want)
			if len(res.Docs) != 1 {
				s.Missing += len(want)
				s.Note("%s: no event: %v", where, res.Errs)
				continue
			}
			for _, k := range conformancetest.SortedKeys(want) {
				if ignored(k) {
					continue
				}
				if _, ok := elasticAllow[k]; ok || (name == "test-extra-samples" && elasticOldECS[k]) {
					s.Allowed++
					continue
				}
				g, ok := res.Docs[0][k]
				s.Compare(where, k, want[k], g, ok)
			}
		}
	}
	s.Report(t, "vpcflow", "elastic_integrations")
}

// vrlMap maps parse_aws_vpc_flow_log's names (AWS's, with "_") to ours.
var vrlMap = map[string]string{
	"version": "aws.vpcflow.version", "account_id": "cloud.account.id", "interface_id": "aws.vpcflow.interface_id",
	"srcaddr": "source.address", "dstaddr": "destination.address", "srcport": "source.port",
	"dstport": "destination.port", "protocol": "network.iana_number", "packets": "network.packets",
	"bytes": "network.bytes", "start": "event.start", "end": "event.end", "action": "aws.vpcflow.action",
	"log_status": "aws.vpcflow.log_status", "vpc_id": "aws.vpcflow.vpc_id", "subnet_id": "aws.vpcflow.subnet_id",
	"instance_id": "aws.vpcflow.instance_id", "tcp_flags": "aws.vpcflow.tcp_flags", "type": "aws.vpcflow.type",
	"pkt_srcaddr": "aws.vpcflow.pkt_srcaddr", "pkt_dstaddr": "aws.vpcflow.pkt_dstaddr",
	"region": "cloud.region", "az_id": "cloud.availability_zone",
	"sublocation_type": "aws.vpcflow.sublocation_type", "sublocation_id": "aws.vpcflow.sublocation_id",
	"pkt_src_aws_service": "aws.vpcflow.pkt_src_service", "pkt_dst_aws_service": "aws.vpcflow.pkt_dst_service",
	"flow_direction": "network.direction", "traffic_path": "aws.vpcflow.traffic_path",
	"reject_reason": "aws.vpcflow.reject_reason", "resource_id": "aws.vpcflow.resource_id",
	"encryption_status": "aws.vpcflow.encryption_status", "interface_type": "aws.vpcflow.interface_type",
	"ecs_cluster_arn": "aws.vpcflow.ecs_cluster_arn", "ecs_cluster_name": "aws.vpcflow.ecs_cluster_name",
	"ecs_container_instance_arn": "aws.vpcflow.ecs_container_instance_arn",
	"ecs_container_instance_id":  "aws.vpcflow.ecs_container_instance_id",
	"ecs_container_id":           "aws.vpcflow.ecs_container_id", "ecs_second_container_id": "aws.vpcflow.ecs_second_container_id",
	"ecs_service_name": "aws.vpcflow.ecs_service_name", "ecs_task_definition_arn": "aws.vpcflow.ecs_task_definition_arn",
	"ecs_task_arn": "aws.vpcflow.ecs_task_arn", "ecs_task_id": "aws.vpcflow.ecs_task_id",
}

func vrlVPC(t *testing.T, dir string) {
	var exp struct {
		Cases []struct {
			Name     string         `json:"name"`
			Line     int            `json:"line"`
			Args     map[string]any `json:"args"`
			Expected map[string]any `json:"expected"`
			OKOnly   bool           `json:"expected_ok_only"`
		} `json:"cases"`
	}
	conformancetest.ReadJSON(t, filepath.Join(dir, "vrl_parse_aws_vpc_flow_log.vector.expected.json"), &exp)
	lines := conformancetest.ReadLines(t, filepath.Join(dir, "vrl_parse_aws_vpc_flow_log.log"))
	var s conformancetest.Score
	for _, c := range exp.Cases {
		var cfg Config
		if f, ok := c.Args["format"].(string); ok {
			cfg.Fields = strings.Fields(f)
		}
		res := conformancetest.RunLine(New(cfg), lines[c.Line-1])
		if len(res.Docs) != 1 {
			s.Missing += max(1, len(c.Expected))
			s.Note("%s: no event: %v", c.Name, res.Errs)
			continue
		}
		if c.OKOnly {
			s.Equal++ // the peer only asserts that the line parses
			continue
		}
		for _, k := range conformancetest.SortedKeys(c.Expected) {
			ours, ok := vrlMap[k]
			if !ok {
				t.Errorf("vrl: no mapping for %q", k)
				continue
			}
			w := c.Expected[k]
			if (k == "start" || k == "end") && w != nil {
				w = time.Unix(int64(w.(float64)), 0).UTC() // VRL keeps Unix seconds
			}
			g, present := res.Docs[0][ours]
			s.Compare(c.Name, k, w, g, present)
		}
	}
	s.Report(t, "vpcflow", "vrl")
}

// otelMap maps OTel attribute names (both the older and the renamed ones) to ours.
var otelMap = map[string]string{
	"cloud.provider": "cloud.provider", "cloud.account.id": "cloud.account.id",
	"aws.vpc.flow.version": "aws.vpcflow.version", "aws.vpc.flow.log.version": "aws.vpcflow.version",
	"aws.eni.id": "aws.vpcflow.interface_id", "network.interface.name": "aws.vpcflow.interface_id",
	"aws.vpc.flow.start": "event.start", "aws.vpc.flow.end": "event.end", "timeUnixNano": "@timestamp",
	"aws.vpc.flow.status": "aws.vpcflow.log_status", "aws.vpc.flow.log.status": "aws.vpcflow.log_status",
	"aws.vpc.flow.action": "aws.vpcflow.action",
	"source.address":      "source.address", "destination.address": "destination.address",
	"source.port": "source.port", "destination.port": "destination.port",
	"network.protocol.name": "network.transport", "aws.vpc.flow.packets": "network.packets",
	"aws.vpc.flow.bytes": "network.bytes",
}

func otelVPC(t *testing.T, dir string) {
	var s conformancetest.Score
	for _, name := range []string{"otel_valid_vpc_flow_log", "otel_valid_vpc_flow_log_multi", "otel_vpc_flow_log_too_few_fields"} {
		var exp struct {
			Expected map[string]any `json:"expected"`
		}
		conformancetest.ReadJSON(t, filepath.Join(dir, name+".otel.expected.json"), &exp)
		recs := otelRecords(exp.Expected)
		// The input is an S3 object: a header line, then records. One parser reads
		// the whole file, as a source would.
		p := New(Config{})
		var docs []map[string]any
		var errs []string
		for _, line := range conformancetest.ReadLines(t, filepath.Join(dir, name+".log")) {
			res := conformancetest.RunLine(p, line)
			docs = append(docs, res.Docs...)
			errs = append(errs, res.Errs...)
		}
		if name == "otel_vpc_flow_log_too_few_fields" {
			// OTel emits what it can map from a record shorter than its header; we
			// reject it (its columns cannot be trusted to line up) — allow-listed.
			if len(docs) != 0 || len(errs) != 1 {
				t.Errorf("%s: want the short record rejected, got %d events, errors %v", name, len(docs), errs)
			}
			for _, r := range recs {
				s.Allowed += len(r)
			}
			continue
		}
		if len(docs) != len(recs) {
			t.Errorf("%s: %d events for %d records (%v)", name, len(docs), len(recs), errs)
			continue
		}
		for i, r := range recs {
			for _, k := range conformancetest.SortedKeys(r) {
				ours, ok := otelMap[k]
				if !ok {
					t.Errorf("otel: no mapping for %q", k)
					continue
				}
				w := r[k]
				if (k == "aws.vpc.flow.start" || k == "aws.vpc.flow.end") && w != nil {
					var n int64
					fmt.Sscan(fmt.Sprint(w), &n)
					w = time.Unix(n, 0).UTC()
				}
				g, present := docs[i][ours]
				s.Compare(fmt.Sprintf("%s #%d", name, i+1), k, w, g, present)
			}
		}
	}
	s.Report(t, "vpcflow", "otel")
}
func otelRecords(doc map[string]any) []map[string]any {
	var out []map[string]any
	for _, rl := range asList(doc["resourceLogs"]) {
		rlm, _ := rl.(map[string]any)
		res := map[string]any{}
		if r, ok := rlm["resource"].(map[string]any); ok {
			kvs(r["attributes"], res)
		}
		for _, sl := range asList(rlm["scopeLogs"]) {
			slm, _ := sl.(map[string]any)
			for _, lr := range asList(slm["logRecords"]) {
				lrm, _ := lr.(map[string]any)
				rec := map[string]any{}
				for k, v := range res {
					rec[k] = v
				}
				kvs(lrm["attributes"], rec)
				if ts, ok := lrm["timeUnixNano"].(string); ok {
					var n int64
					fmt.Sscan(ts, &n)
					rec["timeUnixNano"] = time.Unix(0, n).UTC()
				}
				out = append(out, rec)
			}
		}
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

func kvs(v any, into map[string]any) {
	for _, kv := range asList(v) {
		m, _ := kv.(map[string]any)
		k, _ := m["key"].(string)
		into[k] = otelValue(m["value"])
	}
}

func otelValue(v any) any {
	m, _ := v.(map[string]any)
	for typ, x := range m {
		switch typ {
		case "stringValue", "boolValue":
			return x
		case "intValue", "doubleValue":
			return fmt.Sprint(x) // protobuf JSON writes 64-bit ints as strings
		case "arrayValue":
			am, _ := x.(map[string]any)
			var l []any
			for _, e := range asList(am["values"]) {
				l = append(l, otelValue(e))
			}
			return l
		}
	}
	return nil
}
