package apacheparse

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/accesslog"
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
	dir := filepath.Join(conformanceDir(t), "apache")
	total := &tally{}
	run := func(name string, fn func(*tally)) {
		tl := &tally{}
		fn(tl)
		t.Logf("apache / %s: equal %d, different %d, missing %d, allowed %d, rejects matched %d, rejects missed %d",
			name, tl.equal, tl.different, tl.missing, tl.allowed, tl.rejectsOK, tl.rejectsMissed)
		for _, n := range tl.notes {
			t.Logf("  %s", n)
		}
		total.equal += tl.equal
		total.different += tl.different
		total.missing += tl.missing
		total.rejectsMissed += tl.rejectsMissed
	}

	run("elastic/beats", func(tl *tally) {
		f := readJSON(t, filepath.Join(dir, "elastic_beats_test.elastic-beats.expected.json"))
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

	run("fluent/fluentd", func(tl *tally) {
		f := readJSON(t, filepath.Join(dir, "fluentd_parser_apache.fluentd.expected.json"))
		for _, c := range f["cases"].([]any) {
			c := c.(map[string]any)
			if c["parser"] == "apache_error" {
				continue // Apache error log: not the access-log format this parser reads
			}
			want := c["expected_record"].(map[string]any)
			if ts, ok := c["expected_time"].(string); ok && !strings.Contains(ts, "local") {
				want["@expected_time"] = ts
			}
			compare(tl, "fluentd", caseInput(t, c), want, fluentdMap, nil, nil)
		}
	})

	run("logstash-patterns-core", func(tl *tally) {
		f := readJSON(t, filepath.Join(dir, "logstash_HTTPD_COMBINEDLOG.logstash-patterns-core.expected.json"))
		for _, c := range f["cases"].([]any) {
			c := c.(map[string]any)
			want := map[string]any{}
			flatten("", c["expected"], want)
			absent, _ := c["expected_absent_keys"].([]any)
			for _, k := range absent {
				want[k.(string)] = nil
			}
			compare(tl, "logstash", caseInput(t, c), want, ecsMap, nil, nil)
		}
	})

	for _, file := range []string{"vrl_parse_apache_log.vector.expected.json", "vrl_parse_common_log.vector.expected.json"} {
		run("vectordotdev/vrl "+file, func(tl *tally) {
			f := readJSON(t, filepath.Join(dir, file))
			for _, c := range f["cases"].([]any) {
				c := c.(map[string]any)
				args, _ := c["args"].(map[string]any)
				if args["format"] == "error" {
					continue // Apache error log: not the access-log format this parser reads
				}
				in := caseInput(t, c)
				if _, bad := c["expected_error"]; bad {
					expectReject(tl, in)
					continue
				}
				want := c["expected"].(map[string]any)
				if len(want) == 0 {
					// VRL accepts lines made only of "-" placeholders and returns {}.
					// We reject them: with no time and no request there is no event.
					tl.allowed++
					tl.note("allowed: %q rejected by us, VRL returns {}", in)
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
	if n := total.comparable(); n > 0 {
		pct = 100 * float64(total.equal) / float64(n)
	}
	t.Logf("apache total: %.1f%% of %d comparable fields equal", pct, total.comparable())
	if pct < 95 {
		t.Errorf("conformance %.1f%% < 95%%", pct)
	}
	if total.rejectsMissed > 0 {
		t.Errorf("%d inputs rejected by a peer were accepted", total.rejectsMissed)
	}
}

func expectReject(tl *tally, in []byte) {
	o := runOne(New(), in)
	if o.err != nil {
		tl.rejectsOK++
		return
	}
	tl.rejectsMissed++
	tl.note("peer rejects %q, we accepted it", in)
}

// compare runs one input and checks every expected peer field.
func compare(tl *tally, peer string, in []byte, want map[string]any, mapping map[string]string, ign []any, _ any) {
	o := runOne(New(), in)
	if o.err != nil {
		tl.missing += len(want)
		tl.note("%s: %q rejected: %v", peer, in, o.err)
		return
	}
	for key, wv := range want {
		if ignored(key, ign) {
			continue
		}
		if key == "@expected_time" {
			check(tl, peer, in, key, sameTime(wv.(string), o.time), wv, o.time)
			continue
		}
		if r := allowReason(peer, key, wv); r != "" {
			if gv, ok := o.fields[mapped(mapping, key)]; ok && norm(gv) == norm(wv) {
				tl.equal++
			} else {
				tl.allowed++
			}
			continue
		}
		target := mapped(mapping, key)
		switch target {
		case "":
			tl.allowed++
			continue
		case "@time":
			s, _ := wv.(string)
			if t, ok := accesslog.ParseTime([]byte(s)); ok {
				check(tl, peer, in, key, t.Equal(o.time), wv, o.time)
			} else {
				check(tl, peer, in, key, sameTime(s, o.time), wv, o.time)
			}
			continue
		}
		gv, ok := o.fields[target]
		switch {
		case wv == nil && !ok:
			tl.equal++
		case !ok:
			tl.missing++
			tl.note("%s: %q: %s (%s) missing, want %v", peer, in, key, target, wv)
		default:
			check(tl, peer, in, key, norm(gv) == norm(wv), wv, gv)
		}
	}
}

func mapped(m map[string]string, key string) string {
	if t, ok := m[key]; ok {
		return t
	}
	return key
}

func check(tl *tally, peer string, in []byte, key string, ok bool, want, got any) {
	if ok {
		tl.equal++
		return
	}
	tl.different++
	tl.note("%s: %q: %s: want %v, got %v", peer, in, key, want, got)
}
