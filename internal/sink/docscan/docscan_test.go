package docscan

import "testing"

func TestLookup(t *testing.T) {
	doc := []byte(`{"@timestamp":"2026-01-02T03:04:05Z","event":{"dataset":"aws.cloudtrail","id":"a\"b"},"host":{"name":"h1"},"message":"long"}`)
	paths := []string{"event.id", "event.dataset", "host.name", "missing.path"}
	out := make([][]byte, len(paths))
	if !Lookup(doc, paths, out) {
		t.Fatal("lookup failed")
	}
	if v, _ := StringValue(out[0]); v != `a"b` {
		t.Errorf("event.id: %q", v)
	}
	if v, _ := BytesValue(out[1]); string(v) != "aws.cloudtrail" {
		t.Errorf("event.dataset: %q", v)
	}
	if v, _ := StringValue(out[2]); v != "h1" {
		t.Errorf("host.name: %q", v)
	}
	if out[3] != nil {
		t.Errorf("missing path: %q", out[3])
	}
	for _, bad := range []string{``, `[`, `{"a":`, `{"a" 1}`, `nope`} {
		if Lookup([]byte(bad), paths, out) {
			t.Errorf("%q: malformed input accepted", bad)
		}
	}
	if n, ok := Digits([]byte("2026")); !ok || n != 2026 {
		t.Errorf("Digits: %d %v", n, ok)
	}
}
