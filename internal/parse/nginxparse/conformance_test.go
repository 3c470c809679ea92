package nginxparse

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
	dir := filepath.Join(conformancetest.Root(t), "nginx")
	total := &conformancetest.Tally{}
	run := func(name string, fn func(*conformancetest.Tally)) {
		tl := &conformancetest.Tally{}
		fn(tl)
		t.Logf("nginx / %s: equal %d, different %d, missing %d, allowed %d, rejects matched %d, rejects missed %d",
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
			want := w.(map[string]any)
			// event.original is written by the pipeline from the record; check it
			// is the line itself rather than looking for it in the parser's output.
			if orig, ok := want["event.original"].(string); ok {
				tl.Check("beats", lines[i], "event.original", orig == string(lines[i]), orig, string(lines[i]))
				delete(want, "event.original")
			}
			compare(tl, "beats", lines[i], want, ecsMap, ign)
		}
	})

	run("fluent/fluentd", func(tl *conformancetest.Tally) {
		f := conformancetest.ReadObject(t, filepath.Join(dir, "fluentd_parser_nginx.fluentd.expected.json"))
		for _, c := range f["cases"].([]any) {
			c := c.(map[string]any)
			want := c["expected_record"].(map[string]any)
			if ts, ok := c["expected_time"].(string); ok && !strings.Contains(ts, "local") {
				want["@expected_time"] = ts
			}
			compare(tl, "fluentd", conformancetest.CaseInput(t, c), want, fluentdMap, nil)
		}
	})

	run("vectordotdev/vrl", func(tl *conformancetest.Tally) {
		f := conformancetest.ReadObject(t, filepath.Join(dir, "vrl_parse_nginx_log.vector.expected.json"))
		for _, c := range f["cases"].([]any) {
			c := c.(map[string]any)
			in := conformancetest.CaseInput(t, c)
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
	if n := total.Comparable(); n > 0 {
		pct = 100 * float64(total.Equal) / float64(n)
	}
	t.Logf("nginx total: %.1f%% of %d comparable fields equal", pct, total.Comparable())
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
func compare(tl *conformancetest.Tally, peer string, in []byte, want map[string]any, mapping map[string]string, ign []any) {
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
		target := conformancetest.Mapped(mapping, key)
		if r := allowReason(peer, key, wv); r != "" {
			if gv, ok := o.Fields[target]; ok && conformancetest.Norm(gv) == conformancetest.Norm(wv) {
				tl.Equal++
			} else {
				tl.Allowed++
			}
			continue
		}
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
