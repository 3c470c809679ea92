package firehosesource

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// FuzzDecodeEnvelope: any body gives a request or an error, never a panic; a
// decoded request's records are exactly the base64-decoded non-empty data fields.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"requestId":"ed4acda5-034f-9f42-bba1-f29aea6d7d8f","timestamp":1578090901599,"records":[{"data":"aGVsbG8="},{"data":"aGVsbG8gd29ybGQ="}]}`))
	f.Add([]byte(`{"requestId":"x","records":[{"data":""},{"data":"eA=="},{"data":"eA"}]}`))
	f.Add([]byte(`{"requestId":"x","records":[{"data":"H4sIAAAAAAAAA\/8="}]}`))
	f.Add([]byte(`{"requestId":"","records":null}`))
	f.Add([]byte(`{"requestId":"x","timestamp":"1","records":[{}],"extra":[1,2]}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeEnvelope(body)
		if err != nil {
			if req != nil {
				t.Fatal("request and error")
			}
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if req.ID == "" {
			t.Fatal("accepted an empty requestId")
		}
		var env struct {
			Records []struct {
				Data string `json:"data"`
			} `json:"records"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("decoder accepted what encoding/json rejects: %v", err)
		}
		var want [][]byte
		for _, r := range env.Records {
			d, err := base64.StdEncoding.DecodeString(r.Data)
			if err != nil {
				t.Fatalf("accepted bad base64 %q", r.Data)
			}
			if len(d) > 0 {
				want = append(want, d)
			}
		}
		if len(want) != len(req.Records) || len(env.Records)-len(want) != req.Empty {
			t.Fatalf("%d records + %d empty, want %d of %d", len(req.Records), req.Empty, len(want), len(env.Records))
		}
		total := 0
		for i := range want {
			if !bytes.Equal(want[i], req.Records[i]) {
				t.Fatalf("record %d: %q, want %q", i, req.Records[i], want[i])
			}
			total += len(want[i])
		}
		if total != req.Bytes {
			t.Fatalf("Bytes %d, want %d", req.Bytes, total)
		}
	})
}
