package s3source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/component"
)

// fakeIntake keeps what is stored.
type fakeIntake struct {
	stored  []component.Records
	letters []component.Letter
}

func (f *fakeIntake) Store(_ context.Context, r component.Records) error {
	recs := make([][]byte, len(r.Records))
	for i, rec := range r.Records {
		recs[i] = bytes.Clone(rec)
	}
	r.Records, r.Lines = recs, append([]int(nil), r.Lines...)
	f.stored = append(f.stored, r)
	return nil
}

func (f *fakeIntake) DeadLetter(_ context.Context, l ...component.Letter) error {
	f.letters = append(f.letters, l...)
	return nil
}

func testReader(t testing.TB, in component.Intake) *Reader {
	cfg := NewConfig()
	cfg.ChunkBytes = 16
	cfg.MaxRecordBytes = 1 << 10
	r, err := NewReader(cfg, FormatAuto, component.NewMetrics(prometheus.NewRegistry()).For("source", "t"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.Intake = in
	return r
}

// TestLines: compressed by magic bytes, CRLF and empty lines, a line over the limit
// dead-lettered, chunks with their message IDs, line numbers and fields.
func TestLines(t *testing.T) {
	long := strings.Repeat("y", 2000)
	plain := "one\r\ntwo\n\nthree\n" + long + "\nfour"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(plain))
	zw.Close()
	enc, _ := zstd.NewWriter(nil)
	zs := enc.EncodeAll([]byte(plain), nil)
	enc.Close()
	for name, body := range map[string][]byte{"plain": []byte(plain), "gzip": gz.Bytes(), "zstd": zs} {
		t.Run(name, func(t *testing.T) {
			in := &fakeIntake{}
			r := testReader(t, in)
			rc, err := decompress(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			st := &storer{r: r, ref: ObjectRef{Bucket: "b", Key: "k", ETag: "e"}, format: "lines"}
			if err := r.lines(context.Background(), rc, st); err != nil {
				t.Fatal(err)
			}
			if err := st.flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got, ids []string
			var lines []int
			for _, s := range in.stored {
				for _, rec := range s.Records {
					got = append(got, string(rec))
				}
				ids = append(ids, s.ID)
				lines = append(lines, s.Lines...)
				if s.Fields[FieldBucket] != "b" || s.Fields[FieldKey] != "k" || s.Format != "lines" {
					t.Errorf("records: %+v", s)
				}
			}
			if fmt.Sprint(got) != "[one two three four]" || fmt.Sprint(lines) != "[1 2 4 6]" {
				t.Errorf("records %q at lines %v", got, lines)
			}
			if ids[0] != "s3:b/k@e:0" || ids[len(ids)-1] != fmt.Sprintf("s3:b/k@e:%d", len(ids)-1) {
				t.Errorf("ids %v", ids)
			}
			if len(in.letters) != 1 || !strings.Contains(in.letters[0].Reason, "line 5 is longer than max_record_bytes") {
				t.Errorf("letters: %+v", in.letters)
			}
		})
	}
}

func BenchmarkLines(b *testing.B) {
	var buf bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&buf, `https 2026-01-02T03:04:05.000000Z app/lb/1 10.0.0.1:%d 10.0.0.2:80 0.001 0.002 0.000 200 200 10 20 "GET https://example.com:443/%d HTTP/1.1" "curl/8" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1 "Root=1-x" "-" "-" 0 2026-01-02T03:04:05.000000Z "forward" "-" "-" "10.0.0.2:80" "200" "-" "-" TID_1`+"\n", i, i)
	}
	data := buf.Bytes()
	r := testReader(b, discardIntake{})
	r.ChunkBytes = 256 << 10
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		st := &storer{r: r, ref: ObjectRef{Bucket: "b", Key: "k"}, format: "alb"}
		if err := r.lines(context.Background(), io.NopCloser(bytes.NewReader(data)), st); err != nil {
			b.Fatal(err)
		}
		if err := st.flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

type discardIntake struct{}

func (discardIntake) Store(context.Context, component.Records) error        { return nil }
func (discardIntake) DeadLetter(context.Context, ...component.Letter) error { return nil }
