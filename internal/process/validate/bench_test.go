package validate

import (
	"testing"
)

// benchDocs returns realistic encoded events of a few datasets from the golden files.
func benchDocs(b *testing.B, datasets ...string) (names []string, docs [][]byte, size int64) {
	want := map[string]bool{}
	for _, d := range datasets {
		want[d] = true
	}
	for _, g := range goldenEvents(b) {
		if want[g.dataset] {
			doc := mustJSON(b, g.doc)
			names = append(names, g.dataset)
			docs = append(docs, doc)
			size += int64(len(doc))
		}
	}
	if len(docs) == 0 {
		b.Fatal("no golden events")
	}
	return names, docs, size / int64(len(docs))
}

func benchCheck(b *testing.B, datasets ...string) {
	v := newValidator(b, NewConfig())
	names, docs, avg := benchDocs(b, datasets...)
	for i := range docs {
		if err := v.Check(names[i], docs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(avg)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if err := v.Check(names[i], docs[i]); err != nil {
			b.Fatal(err)
		}
		i++
		if i == len(docs) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkCheckELB(b *testing.B)        { benchCheck(b, "aws.elb_logs") }
func BenchmarkCheckVPCFlow(b *testing.B)    { benchCheck(b, "aws.vpcflow") }
func BenchmarkCheckCloudTrail(b *testing.B) { benchCheck(b, "aws.cloudtrail") }
func BenchmarkCheckNginx(b *testing.B)      { benchCheck(b, "nginx.access") }

// BenchmarkCheckParallel shows the validator shared by workers.
func BenchmarkCheckParallel(b *testing.B) {
	v := newValidator(b, NewConfig())
	names, docs, avg := benchDocs(b, "aws.elb_logs", "aws.vpcflow", "aws.cloudtrail")
	b.SetBytes(avg)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := v.Check(names[i], docs[i]); err != nil {
				b.Error(err)
				return
			}
			i = (i + 1) % len(docs)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkCheckInvalid measures the cost of a rejected event (error tree and text).
func BenchmarkCheckInvalid(b *testing.B) {
	v := newValidator(b, NewConfig())
	e := albEvent(b)
	setPath(e, "source.port", "x", false)
	doc := mustJSON(b, e)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if v.Check("aws.elb_logs", doc) == nil {
			b.Fatal("passed")
		}
	}
}
