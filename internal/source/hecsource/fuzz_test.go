package hecsource

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzEvents checks that no body makes the event decoder panic, that it returns
// records or a Splunk error code (never both), and that every record is a JSON object.
func FuzzEvents(f *testing.F) {
	for _, s := range []string{`{"event":"a"}`, `{"event":{"a":1},"time":"1.5","fields":{"x":"y"}}{"event":"b"}`,
		"{\"event\":\"a\"}\n{\"event\":", `{"event":""}`, `{"event":1,"time":1e400}`, `[]`, `{"event":"a","host":null,"index":"i"}`} {
		f.Add([]byte(s))
	}
	d := decoder{allowed: map[string]bool{"i": true}}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		recs, err := d.events(body)
		if !bytes.Equal(body, orig) {
			t.Fatal("the decoder modified the body")
		}
		if err != nil {
			var ee *eventError
			if !errors.As(err, &ee) || codeText[ee.code] == "" || recs != nil {
				t.Fatalf("error %v with %d records", err, len(recs))
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("no records and no error")
		}
		for _, r := range recs {
			var m map[string]any
			if err := json.Unmarshal(r, &m); err != nil {
				t.Fatalf("record %q is not a JSON object: %v", r, err)
			}
		}
	})
}

// FuzzRaw checks the raw endpoint's line splitter the same way.
func FuzzRaw(f *testing.F) {
	for _, s := range []string{"a\nb", "\r\n", "\x00\xff\"\\", ""} {
		f.Add([]byte(s))
	}
	host := "h\"\\"
	var d decoder
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := d.raw(body, &meta{host: &host})
		if err == nil && len(recs) == 0 {
			t.Fatal("no records and no error")
		}
		for _, r := range recs {
			var m map[string]any
			if err := json.Unmarshal(r, &m); err != nil {
				t.Fatalf("record %q is not a JSON object: %v", r, err)
			}
		}
	})
}
