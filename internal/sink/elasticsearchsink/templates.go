package elasticsearchsink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/sink/deliver"
)

// BuiltinDatasets are the datasets of Vigil's built-in parsers, each of which gets
// an index template when install_templates is set.
var BuiltinDatasets = []string{
	"apache.access", "aws.alb", "aws.cloudfront", "aws.cloudtrail", "aws.cloudwatch_logs",
	"aws.vpcflow", "nginx.access", "syslog",
}

// templatePriority is above Elasticsearch's built-in logs-*-* template (100), so
// that ours applies to the indices this sink writes.
const templatePriority = 200

// Template is one composable index template to install.
type Template struct {
	Name string
	Body []byte
}

// Templates returns the index templates for the built-in datasets: their index
// patterns come from the index setting (fields and time parts become wildcards),
// their mappings are the ECS fields the parsers set. With op_type create they
// declare data streams.
func (s *Sink) Templates() []Template {
	byDataset := strings.Contains(s.cfg.Index, "{event.dataset}")
	var out []Template
	add := func(name, dataset string) {
		body := map[string]any{
			"index_patterns": []string{s.indexPattern(dataset)},
			"priority":       templatePriority,
			"template":       map[string]any{"mappings": ecsMappings(s.flavour)},
			"_meta":          map[string]any{"managed_by": "vigil", "dataset": dataset},
		}
		if s.cfg.OpType == "create" {
			body["data_stream"] = map[string]any{}
		}
		b, _ := json.Marshal(body)
		out = append(out, Template{Name: name, Body: b})
	}
	if !byDataset {
		add("vigil-ecs", "")
		return out
	}
	for _, d := range BuiltinDatasets {
		add("vigil-"+d, d)
	}
	return out
}

// indexPattern is the index setting rendered for dataset up to its first variable
// part, followed by '*'.
func (s *Sink) indexPattern(dataset string) string {
	var b []byte
	for _, p := range s.index.parts {
		switch {
		case p.lit != "":
			b = append(b, p.lit...)
		case p.field >= 0 && s.index.fields[p.field] == "event.dataset" && dataset != "":
			b = appendValue(b, []byte(dataset))
		default:
			return string(b) + "*"
		}
	}
	return string(b)
}

func ecsMappings(flavour string) map[string]any {
	kw := map[string]any{"type": "keyword", "ignore_above": 1024}
	ip := map[string]any{"type": "ip"}
	long := map[string]any{"type": "long"}
	date := map[string]any{"type": "date"}
	text := map[string]any{"type": "match_only_text"}
	if flavour == FlavourOpenSearch {
		text = map[string]any{"type": "text"} // OpenSearch has no match_only_text
	}
	obj := func(fields map[string]any) map[string]any { return map[string]any{"properties": fields} }
	endpoint := obj(map[string]any{"ip": ip, "port": long, "address": kw, "bytes": long, "packets": long, "domain": kw})
	return map[string]any{
		"dynamic_templates": []any{
			map[string]any{"strings_as_keyword": map[string]any{"match_mapping_type": "string", "mapping": kw}},
		},
		"properties": map[string]any{
			"@timestamp": date,
			"message":    text,
			"event": obj(map[string]any{
				"id": kw, "dataset": kw, "module": kw, "kind": kw, "category": kw, "type": kw, "action": kw,
				"outcome": kw, "provider": kw, "created": date, "ingested": date, "duration": long,
				"original": map[string]any{"type": "keyword", "index": false, "doc_values": false},
			}),
			"source": endpoint, "destination": endpoint, "client": endpoint, "server": endpoint,
			"related":    obj(map[string]any{"ip": ip, "user": kw, "hosts": kw}),
			"user":       obj(map[string]any{"name": kw, "id": kw, "domain": kw}),
			"user_agent": obj(map[string]any{"original": kw}),
			"url":        obj(map[string]any{"original": kw, "path": kw, "query": kw, "domain": kw, "scheme": kw}),
			"http": obj(map[string]any{
				"version":  kw,
				"request":  obj(map[string]any{"method": kw, "bytes": long, "referrer": kw}),
				"response": obj(map[string]any{"status_code": long, "bytes": long}),
			}),
			"cloud": obj(map[string]any{"provider": kw, "region": kw, "account": obj(map[string]any{"id": kw})}),
			"host":  obj(map[string]any{"name": kw, "hostname": kw, "ip": ip}),
			"log":   obj(map[string]any{"level": kw, "syslog": obj(map[string]any{"priority": long})}),
			"agent": obj(map[string]any{"type": kw, "name": kw, "version": kw}),
			"error": obj(map[string]any{"message": text}),
		},
	}
}

// installTemplates puts every template, retrying with backoff until each is
// accepted or the sink stops; deliveries wait for it so that no index is created
// with dynamic mappings first.
func (s *Sink) installTemplates(ctx context.Context) {
	defer close(s.templates)
	for _, t := range s.Templates() {
		for attempt := 0; ; attempt++ {
			err := s.putTemplate(ctx, t)
			if err == nil {
				break
			}
			s.counters.Error("template")
			d := deliver.Backoff(s.cfg.Retry).Delay(attempt, 0)
			s.log.Warn("elasticsearch: installing index template failed; retrying", "template", t.Name, "in", d.Round(time.Millisecond), "err", err)
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return
			}
		}
	}
}

func (s *Sink) putTemplate(ctx context.Context, t Template) error {
	var last error
	for k := range s.urls {
		base := s.bases[(int(s.next.Load())+k)%len(s.bases)]
		target := base.JoinPath("_index_template", url.PathEscape(t.Name))
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, target.String(), bytes.NewReader(t.Body))
		if err != nil {
			return err
		}
		s.setHeaders(req.Header)
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.client.Do(req)
		if err != nil {
			last = err
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		last = fmt.Errorf("PUT %s: HTTP %d: %s", target.Redacted(), resp.StatusCode, snippet(data))
		if resp.StatusCode < 500 {
			return last
		}
	}
	return last
}
