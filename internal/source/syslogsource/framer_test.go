package syslogsource

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// frameAll feeds chunks to a framer of maxMsg bytes, then ends the stream, and
// returns every frame as a string with markers for oversized (">N:") and incomplete
// ("~N:") frames, N being Frame.Size.
func frameAll(t testing.TB, maxMsg int, chunks ...string) []string {
	t.Helper()
	f := NewFramer(maxMsg)
	var out []string
	drain := func() {
		for {
			fr, ok := f.Next()
			if !ok {
				return
			}
			if len(fr.Msg) > maxMsg {
				t.Fatalf("frame of %d bytes over max %d", len(fr.Msg), maxMsg)
			}
			s := string(fr.Msg)
			switch {
			case fr.Oversized:
				s = fmt.Sprintf(">%d:%s", fr.Size, s)
			case fr.Incomplete:
				s = fmt.Sprintf("~%d:%s", fr.Size, s)
			}
			out = append(out, s)
		}
	}
	for _, c := range chunks {
		for p := []byte(c); len(p) > 0; {
			n := f.Write(p)
			p = p[n:]
			drain()
			if n == 0 && len(p) > 0 {
				t.Fatalf("framer buffer full with %d bytes buffered and no frame", f.Buffered())
			}
		}
	}
	f.End()
	drain()
	return out
}

func TestFramer(t *testing.T) {
	long := strings.Repeat("x", 600)
	tests := []struct {
		name   string
		max    int
		chunks []string
		want   []string
	}{
		{name: "newline", chunks: []string{"<13>one\n<13>two\n"}, want: []string{"<13>one", "<13>two"}},
		{name: "crlf", chunks: []string{"<13>one\r\n<13>two\r\n"}, want: []string{"<13>one", "<13>two"}},
		{name: "blank lines skipped", chunks: []string{"\n\r\n<13>one\n\n\n<13>two\n\r\n"}, want: []string{"<13>one", "<13>two"}},
		{name: "last line without LF at end", chunks: []string{"<13>one\n<13>two"}, want: []string{"<13>one", "<13>two"}},
		{name: "octet counting", chunks: []string{"7 <13>one9 <13>two\n\n"}, want: []string{"<13>one", "<13>two\n\n"}},
		{name: "octet body with LF inside", chunks: []string{"12 <13>a\nb\r\nc d"}, want: []string{"<13>a\nb\r\nc d"}},
		{name: "mixed framing per message", chunks: []string{"<13>nl\n7 <13>oct<13>nl2\n3 abc"}, want: []string{"<13>nl", "<13>oct", "<13>nl2", "abc"}},
		{name: "split everywhere", chunks: []string{"9", " <13>", "abcde", "<13>x", "y\r", "\n", "3 ab", "c"},
			want: []string{"<13>abcde", "<13>xy", "abc"}},
		{name: "byte by byte", chunks: strings.Split("5 hello<1>a\r\n5 world", ""), want: []string{"hello", "<1>a", "world"}},
		{name: "incomplete octet frame at end", chunks: []string{"10 <13>ab"}, want: []string{"~10:<13>ab"}},
		{name: "digits only at end are a line", chunks: []string{"<13>a\n12"}, want: []string{"<13>a", "12"}},
		{name: "garbage length no space", chunks: []string{"12abc\n<13>b\n"}, want: []string{"12abc", "<13>b"}},
		{name: "garbage length too many digits", chunks: []string{"12345678901 x\n"}, want: []string{"12345678901 x"}},
		{name: "leading zero is not a length", chunks: []string{"05 hello\n"}, want: []string{"05 hello"}},
		{name: "digit-started line read as octet", chunks: []string{"2 ab\n"}, want: []string{"ab"}},
		{name: "oversized line", max: 500, chunks: []string{long + "\n<13>next\n"}, want: []string{">600:" + long[:500], "<13>next"}},
		{name: "oversized line across reads", max: 500, chunks: []string{long[:300], long[300:], long, "\n<13>next\n"},
			want: []string{">-1:" + long[:500], "<13>next"}},
		{name: "line of exactly max with crlf", max: 500, chunks: []string{long[:500] + "\r\n<1>n\n"}, want: []string{long[:500], "<1>n"}},
		{name: "line of max+1", max: 500, chunks: []string{long[:501] + "\n<1>n\n"}, want: []string{">501:" + long[:500], "<1>n"}},
		{name: "oversized octet", max: 500, chunks: []string{"600 " + long + "6 <13>ok\n"}, want: []string{">600:" + long[:500], "<13>ok"}},
		{name: "oversized octet split", max: 500, chunks: []string{"600 " + long[:250], long[250:510], long[510:], "3 abc"},
			want: []string{">600:" + long[:500], "abc"}},
		{name: "oversized octet cut by end", max: 500, chunks: []string{"600 " + long[:100]}, want: []string{">600:" + long[:100]}},
		{name: "empty input", chunks: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maxMsg := tt.max
			if maxMsg == 0 {
				maxMsg = 1024
			}
			got := frameAll(t, maxMsg, tt.chunks...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestFramerBigStream frames a long stream alternating both framings, cut into
// chunks that split headers and bodies at every offset.
func TestFramerBigStream(t *testing.T) {
	var in bytes.Buffer
	var want []string
	for i := range 5000 {
		msg := fmt.Sprintf("<%d>1 - host app - - - message %d %s", i%192, i, strings.Repeat("y", i%300))
		want = append(want, msg)
		if i%2 == 0 {
			fmt.Fprintf(&in, "%d %s", len(msg), msg)
		} else {
			in.WriteString(msg + "\n")
		}
	}
	// Chunks of a prime size cut headers and bodies at every offset.
	data := in.Bytes()
	var chunks []string
	for len(data) > 0 {
		n := min(4099, len(data))
		chunks = append(chunks, string(data[:n]))
		data = data[n:]
	}
	got := frameAll(t, 1024, chunks...)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
}

// BenchmarkFramer frames a stream of RFC 5424 messages, both framings, as read
// from a socket in 64 KiB reads.
func BenchmarkFramer(b *testing.B) {
	msg := `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3"] An application event log entry`
	var in bytes.Buffer
	n := 0
	for in.Len() < 4<<20 {
		if n%2 == 0 {
			fmt.Fprintf(&in, "%d %s", len(msg), msg)
		} else {
			in.WriteString(msg + "\n")
		}
		n++
	}
	data := in.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	f := NewFramer(64 << 10)
	for b.Loop() {
		got := 0
		for p := data; len(p) > 0; {
			w := f.Write(p[:min(len(p), 64<<10)])
			p = p[w:]
			for {
				fr, ok := f.Next()
				if !ok {
					break
				}
				got += len(fr.Msg)
			}
		}
		if got != n*len(msg) {
			b.Fatalf("framed %d bytes, want %d", got, n*len(msg))
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
