package esbulksource

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse/jsonparse"
)

// FuzzParseBulk checks that no body makes the bulk parser panic, that it returns
// items or a request error (never both), that every document to store is a JSON
// object within the body, and that the answer built from the items is valid JSON.
func FuzzParseBulk(f *testing.F) {
	for _, s := range []string{"{\"index\":{\"_index\":\"a\"}}\n{\"x\":1}\n", "{\"delete\":{}}\n", "{\"create\":{}}\n{\n",
		"{\"update\":{\"_id\":\"1\"}}\n{\"doc\":{}}", "\n\n", "{\"create\":{\"_index\":5}}\n{}\n", "{\"x\":{}}\n{}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		items, err := parseBulk(body, "d")
		if !bytes.Equal(body, orig) {
			t.Fatal("the parser modified the body")
		}
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || items != nil || re.reason == "" {
				t.Fatalf("error %v with %d items", err, len(items))
			}
			return
		}
		for _, it := range items {
			if it.status == 0 {
				if jsonparse.ValidateObject(it.doc) != nil || !bytes.Contains(body, it.doc) {
					t.Fatalf("document %q to store is no JSON object of the body", it.doc)
				}
			} else if it.reason == "" || it.errType == "" {
				t.Fatalf("rejected item without reason: %+v", it)
			}
		}
		if resp := bulkResponse(items, 0); !json.Valid(resp) {
			t.Fatalf("invalid answer %s", resp)
		}
	})
}
