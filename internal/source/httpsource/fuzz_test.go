package httpsource

import (
	"bytes"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/jsonparse"
)

var fuzzContentTypes = []string{"application/json", "application/x-ndjson", "text/plain", "application/x-www-form-urlencoded", ""}

// FuzzSplit checks that no body makes the splitter panic, that every record of a JSON
// content type is a valid JSON object, that no record is blank, and that records and
// bad records lie within the body.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[{"a":1},{"b":2}]`, "{\"a\":1}\n{\"b\":\n", `[1,{}]`, "a\nb\r\n", "[", " \n", `[{"a":[}]`} {
		for i := range fuzzContentTypes {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, ct uint8, body []byte) {
		contentType := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]
		orig := bytes.Clone(body)
		var s Source
		recs, format, bad, err := s.split(contentType, body)
		if !bytes.Equal(body, orig) {
			t.Fatal("split modified the body")
		}
		if err != nil && (len(recs) > 0 || len(bad) > 0) {
			t.Fatalf("records returned with an error: %v", err)
		}
		for _, r := range recs {
			if len(bytes.TrimSpace(r)) == 0 {
				t.Fatalf("blank record from %q", body)
			}
			if !bytes.Contains(body, r) {
				t.Fatalf("record %q is not part of the body", r)
			}
			if format == "" {
				if err := jsonparse.ValidateObject(r); err != nil {
					t.Fatalf("%s record %q is not a JSON object: %v", contentType, r, err)
				}
			}
		}
		if format == "lines" && len(bad) > 0 {
			t.Fatalf("lines have no bad records")
		}
		for _, b := range bad {
			if b.reason == "" || len(b.data) == 0 {
				t.Fatalf("bad record %+v", b)
			}
		}
		if contentType == "text/plain" && format != "lines" {
			t.Fatalf("text/plain parsed as %q", format)
		}
	})
}
