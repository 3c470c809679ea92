package apacheparse

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/accesslog"
	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
)

// Peer field → Vigil ECS path. "@time" means e.Time; "" means the peer field has no
// counterpart and is reported as allowed with the reason in allowReason.
var (
	// VRL parse_apache_log / parse_common_log: flat names.
	vrlMap = map[string]string{
		"host": "source.address", "identity": "apache.access.identity", "user": "user.name",
		"timestamp": "@time", "method": "http.request.method", "path": "url.original",
		"protocol": "http.version", "status": "http.response.status_code",
		"size": "http.response.body.bytes", "referrer": "http.request.referrer",
		"agent": "user_agent.original", "message": "",
	}
	// Fluentd apache / apache2 parsers.
	fluentdMap = map[string]string{
		"host": "source.address", "user": "user.name", "method": "http.request.method",
		"path": "url.original", "code": "http.response.status_code",
		"size": "http.response.body.bytes", "referer": "http.request.referrer",
		"agent": "user_agent.original",
	}
	// Filebeat and logstash-patterns-core already use ECS names; only the time differs.
	ecsMap = map[string]string{"@timestamp": "@time", "timestamp": "@time", "message": ""}
)

// allowReason is the allow-list: differences we keep on purpose, with why. It returns
// "" when the peer value must match.
func allowReason(peer, key string, want any) string {
	switch {
	case key == "message" && peer == "vrl":
		// VRL returns the raw request line; we split it into method/url/version and
		// keep the whole line in event.original.
		return "request line kept as http.request.method + url.original + http.version"
	case key == "message" && peer == "logstash":
		return "grok appends the original line to message; ours is event.original"
	case want == "-" && (key == "user.name" || key == "user" || key == "http.request.referrer" || key == "user_agent.original"):
		// The 7.x Filebeat snapshot and Fluentd's common-log parser keep "-"; later
		// Filebeat versions, VRL and Fluentd apache2 drop it: "-" means absent.
		return `"-" placeholder is dropped (field absent)`
	case want == "" && (key == "http.request.referrer" || key == "referrer" || key == "agent" || key == "user_agent.original"):
		return "empty quoted referrer/user agent is dropped (field absent)"
	}
	return ""
}

