package wire

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/event"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		give error
		want error
	}{
		{errors.New("nats: maximum bytes exceeded"), component.ErrFull},
		{errors.New("nats: maximum messages exceeded"), component.ErrFull},
		{errors.New("nats: resource limits exceeded for account"), component.ErrFull},
		{nats.ErrMaxPayload, component.ErrTooLarge},
		{nats.ErrTimeout, component.ErrUnavailable},
		{nats.ErrNoResponders, component.ErrUnavailable},
		{nats.ErrConnectionClosed, component.ErrUnavailable},
	}
	for _, tt := range tests {
		if got := Classify(tt.give); !errors.Is(got, tt.want) {
			t.Errorf("Classify(%v) = %v, want %v", tt.give, got, tt.want)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) must be nil")
	}
}

func TestEventsID(t *testing.T) {
	id := EventsID(1767225600123456789, 42, "aws.cloudtrail", 3)
	if id != "1767225600123456789:42:aws.cloudtrail:3" {
		t.Fatalf("EventsID = %q", id)
	}
	tests := []struct {
		give      string
		wantEpoch int64
		wantSeq   uint64
		wantOK    bool
	}{
		{give: id, wantEpoch: 1767225600123456789, wantSeq: 42, wantOK: true},
		{give: "5:7:odd:dataset:0", wantEpoch: 5, wantSeq: 7, wantOK: true},
		{give: "5:7", wantOK: false},
		{give: "5:7:", wantOK: false},
		{give: "x:7:ds:0", wantOK: false},
		{give: "5:-7:ds:0", wantOK: false},
		{give: "sink:archive:12", wantOK: false},
		{give: "", wantOK: false},
	}
	for _, tt := range tests {
		e, q, ok := ParseEventsID(tt.give)
		if ok != tt.wantOK || e != tt.wantEpoch || q != tt.wantSeq {
			t.Errorf("ParseEventsID(%q) = %d, %d, %v; want %d, %d, %v", tt.give, e, q, ok, tt.wantEpoch, tt.wantSeq, tt.wantOK)
		}
	}
}

func TestLines(t *testing.T) {
	tests := []struct {
		give []int
		want string
	}{
		{give: []int{1}, want: "1-1"},
		{give: []int{1, 2, 3}, want: "1-3"},
		{give: []int{1, 2, 4, 5, 9}, want: "1-2,4-5,9-9"},
	}
	for _, tt := range tests {
		got := FormatLines(tt.give)
		if got != tt.want {
			t.Errorf("FormatLines(%v) = %q, want %q", tt.give, got, tt.want)
		}
		if back := ParseLines(got, len(tt.give)); !slices.Equal(back, tt.give) {
			t.Errorf("ParseLines(%q) = %v", got, back)
		}
	}
	for _, bad := range []string{"", "1", "3-1", "a-b", "1-1000000"} {
		if got := ParseLines(bad, 10); got != nil {
			t.Errorf("ParseLines(%q) = %v, want nil", bad, got)
		}
	}
}

// TestRecordFields: per-record fields survive the message, including a record
// without any (null) and values with quotes and newlines; a header whose length
// does not match the count is dropped rather than misapplied.
func TestRecordFields(t *testing.T) {
	give := []map[string]string{{"aws.sqs.message_id": "a", "aws.sqs.attributes.note": "say \"hi\"\nbye"}, nil, {"aws.sqs.message_id": "c"}}
	msg := RawMsg(Raw{Source: "queue", Count: 3, RecordFields: give})
	got := ReadRaw(msg.Subject, msg.Header, msg.Data, time.Now())
	if len(got.RecordFields) != 3 || got.RecordFields[0]["aws.sqs.attributes.note"] != "say \"hi\"\nbye" || got.RecordFields[1] != nil ||
		got.RecordFields[2]["aws.sqs.message_id"] != "c" {
		t.Fatalf("read %v, want %v", got.RecordFields, give)
	}
	msg.Header.Set(HeaderCount, "2")
	if got := ReadRaw(msg.Subject, msg.Header, msg.Data, time.Now()); got.RecordFields != nil {
		t.Fatalf("3 field maps for 2 records read as %v, want none", got.RecordFields)
	}
}

// An event batch in the encoding a sink writes comes out of ReadFrame as it is, with
// its size; one in another encoding, or without its size, does not, and
// ReadEvents decompresses every encoding.
func TestReadFrame(t *testing.T) {
	docs := []byte(`{"message":"a"}` + "\n" + `{"message":"b"}` + "\n")
	for _, enc := range []string{event.EncodingS2, event.EncodingGzip, event.EncodingZstd} {
		fe, err := event.NewFrameEncoder(enc, 1)
		if err != nil {
			t.Fatal(err)
		}
		body := fe.Append(nil, docs)
		msg := EventsMsgCompressed(Events{Dataset: "web", Source: "http", Count: 2, Size: len(docs)}, enc, body)
		ev, err := ReadEvents(msg.Subject, msg.Header, msg.Data)
		if err != nil || !bytes.Equal(ev.Docs, docs) || ev.Count != 2 || ev.Size != len(docs) || ev.Dataset != "web" || ev.Source != "http" {
			t.Fatalf("%s: ReadEvents: %+v, %v", enc, ev, err)
		}
		for _, want := range []string{event.EncodingS2, event.EncodingGzip, event.EncodingZstd, ""} {
			ev, frame, ok := ReadFrame(want, msg.Subject, msg.Header, msg.Data)
			if wantOK := want == enc && enc != event.EncodingS2; ok != wantOK {
				t.Fatalf("%s body, sink writing %q: ok %v", enc, want, ok)
			}
			if ok && (!bytes.Equal(frame, body) || ev.Size != len(docs) || ev.Count != 2 || ev.Docs != nil || ev.Dataset != "web") {
				t.Fatalf("%s: ReadFrame: %+v", enc, ev)
			}
		}
		msg.Header.Del(HeaderSize)
		if _, _, ok := ReadFrame(enc, msg.Subject, msg.Header, msg.Data); ok {
			t.Fatalf("%s: a frame without its size passed through", enc)
		}
	}
}
