package pollsource

import (
	"encoding/json"
	"testing"
)

// FuzzPage feeds untrusted page bodies and Link headers to what reads them: no
// panic, and every record found is valid JSON.
func FuzzPage(f *testing.F) {
	for _, seed := range []string{
		`[{"uuid":"a","published":"2024-01-01T00:00:00.000Z"}]`,
		`{"items":[{"id":{"uniqueQualifier":"1","time":"2024-01-01T00:00:00Z"}}],"nextPageToken":"x"}`,
		`{"data":[[1],[2,3]]}`, `[]`, `null`, `{"items":null}`, `[`, `"x"`,
	} {
		f.Add([]byte(seed), `<https://x/y?after=1>; rel="next", <https://x/y>; rel="self"`)
	}
	paths := []string{"$", "$.items", "$.items[*]", "$.data[*]", "$.items[*].id.uniqueQualifier", "$.nextPageToken"}
	compiled := make([]path, len(paths))
	for i, p := range paths {
		compiled[i], _ = compilePath(p)
	}
	f.Fuzz(func(t *testing.T, body []byte, link string) {
		if !json.Valid(body) {
			return
		}
		for _, p := range compiled {
			recs, err := p.records(body)
			if err != nil {
				continue
			}
			for _, r := range recs {
				if !json.Valid(r) {
					t.Fatalf("%v: record %q is not JSON", p, r)
				}
			}
			_, _ = p.scalar(body)
		}
		_ = linkNext([]string{link})
	})
}
