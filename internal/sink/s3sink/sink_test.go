package s3sink_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/testutil"
)

var streamTime = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// TestNDJSON writes two datasets in gzip and zstd NDJSON, reads every object back
// and checks every event and the Hive-style key layout.
func TestNDJSON(t *testing.T) {
	for _, comp := range []string{"gzip", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			g := startGateway(t)
			cfg := sinkConfig(g)
			cfg.Compression = comp
			cfg.MaxBytes = 64 << 10 // several objects per dataset
			s := newSink(t, cfg, "lake")
			a := newAcks()
			want := map[string][]uint64{}
			for q := uint64(1); q <= 60; q++ {
				ds := "aws.cloudtrail"
				if q%3 == 0 {
					ds = "nginx.access"
				}
				want[ds] = append(want[ds], q)
				if err := s.Consume(context.Background(), batch(ds, q, streamTime.Add(time.Duration(q)*time.Minute), 20, a)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if a.acked() != 60 {
				t.Fatalf("%d batches acknowledged, want 60 (failed: %v)", a.acked(), a.failed())
			}
			checkExactlyOnce(t, g.NDJSONDocs(t), want, 20)
			ext := map[string]string{"gzip": "gz", "zstd": "zst"}[comp]
			keyRE := regexp.MustCompile(`^(aws\.cloudtrail|nginx\.access)/year=2026/month=03/day=14/hour=(15|16)/` + fmt.Sprint(testEpoch) + `-(\d+)-(\d+)\.ndjson\.` + ext + `$`)
			keys := g.DataKeys(t)
			if len(keys) < 4 {
				t.Errorf("got %d objects, want several per dataset: %v", len(keys), keys)
			}
			for _, k := range keys {
				if !keyRE.MatchString(k) {
					t.Errorf("key %q does not follow the template", k)
				}
			}
			if m := g.Keys(t, "_vigil/manifests/lake/"); len(m) != len(keys) {
				t.Errorf("got %d manifests for %d objects", len(m), len(keys))
			}
		})
	}
}

