package elasticsearchsink

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/sink/deliver"
)

// BuiltinDatasets are the datasets of Vigil's built-in parsers and detectors, each
// of which gets an index template when install_templates is set. Their mappings are
// mappings/<dataset>.json over the shared ECS fields of mappings/ecs.json.
var BuiltinDatasets = []string{
	"apache.access", "aws.cloudfront_logs", "aws.cloudtrail", "aws.cloudwatch_logs",
	"aws.elb_logs", "aws.vpcflow", "nginx.access", "syslog", "vigil.alert",
}

// mappingFiles are the index mappings, written in Elasticsearch's field types with
// dotted field names: ecs.json holds the ECS fields every dataset shares (and the
// dynamic template that makes other strings keywords), <dataset>.json the fields of
// one dataset.
//
//go:embed mappings/*.json
var mappingFiles embed.FS

// templatePriority is above Elasticsearch's built-in logs-*-* template (100), so
// that ours applies to the indices this sink writes.
const templatePriority = 200

// fallbackPriority is that of the template for datasets without one of their own.
const fallbackPriority = 90

// Template is one composable index template to install.
type Template struct {
	Name string
	Body []byte
}

// Templates returns the index templates for the built-in datasets: their index
// patterns come from the index setting (fields and time parts become wildcards),
// their mappings are the ECS fields the parsers set. With op_type create they
// declare data streams. Datasets without a template of their own get vigil-ecs,
// the shared ECS fields, at a lower priority. An index setting without
// {event.dataset} gets only vigil-ecs, with the fields of every dataset.
func (s *Sink) Templates() []Template {
	byDataset := strings.Contains(s.cfg.Index, "{event.dataset}")
	var out []Template
	add := func(name, dataset string, mappings map[string]any) {
		pattern, priority := s.indexPattern(dataset), templatePriority
		if byDataset && dataset == "" {
			pattern, priority = s.indexWildcard(), fallbackPriority
		}
		body := map[string]any{
			"index_patterns": []string{pattern},
			"priority":       priority,
			"template":       map[string]any{"mappings": mappings},
			"_meta":          map[string]any{"managed_by": "vigil", "dataset": dataset},
		}
		if s.cfg.OpType == "create" {
			body["data_stream"] = map[string]any{}
		}
		b, _ := json.Marshal(body)
		out = append(out, Template{Name: name, Body: b})
	}
	if !byDataset {
		add("vigil-ecs", "", Mappings(s.flavour, BuiltinDatasets...))
		return out
	}
	for _, d := range BuiltinDatasets {
		add("vigil-"+d, d, Mappings(s.flavour, d))
	}
	// Every other dataset (a source's own name, a custom parser's) gets the shared
	// ECS fields and, with op_type create, a data stream too. Below Elasticsearch's
	// built-in logs-*-* template (100), which keeps the indices it matches.
	add("vigil-ecs", "", Mappings(s.flavour))
	return out
}

// Mappings returns the index mappings of the given datasets (their fields over the
// shared ECS ones) for a flavour: OpenSearch has text where Elasticsearch has
// match_only_text, and flat_object where it has flattened.
func Mappings(flavour string, datasets ...string) map[string]any {
	props := map[string]any{}
	var dynamic []any
	for _, name := range append([]string{"ecs"}, datasets...) {
		data, err := mappingFiles.ReadFile("mappings/" + name + ".json")
		if err != nil {
			continue // a dataset without fields of its own
		}
		var m struct {
			Dynamic    []any          `json:"dynamic_templates"`
			Properties map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			panic(fmt.Sprintf("elasticsearchsink: mappings/%s.json: %v", name, err)) // embedded; a test reads each
		}
		dynamic = append(dynamic, m.Dynamic...)
		for k, v := range m.Properties {
			props[k] = v
		}
	}
	if flavour == FlavourOpenSearch {
		for _, v := range props {
			f := v.(map[string]any)
			switch f["type"] {
			case "match_only_text":
				f["type"] = "text"
			case "flattened":
				f["type"] = "flat_object"
			}
		}
	}
	// The dataset-specific dynamic templates come first: the first match wins.
	for i, j := 0, len(dynamic)-1; i < j; i, j = i+1, j-1 {
		dynamic[i], dynamic[j] = dynamic[j], dynamic[i]
	}
	return map[string]any{"dynamic_templates": dynamic, "properties": props}
}

// indexWildcard is the index setting with each variable part a '*'.
func (s *Sink) indexWildcard() string {
	var b []byte
	for _, p := range s.index.parts {
		switch {
		case p.lit != "":
			b = append(b, p.lit...)
		case len(b) == 0 || b[len(b)-1] != '*':
			b = append(b, '*')
		}
	}
	return string(b)
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