func TestConformance(t *testing.T) {
	dir := filepath.Join(conformancetest.Root(t), "apache")
	total := &conformancetest.Tally{}
	run := func(name string, fn func(*conformancetest.Tally)) {
		tl := &conformancetest.Tally{}
		fn(tl)
		t.Logf("apache / %s: equal %d, different %d, missing %d, allowed %d, rejects matched %d, rejects missed %d",
			name, tl.Equal, tl.Different, tl.Missing, tl.Allowed, tl.RejectsOK, tl.RejectsMissed)
		for _, n := range tl.Notes {
			t.Logf("  %s", n)
		}
		total.Equal += tl.Equal
		total.Different += tl.Different
		total.Missing += tl.Missing
		total.RejectsMissed += tl.RejectsMissed
	}

	run("elastic/beats", func(tl *conformancetest.Tally) {
		f := conformancetest.ReadObject(t, filepath.Join(dir, "elastic_beats_test.elastic-beats.expected.json"))
		input, err := os.ReadFile(filepath.Join(dir, "elastic_beats_test.log"))
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimRight(input, "\n"), []byte("\n"))
		exp := f["expected"].([]any)
		if len(exp) != len(lines) {
			t.Fatalf("beats: %d expectations for %d lines", len(exp), len(lines))
		}
		ign, _ := f["ignore_fields"].([]any)
		for i, w := range exp {
			compare(tl, "beats", lines[i], w.(map[string]any), ecsMap, ign, nil)
		}
	})

	run("fluent/fluentd", func(tl *conformancetest.Tally) {
		f := conformancetest.ReadObject(t, filepath.Join(dir, "fluentd_parser_apache.fluentd.expected.json"))
		for _, c := range f["cases"].([]any) {
			c := c.(map[string]any)
			if c["parser"] == "apache_error" {
				continue // Apache error log: not the access-log format this parser reads
			}
			want := c["expected_record"].(map[string]any)
			if ts, ok := c["expected_time"].(string); ok && !strings.Contains(ts, "local") {
				want["@expected_time"] = ts
			}
			compare(tl, "fluentd", conformancetest.CaseInput(t, c), want, fluentdMap, nil, nil)
		}
	})

	run("logstash-patterns-core", func(tl *conformancetest.Tally) {
		f := conformancetest.ReadObject(t, filepath.Join(dir, "logstash_HTTPD_COMBINEDLOG.logstash-patterns-core.expected.json"))
		for _, c := range f["cases"].([]any) {
			c := c.(map[string]any)
			want := map[string]any{}
			conformancetest.FlattenKeepEmpty("", c["expected"], want)
			absent, _ := c["expected_absent_keys"].([]any)
			for _, k := range absent {
				want[k.(string)] = nil
			}
			compare(tl, "logstash", conformancetest.CaseInput(t, c), want, ecsMap, nil, nil)
		}
	})

	for _, file := range []string{"vrl_parse_apache_log.vector.expected.json", "vrl_parse_common_log.vector.expected.json"} {
		run("vectordotdev/vrl "+file, func(tl *conformancetest.Tally) {
			f := conformancetest.ReadObject(t, filepath.Join(dir, file))
			for _, c := range f["cases"].([]any) {
				c := c.(map[string]any)
				args, _ := c["args"].(map[string]any)
				if args["format"] == "error" {
					continue // Apache error log: not the access-log format this parser reads
				}
				in := conformancetest.CaseInput(t, c)
				if _, bad := c["expected_error"]; bad {
					expectReject(tl, in)
					continue
				}
				want := c["expected"].(map[string]any)
				if len(want) == 0 {
					// VRL accepts lines made only of "-" placeholders and returns {}.
					// We reject them: with no time and no request there is no event.
					tl.Allowed++
					tl.Note("allowed: %q rejected by us, VRL returns {}", in)
					continue
				}
				if p, ok := want["protocol"].(string); ok {
					want["protocol"] = strings.TrimPrefix(p, "HTTP/")
				}
				compare(tl, "vrl", in, want, vrlMap, nil, nil)
			}
		})
	}

	pct := 100.0
	if n := total.Comparable(); n > 0 {
		pct = 100 * float64(total.Equal) / float64(n)
	}
	t.Logf("apache total: %.1f%% of %d comparable fields equal", pct, total.Comparable())
	if pct < 95 {
		t.Errorf("conformance %.1f%% < 95%%", pct)
	}
	if total.RejectsMissed > 0 {
		t.Errorf("%d inputs rejected by a peer were accepted", total.RejectsMissed)
	}
}

func expectReject(tl *conformancetest.Tally, in []byte) {
	o := conformancetest.RunOne(New(), in)
	if o.Err != nil {
		tl.RejectsOK++
		return
	}
	tl.RejectsMissed++
	tl.Note("peer rejects %q, we accepted it", in)
}

// compare runs one input and checks every expected peer field.
func compare(tl *conformancetest.Tally, peer string, in []byte, want map[string]any, mapping map[string]string, ign []any, _ any) {
	o := conformancetest.RunOne(New(), in)
	if o.Err != nil {
		tl.Missing += len(want)
		tl.Note("%s: %q rejected: %v", peer, in, o.Err)
		return
	}
	for key, wv := range want {
		if conformancetest.Ignored(key, ign) {
			continue
		}
		if key == "@expected_time" {
			tl.Check(peer, in, key, conformancetest.SameInstant(wv.(string), o.Time), wv, o.Time)
			continue
		}
		if r := allowReason(peer, key, wv); r != "" {
			if gv, ok := o.Fields[conformancetest.Mapped(mapping, key)]; ok && conformancetest.Norm(gv) == conformancetest.Norm(wv) {
				tl.Equal++
			} else {
				tl.Allowed++
			}
			continue
		}
		target := conformancetest.Mapped(mapping, key)
		switch target {
		case "":
			tl.Allowed++
			continue
		case "@time":
			s, _ := wv.(string)
			if t, ok := accesslog.ParseTime([]byte(s)); ok {
				tl.Check(peer, in, key, t.Equal(o.Time), wv, o.Time)
			} else {
				tl.Check(peer, in, key, conformancetest.SameInstant(s, o.Time), wv, o.Time)
			}
			continue
		}
		gv, ok := o.Fields[target]
		switch {
		case wv == nil && !ok:
			tl.Equal++
		case !ok:
			tl.Missing++
			tl.Note("%s: %q: %s (%s) missing, want %v", peer, in, key, target, wv)
		default:
			tl.Check(peer, in, key, conformancetest.Norm(gv) == conformancetest.Norm(wv), wv, gv)
		}
	}
}