// TestMaxAge ends objects by age, without Stop.
func TestMaxAge(t *testing.T) {
	g := startGateway(t)
	cfg := sinkConfig(g)
	cfg.MaxAge = 200 * time.Millisecond
	s := newSink(t, cfg, "lake")
	defer s.Stop(context.Background())
	a := newAcks()
	for q := uint64(1); q <= 5; q++ {
		if err := s.Consume(context.Background(), batch("syslog", q, streamTime, 3, a)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "batches acknowledged after max_age", func() bool { return a.acked() == 5 })
	checkExactlyOnce(t, g.NDJSONDocs(t), map[string][]uint64{"syslog": {1, 2, 3, 4, 5}}, 3)
}

// TestCrashNoDuplicates simulates a crash after the upload but before the stream
// got the acknowledgements: a new sink instance gets the batches again, marked as
// redelivered, and must acknowledge them without writing them again.
func TestCrashNoDuplicates(t *testing.T) {
	g := startGateway(t)
	cfg := sinkConfig(g)
	cfg.MaxBytes = 16 << 10

	// First life: everything is uploaded, but the acknowledgements are lost.
	lost := newAcks()
	s1 := newSink(t, cfg, "lake")
	var first []uint64
	for q := uint64(1); q <= 30; q++ {
		if q%4 == 0 {
			continue // another dataset's batch, not ours: ranges are not exact sets
		}
		first = append(first, q)
		if err := s1.Consume(context.Background(), batch("aws.vpcflow", q, streamTime, 10, lost)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	objects := len(g.DataKeys(t))

	// A manifest whose object never made it (crash between the two uploads) must
	// not count as archived: seqs 31 and 33 are in it but in no object.
	put(t, g, fmt.Sprintf("_vigil/manifests/lake/aws.vpcflow/%d/00000000000000000033-00000000000000000031", testEpoch),
		fmt.Sprintf(`{"object":"aws.vpcflow/year=2026/month=03/day=14/hour=15/%d-31-33.ndjson.gz","dataset":"aws.vpcflow","epoch":%d,"seqs":"31,33","events":20,"bytes":1}`, testEpoch, testEpoch))

	// Second life: the stream redelivers them all (plus 31 and 33) and new ones.
	a := newAcks()
	s2 := newSink(t, cfg, "lake")
	all := append(slices.Clone(first), 31, 33)
	for _, q := range all {
		b := batch("aws.vpcflow", q, streamTime, 10, a)
		b.Redelivered = true
		if err := s2.Consume(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	for q := uint64(34); q <= 40; q++ {
		all = append(all, q)
		if err := s2.Consume(context.Background(), batch("aws.vpcflow", q, streamTime, 10, a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.acked() != len(all) {
		t.Fatalf("%d batches acknowledged, want %d (failed %v)", a.acked(), len(all), a.failed())
	}
	checkExactlyOnce(t, g.NDJSONDocs(t), map[string][]uint64{"aws.vpcflow": all}, 10)
	if n := len(g.DataKeys(t)); n <= objects {
		t.Errorf("second life wrote no new object (%d before, %d after)", objects, n)
	}
}

// TestNewEpoch: the events stream was recreated and numbers its batches from 1
// again. Batches of the new epoch are uploaded even when the stream marks them as
// redelivered and a former epoch's manifest lists their sequences, under keys that
// leave the former objects untouched.
func TestNewEpoch(t *testing.T) {
	g := startGateway(t)
	cfg := sinkConfig(g)
	cfg.MaxBytes = 16 << 10
	const newEpoch = testEpoch + 1
	for i, epoch := range []int64{testEpoch, newEpoch} {
		a := newAcks()
		s := newSink(t, cfg, "lake")
		for q := uint64(1); q <= 12; q++ {
			b := batchOf(epoch, "aws.vpcflow", q, streamTime, 10, a)
			b.Redelivered = i == 1 && q%2 == 0
			if err := s.Consume(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if a.acked() != 12 {
			t.Fatalf("epoch %d: %d batches acknowledged, want 12 (failed %v)", epoch, a.acked(), a.failed())
		}
	}
	seen := countIDs(g.NDJSONDocs(t))
	for _, epoch := range []int64{testEpoch, newEpoch} {
		for q := uint64(1); q <= 12; q++ {
			for i := range 10 {
				if id := docID(epoch, "aws.vpcflow", q, i); seen[id] != 1 {
					t.Errorf("event %s stored %d times, want once", id, seen[id])
				}
			}
		}
	}
	for _, k := range g.DataKeys(t) {
		if !strings.Contains(k, fmt.Sprintf("/%d-", testEpoch)) && !strings.Contains(k, fmt.Sprintf("/%d-", newEpoch)) {
			t.Errorf("key %q names no epoch", k)
		}
	}
}

// TestRedeliveredWhileHeld: a batch the stream redelivers while the sink still
// holds it (ack_wait shorter than max_age) is acknowledged with its object.
func TestRedeliveredWhileHeld(t *testing.T) {
	g := startGateway(t)
	s := newSink(t, sinkConfig(g), "lake")
	a := newAcks()
	if err := s.Consume(context.Background(), batch("syslog", 7, streamTime, 5, a)); err != nil {
		t.Fatal(err)
	}
	again := batch("syslog", 7, streamTime, 5, a)
	again.Redelivered = true
	if err := s.Consume(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if errs := a.done[7]; len(errs) != 2 || errs[0] != nil || errs[1] != nil {
		t.Fatalf("outcomes of seq 7: %v, want two successes", errs)
	}
	checkExactlyOnce(t, g.NDJSONDocs(t), map[string][]uint64{"syslog": {7}}, 5)
}

// TestServerDown stops the S3 server mid-stream: uploads are retried until it is
// back, nothing is lost or duplicated, nothing is acknowledged early.
func TestServerDown(t *testing.T) {
	g := startGateway(t)
	cfg := sinkConfig(g)
	cfg.MaxBytes = 8 << 10
	s := newSink(t, cfg, "lake")
	a := newAcks()
	var seqs []uint64
	consume := func(from, to uint64) {
		for q := from; q <= to; q++ {
			seqs = append(seqs, q)
			if err := s.Consume(context.Background(), batch("apache.access", q, streamTime, 10, a)); err != nil {
				t.Error(err)
			}
		}
	}
	consume(1, 10)
	testutil.Eventually(t, 10*time.Second, "first objects acknowledged", func() bool { return a.acked() >= 4 })
	g.Stop()
	before := a.acked()
	done := make(chan struct{})
	go func() {
		defer close(done)
		consume(11, 30) // blocks when the uploaders are stuck: backpressure
	}()
	// Nothing can be acknowledged while the server is down.
	testutil.Eventually(t, 10*time.Second, "uploads failing", func() bool {
		return a.acked() == before && len(a.failed()) == 0
	})
	g.Start(t)
	<-done
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.acked() != 30 {
		t.Fatalf("%d batches acknowledged, want 30 (failed %v)", a.acked(), a.failed())
	}
	checkExactlyOnce(t, g.NDJSONDocs(t), map[string][]uint64{"apache.access": seqs}, 10)
}

// TestStopDeadline: with the server down, Stop returns by its deadline and hands
// the held batches back for redelivery.
func TestStopDeadline(t *testing.T) {
	g := startGateway(t)
	s := newSink(t, sinkConfig(g), "lake")
	a := newAcks()
	if err := s.Consume(context.Background(), batch("syslog", 1, streamTime, 5, a)); err != nil {
		t.Fatal(err)
	}
	g.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Stop took %s", d)
	}
	if f := a.failed(); len(f) != 1 {
		t.Fatalf("want batch 1 handed back with an error, got outcomes %v", a.done)
	}
}

// TestMultipart uploads an object larger than part_size and reads it back.
func TestMultipart(t *testing.T) {
	g := startGateway(t)
	cfg := sinkConfig(g)
	cfg.PartSize = 5 << 20
	cfg.MaxBytes = 256 << 20
	s := newSink(t, cfg, "lake")
	a := newAcks()
	// Documents with random text compress poorly, so the object passes 5MiB.
	var seqs []uint64
	for q := uint64(1); q <= 24; q++ {
		seqs = append(seqs, q)
		b := batch("aws.cloudfront", q, streamTime, 1500, a)
		b.Docs = addNoise(b.Docs, q)
		if err := s.Consume(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.acked() != 24 {
		t.Fatalf("%d acknowledged, want 24", a.acked())
	}
	keys := g.DataKeys(t)
	if len(keys) != 1 {
		t.Fatalf("want one object, got %v", keys)
	}
	head, err := g.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String(keys[0])})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt64(head.ContentLength) <= 5<<20 {
		t.Fatalf("object is %d bytes, not larger than a part", aws.ToInt64(head.ContentLength))
	}
	// A multipart object's ETag is "<md5 of part md5s>-<parts>".
	if etag := aws.ToString(head.ETag); !strings.Contains(etag, "-") {
		t.Errorf("ETag %s is not a multipart ETag", etag)
	}
	if head.Metadata["vigil-events"] != fmt.Sprint(24*1500) {
		t.Errorf("metadata %v", head.Metadata)
	}
	checkExactlyOnce(t, g.NDJSONDocs(t), map[string][]uint64{"aws.cloudfront": seqs}, 1500)
}

// addNoise adds a random-looking field to every document.
func addNoise(docs []byte, seed uint64) []byte {
	var out []byte
	x := seed*0x9E3779B97F4A7C15 + 1
	for _, line := range strings.SplitAfter(string(docs), "\n") {
		if line == "" {
			continue
		}
		var noise [256]byte
		for i := range noise {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			noise[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"[x%64]
		}
		out = append(out, line[:len(line)-2]...)
		out = append(out, `,"noise":"`...)
		out = append(out, noise[:]...)
		out = append(out, "\"}\n"...)
	}
	return out
}

// TestSSE asks for S3-managed server-side encryption.
func TestSSE(t *testing.T) {
	g := startGateway(t)
	cfg := sinkConfig(g)
	cfg.SSE = "AES256"
	s := newSink(t, cfg, "lake")
	a := newAcks()
	if err := s.Consume(context.Background(), batch("syslog", 1, streamTime, 5, a)); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.acked() != 1 {
		t.Fatalf("not acknowledged: %v", a.done)
	}
	checkExactlyOnce(t, g.NDJSONDocs(t), map[string][]uint64{"syslog": {1}}, 5)
}

func put(t *testing.T, g *gateway, key, body string) {
	t.Helper()
	_, err := g.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key),
		Body: strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFramesWrittenAsTheyAre: ndjson objects take a batch that crossed the stream
// compressed as they are (component.FrameSink) byte for byte, compress the others,
// and hold every document once; a parquet sink takes no frames.
func TestFramesWrittenAsTheyAre(t *testing.T) {
	for _, comp := range []string{event.EncodingGzip, event.EncodingZstd} {
		t.Run(comp, func(t *testing.T) {
			g := startGateway(t)
			cfg := sinkConfig(g)
			cfg.Compression = comp
			s := newSink(t, cfg, "lake")
			if s.FrameEncoding() != comp {
				t.Fatalf("FrameEncoding %q, want %q", s.FrameEncoding(), comp)
			}
			// Level 1: the sink compresses at the format's default level, so a frame
			// it compressed again would not be found as it was.
			fe, err := event.NewFrameEncoder(comp, 1)
			if err != nil {
				t.Fatal(err)
			}
			a := newAcks()
			var frames [][]byte
			for q := uint64(1); q <= 6; q++ {
				b := batch("web", q, streamTime, 20, a)
				if q%2 == 1 {
					b.Frame, b.Size = fe.Append(nil, b.Docs), len(b.Docs)
					b.Docs = nil
					frames = append(frames, b.Frame)
				}
				if err := s.Consume(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if a.acked() != 6 {
				t.Fatalf("%d batches acknowledged, want 6 (failed: %v)", a.acked(), a.failed())
			}
			checkExactlyOnce(t, g.NDJSONDocs(t), map[string][]uint64{"web": {1, 2, 3, 4, 5, 6}}, 20)
			var objects []byte
			for _, k := range g.DataKeys(t) {
				objects = append(objects, g.Get(t, k)...)
			}
			for i, f := range frames {
				if !bytes.Contains(objects, f) {
					t.Errorf("frame %d (%d bytes) is not in the objects as it came", i, len(f))
				}
			}
		})
	}
	g := startGateway(t)
	cfg := sinkConfig(g)
	cfg.Encoding = "parquet"
	s := newSink(t, cfg, "lake")
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.FrameEncoding() != "" {
		t.Fatalf("a parquet sink takes frames of %q", s.FrameEncoding())
	}
	if enc, _ := cfg.FrameEncoding(); enc != "" {
		t.Fatalf("a parquet sink's settings name frames of %q", enc)
	}
}
