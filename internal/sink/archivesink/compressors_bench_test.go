package archivesink_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// BenchmarkCompressors compares compressor settings the archive could use, in memory
// (no file, no fsync), on ~900 KiB batches of ECS syslog documents like
// BenchmarkConsume's. It reports the compressed size as a share of the input
// (ratio). docs/performance.md has the figures.
func BenchmarkCompressors(b *testing.B) {
	var batches [4][]byte
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range batches {
		for docs := batches[k]; len(docs) < 900<<10; batches[k] = docs {
			r := func(k int) int { return rng.IntN(k) }
			docs = fmt.Appendf(docs, `{"@timestamp":"2026-12-07T10:00:%02d.%06dZ","agent":{"name":"vigil-1","type":"vigil","version":"0.9.0"},"ecs":{"version":"8.17.0"},"event":{"dataset":"syslog","id":"1765101600000000000:%d:%d","ingested":"2026-12-07T10:00:01.123456Z","original":"<34>1 2026-12-07T10:00:%02d.%06dZ host%d.example.com sshd %d ID47 - Failed password for user%d from 10.0.%d.%d port %d ssh2"},"host":{"hostname":"host%d.example.com"},"log":{"syslog":{"facility":{"code":4},"priority":34,"severity":{"code":2}}},"message":"Failed password for user%d from 10.0.%d.%d port %d ssh2","process":{"name":"sshd","pid":%d}}`+"\n",
				r(60), r(1e6), r(1e6), r(1000), r(60), r(1e6), r(50), r(32768), r(1e5), r(256), r(256), r(65536), r(50), r(1e5), r(256), r(256), r(65536), r(32768))
		}
	}
	gz := func(level int) func(io.Writer) (io.WriteCloser, error) {
		return func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, level) }
	}
	zs := func(opts ...zstd.EOption) func(io.Writer) (io.WriteCloser, error) {
		return func(w io.Writer) (io.WriteCloser, error) {
			// As the archive builds it: one goroutine, a 1 MiB window.
			return zstd.NewWriter(w, append([]zstd.EOption{zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1 << 20)}, opts...)...)
		}
	}
	for _, c := range []struct {
		name string
		new  func(io.Writer) (io.WriteCloser, error)
	}{
		{"gzip_1", gz(1)}, // the archive's default
		{"gzip_2", gz(2)},
		{"gzip_stateless", gz(gzip.StatelessCompression)},
		{"gzip_huffman_only", gz(gzip.HuffmanOnly)},
		{"zstd_fastest", zs(zstd.WithEncoderLevel(zstd.SpeedFastest))}, // compression: zstd, level 1
		{"zstd_fastest_no_crc", zs(zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))},
		{"zstd_fastest_256k_window", zs(zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(256<<10))},
		{"zstd_default", zs(zstd.WithEncoderLevel(zstd.SpeedDefault))},
	} {
		b.Run(c.name, func(b *testing.B) {
			var out bytes.Buffer
			z, err := c.new(&out)
			if err != nil {
				b.Fatal(err)
			}
			in, outBytes := 0, 0
			b.SetBytes(int64(len(batches[0])))
			b.ResetTimer()
			for i := range b.N {
				if out.Len() > 64<<20 { // a new file, as the archive rotates
					if err := z.Close(); err != nil {
						b.Fatal(err)
					}
					outBytes += out.Len()
					out.Reset()
					if z, err = c.new(&out); err != nil {
						b.Fatal(err)
					}
				}
				in += len(batches[i%4])
				if _, err := z.Write(batches[i%4]); err != nil {
					b.Fatal(err)
				}
			}
			if err := z.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(outBytes+out.Len())/float64(in), "ratio")
		})
	}
}
