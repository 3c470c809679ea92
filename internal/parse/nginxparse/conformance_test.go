package nginxparse

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/accesslog"
)

// Peer field → Vigil ECS path. "@time" means e.Time; "" means the peer field has no
// counterpart: it is counted as allowed, for the reason given beside it.
var (
	vrlMap = map[string]string{
		// format=combined
		"client": "source.address", "user": "user.name", "timestamp": "@time",
		"status": "http.response.status_code", "size": "http.response.body.bytes",
		"referer": "http.request.referrer", "agent": "user_agent.original",
		"request":     "", // split into http.request.method / url.original / http.version
		"compression": "", // VRL's name for a trailing quoted field; we tolerate it uninterpreted
		// format=main
		"remote_addr": "source.address", "remote_user": "user.name",
		"body_bytes_size": "http.response.body.bytes", "http_referer": "http.request.referrer",
		"http_user_agent":      "user_agent.original",
		"http_x_forwarded_for": "", // trailing field tolerated, not interpreted (may be any $variable)
		// format=ingress_upstreaminfo: ingress-nginx extension fields are not parsed.
		"request_length": "", "request_time": "", "proxy_upstream_name": "",
		"proxy_alternative_upstream_name": "", "upstream_addr": "",
		"upstream_response_length": "", "upstream_response_time": "", "upstream_status": "",
		"req_id": "",
	}
	fluentdMap = map[string]string{
		"remote": "source.address",
		"host":   "", // Fluentd's test format has $host where combined has the ident "-"
		"user":   "user.name", "method": "http.request.method", "path": "url.original",
		"code": "http.response.status_code", "size": "http.response.body.bytes",
		"referer": "http.request.referrer", "agent": "user_agent.original",
		"http_x_forwarded_for": "", // tolerated, not interpreted
	}
	ecsMap = map[string]string{"@timestamp": "@time"}
)

// allowReason is the allow-list of deliberate differences; "" means the value must match.
func allowReason(peer, key string, want any) string {
	switch {
	case want == "-" && (key == "user" || key == "referer" || key == "agent" || key == "user.name" || key == "http.request.referrer" || key == "user_agent.original"):
		return `"-" placeholder is dropped (field absent), as the Filebeat module does`
	case want == "" && (key == "referer" || key == "agent" || key == "http_referer" || key == "http_user_agent"):
		return "empty quoted referrer/user agent is dropped (field absent)"
	}
	return ""
}

func TestConformance(t *testing.T) {
	dir := filepath.Join(conformanceDir(t), "nginx")
	total := &tally{}
	run := func(name string, fn func(*tally)) {
		tl := &tally{}
		fn(tl)
		t.Logf("nginx / %s: equal %d, different %d, missing %d, allowed %d, rejects matched %d, rejects missed %d",
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
			want := w.(map[string]any)
			// event.original is written by the pipeline from the record; check it
			// is the line itself rather than looking for it in the parser's output.
			if orig, ok := want["event.original"].(string); ok {
				check(tl, "beats", lines[i], "event.original", orig == string(lines[i]), orig, string(lines[i]))
				delete(want, "event.original")
			}
			compare(tl, "beats", lines[i], want, ecsMap, ign)
		}
	})

	run("fluent/fluentd", func(tl *tally) {
		f := readJSON(t, filepath.Join(dir, "fluentd_parser_nginx.fluentd.expected.json"))
		for _, c := range f["cases"].([]any) {
			c := c.(map[string]any)
			want := c["expected_record"].(map[string]any)
			if ts, ok := c["expected_time"].(string); ok && !strings.Contains(ts, "local") {
				want["@expected_time"] = ts
			}
			compare(tl, "fluentd", caseInput(t, c), want, fluentdMap, nil)
		}
	})

	run("vectordotdev/vrl", func(tl *tally) {
		f := readJSON(t, filepath.Join(dir, "vrl_parse_nginx_log.vector.expected.json"))
		for _, c := range f["cases"].([]any) {
			c := c.(map[string]any)
			in := caseInput(t, c)
			if _, bad := c["expected_error"]; bad {
				expectReject(tl, in)
				continue
			}
			args, _ := c["args"].(map[string]any)
			if args["format"] == "error" {
				continue // nginx error log: not the access-log format this parser reads
			}
			compare(tl, "vrl", in, c["expected"].(map[string]any), vrlMap, nil)
		}
	})

	pct := 100.0
	if n := total.comparable(); n > 0 {
		pct = 100 * float64(total.equal) / float64(n)
	}
	t.Logf("nginx total: %.1f%% of %d comparable fields equal", pct, total.comparable())
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
func compare(tl *tally, peer string, in []byte, want map[string]any, mapping map[string]string, ign []any) {
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
		target := mapped(mapping, key)
		if r := allowReason(peer, key, wv); r != "" {
			if gv, ok := o.fields[target]; ok && norm(gv) == norm(wv) {
				tl.equal++
			} else {
				tl.allowed++
			}
			continue
		}
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
