package esbulksource

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkParseBulk parses a 1000-document bulk body and builds its answer.
func BenchmarkParseBulk(b *testing.B) {
	var body bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&body, "{\"create\":{\"_index\":\"logs-app-default\"}}\n{\"@timestamp\":\"2025-01-31T10:00:00Z\",\"seq\":%d,\"message\":\"GET /index.html 200\",\"user\":{\"name\":\"alice\"}}\n", i)
	}
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		items, err := parseBulk(body.Bytes(), "")
		if err != nil {
			b.Fatal(err)
		}
		_ = bulkResponse(items, 0)
	}
}
