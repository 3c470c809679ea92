package syslogsource

import (
	"bytes"
	"fmt"
	"testing"
)

// FuzzFramer feeds arbitrary bytes in arbitrary chunk sizes: no panic, no frame over
// the limit, the buffer never full without a frame to return.
func FuzzFramer(f *testing.F) {
	for _, seed := range []string{
		"<13>one\n<13>two\r\n",
		"7 <13>one9 <13>two\n\n",
		"12abc\n", "99999999999 x", "600 " + string(bytes.Repeat([]byte("x"), 700)),
		"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed\n",
		"3 ab", "\r\r\n\n1", "0 \n",
	} {
		f.Add([]byte(seed), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		const maxMsg = 480
		fr := NewFramer(maxMsg)
		step := int(chunk)%64 + 1
		frames := 0
		drain := func() {
			for {
				m, ok := fr.Next()
				if !ok {
					return
				}
				frames++
				if len(m.Msg) > maxMsg {
					t.Fatalf("frame of %d bytes over %d", len(m.Msg), maxMsg)
				}
				if !m.Oversized && !m.Incomplete && len(m.Msg) == 0 {
					t.Fatal("empty frame")
				}
				if frames > len(data)+1 {
					t.Fatalf("%d frames from %d bytes", frames, len(data))
				}
			}
		}
		for p := data; len(p) > 0; {
			n := fr.Write(p[:min(step, len(p))])
			if n == 0 {
				t.Fatalf("buffer full (%d bytes) and no frame", fr.Buffered())
			}
			p = p[n:]
			drain()
			if fr.Buffered() > len(fr.buf) {
				t.Fatalf("buffered %d over the buffer", fr.Buffered())
			}
		}
		fr.End()
		drain()
		if fr.Buffered() != 0 {
			t.Fatalf("%d bytes left after the end", fr.Buffered())
		}
	})
}

// FuzzFramerRoundTrip cuts the input into messages, frames each one either way, and
// expects exactly those messages back, whatever the chunking.
func FuzzFramerRoundTrip(f *testing.F) {
	f.Add([]byte("<13>a|<14>b c|12 x|<1>\r"), uint8(5), uint16(0xA5))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, modes uint16) {
		const maxMsg = 480
		var want []string
		var in bytes.Buffer
		for i, m := range bytes.Split(data, []byte("|")) {
			if len(m) == 0 || len(m) > maxMsg {
				continue
			}
			octet := modes&(1<<(i%16)) != 0
			// Newline framing cannot carry an LF, nor a message that starts like a
			// length header, a blank line or ends in CR; octet counting carries all.
			if !octet && (bytes.IndexByte(m, '\n') >= 0 || m[0] == '\r' || (m[0] >= '1' && m[0] <= '9') || m[len(m)-1] == '\r') {
				octet = true
			}
			if octet {
				fmt.Fprintf(&in, "%d %s", len(m), m)
			} else {
				in.Write(m)
				in.WriteByte('\n')
			}
			want = append(want, string(m))
		}
		var chunks []string
		step := int(chunk)%97 + 1
		for p := in.Bytes(); len(p) > 0; p = p[min(step, len(p)):] {
			chunks = append(chunks, string(p[:min(step, len(p))]))
		}
		got := frameAll(t, maxMsg, chunks...)
		if len(got) != len(want) {
			t.Fatalf("got %d frames %q, want %d %q", len(got), got, len(want), want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("frame %d: got %q, want %q", i, got[i], want[i])
			}
		}
	})
}
