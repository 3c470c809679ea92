package hecsource

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkEvents decodes a 1000-event batch as forwarders send it.
func BenchmarkEvents(b *testing.B) {
	var body bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&body, `{"time":1700000000.%03d,"host":"web-1","source":"/var/log/app.log","sourcetype":"app:json","index":"main","event":{"seq":%d,"msg":"GET /index.html 200","user":"alice"},"fields":{"env":"prod"}}`+"\n", i, i)
	}
	var d decoder
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.events(body.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}
