package hecsource

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestEvents(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []string // records, or one "code N at M" for an error
	}{
		{"string event", `{"event":"hello"}`, []string{`{"message":"hello"}`}},
		{"concatenated with metadata", `{"time":1426279439.500,"host":"h1","source":"/var/log/a","sourcetype":"st","index":"main","event":"a"}{"event":{"user":"x","n":1},"fields":{"dc":"eu","tags":["a","b"]}}`,
			[]string{`{"message":"a","@timestamp":"2015-03-13T20:43:59.5Z","host":{"name":"h1"},"splunk":{"source":"/var/log/a","sourcetype":"st","index":"main"}}`,
				`{"user":"x","n":1,"splunk":{"fields":{"dc":"eu","tags":["a","b"]}}}`}},
		{"newline separated, string time", "{\"event\":\"a\",\"time\":\"1700000000\"}\n\n{\"event\":\"b\",\"time\":1700000000.123456789}\n",
			[]string{`{"message":"a","@timestamp":"2023-11-14T22:13:20Z"}`, `{"message":"b","@timestamp":"2023-11-14T22:13:20.123456789Z"}`}},
		{"exponent time", `{"event":"a","time":1.7e9}`, []string{`{"message":"a","@timestamp":"2023-11-14T22:13:20Z"}`}},
		{"number event", `{"event":42}`, []string{`{"message":"42"}`}},
		{"empty object event", `{"event":{},"host":"h"}`, []string{`{"host":{"name":"h"}}`}},
		{"escaped host", `{"event":"a","host":"h\"1"}`, []string{`{"message":"a","host":{"name":"h\"1"}}`}},
		{"no data", "  \n", []string{"code 5 at 0"}},
		{"missing event", `{"event":"a"}{"host":"h"}`, []string{"code 12 at 1"}},
		{"null event", `{"event":null}`, []string{"code 12 at 0"}},
		{"blank event", `{"event":"a"}{"event":"a"}{"event":""}`, []string{"code 13 at 2"}},
		{"syntax error", `{"event":"a"}{"event":`, []string{"code 6 at 1"}},
		{"not an object", `["a"]`, []string{"code 6 at 0"}},
		{"host not a string", `{"event":"a","host":5}`, []string{"code 6 at 0"}},
		{"bad time", `{"event":"a","time":"yesterday"}`, []string{"code 6 at 0"}},
		{"negative time", `{"event":"a","time":-5}`, []string{"code 6 at 0"}},
		{"huge time", `{"event":"a","time":1e300}`, []string{"code 6 at 0"}},
		{"nested fields", `{"event":"a","fields":{"x":{"y":1}}}`, []string{"code 15 at 0"}},
		{"fields not an object", `{"event":"a","fields":[1]}`, []string{"code 15 at 0"}},
		{"index not allowed", `{"event":"a","index":"main"}{"event":"b","index":"secret"}`, []string{"code 7 at 1"}},
	}
	d := decoder{allowed: map[string]bool{"main": true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := d.events([]byte(tt.give))
			var got []string
			if err != nil {
				var ee *eventError
				if !errors.As(err, &ee) {
					t.Fatalf("error %v is no eventError", err)
				}
				got = []string{"code " + itoa(ee.code) + " at " + itoa(ee.number)}
			}
			for _, r := range recs {
				if !json.Valid(r) {
					t.Errorf("record %s is not valid JSON", r)
				}
				got = append(got, string(r))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestRaw(t *testing.T) {
	host, st := "web-1", "access_combined"
	m := meta{host: &host, sourcetype: &st, time: "2023-11-14T22:13:20Z"}
	var d decoder
	recs, err := d.raw([]byte("line \"one\"\r\n\n  \nline two"), &m)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"message":"line \"one\"","@timestamp":"2023-11-14T22:13:20Z","host":{"name":"web-1"},"splunk":{"sourcetype":"access_combined"}}`,
		`{"message":"line two","@timestamp":"2023-11-14T22:13:20Z","host":{"name":"web-1"},"splunk":{"sourcetype":"access_combined"}}`,
	}
	if len(recs) != 2 || string(recs[0]) != want[0] || string(recs[1]) != want[1] {
		t.Errorf("got %q", recs)
	}
	if _, err := d.raw([]byte("\n \r\n"), &m); err == nil {
		t.Error("a blank body was taken")
	}
}

func itoa(i int) string { return uitoa(uint64(i)) }
