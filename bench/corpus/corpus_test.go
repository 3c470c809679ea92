package corpus

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/albparse"
	"github.com/vigil-sec/vigil/internal/parse/apacheparse"
	"github.com/vigil-sec/vigil/internal/parse/cloudtrailparse"
	"github.com/vigil-sec/vigil/internal/parse/jsonparse"
	"github.com/vigil-sec/vigil/internal/parse/parsetest"
	"github.com/vigil-sec/vigil/internal/parse/syslogparse"
)

func TestDeterministic(t *testing.T) {
	for _, mix := range Mixes {
		a, err := Generate(mix, 42, 2000)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Generate(mix, 42, 2000)
		if !bytes.Equal(a.Data, b.Data) {
			t.Errorf("%s: two corpora of seed 42 differ", mix)
		}
		c, _ := Generate(mix, 43, 2000)
		if bytes.Equal(a.Data, c.Data) {
			t.Errorf("%s: seeds 42 and 43 gave the same corpus", mix)
		}
	}
	g1, g2 := New(7), New(7)
	if !bytes.Equal(g1.ALBFile(50), g2.ALBFile(50)) || !bytes.Equal(g1.CloudTrailFile(20), g2.CloudTrailFile(20)) {
		t.Error("ALB or CloudTrail files of one seed differ")
	}
}

// TestPinned fails when the generator's output changes for a seed: figures measured
// on the old corpus would no longer be comparable. Update the digests on purpose only.
func TestPinned(t *testing.T) {
	c, err := Generate(Syslog, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%x", sha256.Sum256(c.Data))[:16]
	const want = "f28c28378c87bd97"
	if got != want {
		t.Errorf("syslog corpus of seed 1 changed: digest %s, want %s", got, want)
	}
}

func TestLengthsAndFraming(t *testing.T) {
	for _, mix := range Mixes {
		c, err := Generate(mix, 1, 5000)
		if err != nil {
			t.Fatal(err)
		}
		if c.Lines() != 5000 {
			t.Fatalf("%s: %d lines", mix, c.Lines())
		}
		for i := range c.Lines() {
			l := c.Line(i)
			n := len(l) - 1
			if n < MinLen || n > MaxLen {
				t.Fatalf("%s line %d: %d bytes: %q", mix, i, n, l)
			}
			if bytes.IndexByte(l[:n], '\n') >= 0 || l[n] != '\n' {
				t.Fatalf("%s line %d: bad newline: %q", mix, i, l)
			}
			// A line starting with a digit would be taken for an octet-counted frame.
			if l[0] >= '0' && l[0] <= '9' && mix != ApacheLog {
				t.Fatalf("%s line %d starts with a digit: %q", mix, i, l)
			}
		}
	}
	if _, err := Generate("nope", 1, 1); err == nil {
		t.Error("unknown mix accepted")
	}
}

func mustParser(t *testing.T, f parse.Format) parse.Parser {
	t.Helper()
	p, err := f.New(f.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVigilParsesCorpus checks that the lines are what they claim to be: Vigil's own
// parsers take every good line and refuse every bad one of the half-bad corpus.
func TestVigilParsesCorpus(t *testing.T) {
	tests := []struct {
		mix    Mix
		format parse.Format
		bad    int // lines the parser must refuse
	}{
		{Syslog, syslogparse.Format(), 0},
		{SyslogHalfBad, syslogparse.Format(), 1000},
		{NDJSON, jsonparse.Format(), 0},
		{ApacheLog, apacheparse.Format(), 0},
	}
	for _, tt := range tests {
		c, err := Generate(tt.mix, 3, 2000)
		if err != nil {
			t.Fatal(err)
		}
		res := parsetest.Run(mustParser(t, tt.format), c.Data, parsetest.Lines)
		if len(res.Rejected) != tt.bad || len(res.Events) != 2000-tt.bad {
			first := ""
			if len(res.Rejected) > 0 {
				first = res.Rejected[0].Reason + ": " + res.Rejected[0].Original
			}
			t.Errorf("%s: %d events, %d rejected (want %d); first: %s", tt.mix, len(res.Events), len(res.Rejected), tt.bad, first)
		}
	}
	g := New(5)
	res := parsetest.Run(mustParser(t, albparse.Format()), g.ALBFile(500), parsetest.Lines)
	if len(res.Rejected) != 0 || len(res.Events) != 500 {
		t.Errorf("alb: %d events, rejected %v", len(res.Events), res.Rejected[:min(1, len(res.Rejected))])
	}
	ct := g.CloudTrailFile(100)
	if !json.Valid(ct) {
		t.Fatal("CloudTrail file is not JSON")
	}
	res = parsetest.Run(mustParser(t, cloudtrailparse.Format()), ct, parsetest.WholeFile)
	if len(res.Rejected) != 0 || len(res.Events) != 100 {
		t.Errorf("cloudtrail: %d events, rejected %v", len(res.Events), res.Rejected[:min(1, len(res.Rejected))])
	}
}
