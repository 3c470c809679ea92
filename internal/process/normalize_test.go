package process

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
)

type panicParser struct{}

func (panicParser) Parse([]byte, parse.Emitter) error { panic("boom") }

type oneEvent struct{ e event.Event }

func (p *oneEvent) Parse(rec []byte, out parse.Emitter) error {
	p.e.Reset()
	p.e.Set("message", event.Bytes(rec))
	return out.Emit(&p.e)
}

type collect struct {
	docs     []string
	datasets []string
	rejects  []error
	skips    []string
}

func (c *collect) Event(ds string, doc []byte) error {
	c.docs = append(c.docs, string(doc))
	c.datasets = append(c.datasets, ds)
	return nil
}
func (c *collect) Reject(_ int, _ []byte, err error) { c.rejects = append(c.rejects, err) }
func (c *collect) Skip(reason string)                { c.skips = append(c.skips, reason) }

func TestPanickingParserIsAnError(t *testing.T) {
	n := &Normalizer{Source: "s", Parser: panicParser{}}
	_, err := n.Process(Record{Data: []byte("x"), Received: time.Now()}, &collect{})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("want an error naming the panic, got %v", err)
	}
}

func TestPipelineFields(t *testing.T) {
	recv := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	origin := event.Origin{Epoch: 1, Seq: 2, Index: 3}
	tests := []struct {
		name        string
		n           Normalizer
		recDataset  string
		wantDataset string
		wantOrig    bool
	}{
		{"source name", Normalizer{Source: "src", KeepOriginal: true}, "", "src", true},
		{"format dataset", Normalizer{Source: "src", FormatDataset: "aws.x"}, "", "aws.x", false},
		{"source dataset", Normalizer{Source: "src", Dataset: "mine", FormatDataset: "aws.x"}, "", "aws.x", false},
		{"batch dataset wins", Normalizer{Source: "src", FormatDataset: "aws.x"}, "req", "req", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &collect{}
			n := tt.n
			n.Parser = &oneEvent{}
			if _, err := n.Process(Record{Data: []byte("hello"), Origin: origin, Received: recv, Dataset: tt.recDataset}, c); err != nil {
				t.Fatal(err)
			}
			if len(c.docs) != 1 || c.datasets[0] != tt.wantDataset {
				t.Fatalf("datasets %v", c.datasets)
			}
			doc := c.docs[0]
			for _, want := range []string{`"@timestamp":"2026-01-02T03:04:05.000000006Z"`, `"id":"` + event.DeriveID(origin, 0) + `"`, `"ecs":{"version":"` + ECSVersion + `"}`} {
				if !strings.Contains(doc, want) {
					t.Errorf("%s lacks %s", doc, want)
				}
			}
			if got := strings.Contains(doc, `"original":"hello"`); got != tt.wantOrig {
				t.Errorf("event.original present=%v, want %v: %s", got, tt.wantOrig, doc)
			}
		})
	}
}

func TestValidateRejectsWithRecord(t *testing.T) {
	c := &collect{}
	chain := testChain(t, procFunc(func(*Item) (Verdict, error) {
		return Pass, &ValidationError{Err: errors.New("/x: bad")}
	}))
	n := &Normalizer{Source: "s", Parser: &oneEvent{}, Chain: chain}
	if _, err := n.Process(Record{Data: []byte("r"), Received: time.Now()}, c); err != nil {
		t.Fatal(err)
	}
	if len(c.docs) != 0 || len(c.rejects) != 1 || !IsValidationError(c.rejects[0]) || DLQStage(c.rejects[0]) != "validate" {
		t.Fatalf("docs %v rejects %v", c.docs, c.rejects)
	}
}

// TestRecordMetadata: a record's source fields and line number land on its events,
// without overwriting what the parser set.
func TestRecordMetadata(t *testing.T) {
	p := &oneEvent{}
	n := &Normalizer{Source: "s", Parser: parserFunc(func(rec []byte, out parse.Emitter) error {
		p.e.Reset()
		p.e.Set("message", event.Bytes(rec))
		p.e.Set("aws.s3.object.key", event.String("from-parser"))
		return out.Emit(&p.e)
	})}
	c := &collect{}
	rec := Record{Data: []byte("x"), Received: time.Now(), Line: 42, LineField: "aws.s3.object.line",
		Fields: map[string]string{"aws.s3.bucket.name": "b", "aws.s3.object.key": "k"}}
	if _, err := n.Process(rec, c); err != nil {
		t.Fatal(err)
	}
	doc := c.docs[0]
	for _, want := range []string{`"bucket":{"name":"b"}`, `"key":"from-parser"`, `"line":42`} {
		if !strings.Contains(doc, want) {
			t.Errorf("%s not in %s", want, doc)
		}
	}
}

type parserFunc func([]byte, parse.Emitter) error

func (f parserFunc) Parse(rec []byte, out parse.Emitter) error { return f(rec, out) }
