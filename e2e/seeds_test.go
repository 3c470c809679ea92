package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// The helpers of the seed tests that read AWS log files: objects built from the
// parsers' golden cases (lines modelled on AWS's documentation), and what each record
// is expected to become.

// golden reads a parser's golden case: its input and the number of events its
// want.json lists.
func golden(t *testing.T, parser, name string) (input []byte, events int) {
	t.Helper()
	dir := filepath.Join("..", "internal", "parse", parser, "testdata", name)
	input, err := os.ReadFile(filepath.Join(dir, "input.log"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return input, len(want.Events)
}

// goldenEventIDs returns the event.id of every event a golden case's want.json lists.
func goldenEventIDs(t *testing.T, parser, name string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "internal", "parse", parser, "testdata", name, "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Events []struct {
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
		} `json:"events"`
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range want.Events {
		if e.Event.ID == "" {
			t.Fatalf("%s/%s: an event without event.id", parser, name)
		}
		ids = append(ids, e.Event.ID)
	}
	return ids
}

func gzipBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// records is what a test expects to find: one entry per record, by an identity that
// does not depend on the pipeline (object key and line, CloudTrail's eventID, a
// request's path), with its dataset.
type records map[string]string

// addLines expects one record per line of a line-format object that is not a
// header (#…) and not empty; lines are counted from 1, empty ones included, as the
// s3 source numbers them.
func (r records) addLines(key string, body []byte, dataset string) int {
	n := 0
	for i, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r[fmt.Sprintf("%s#%d", key, i+1)] = dataset
		n++
	}
	return n
}

// identity is a stored document's record identity, in the terms of records: key and
// line for line formats, key and event.id for whole-object formats, url.original for
// the Apache log. Numbers are strings in VictoriaLogs and float64 in JSON documents.
func identity(get func(string) any) string {
	key := get("aws.s3.object.key")
	if key == nil || key == "" {
		return "apache " + fmt.Sprint(get("url.original"))
	}
	if line := get("aws.s3.object.line"); line != nil && line != "" {
		if f, ok := line.(float64); ok {
			line = strconv.FormatInt(int64(f), 10)
		}
		return fmt.Sprintf("%s#%v", key, line)
	}
	return fmt.Sprintf("%s@%v", key, get("event.id"))
}

// checkArchive compares the archived documents with want: each expected record
// exactly once with its dataset, nothing else, and every event.id once. It returns
// the set of event.ids.
func checkArchive(t *testing.T, docs []map[string]any, want records) map[string]bool {
	t.Helper()
	got := map[string]int{}
	ids := map[string]int{}
	for _, d := range docs {
		id := identity(func(f string) any { return testutil.Field(d, f) })
		got[id]++
		ids[fmt.Sprint(testutil.Field(d, "event.id"))]++
		if ds := fmt.Sprint(testutil.Field(d, "event.dataset")); want[id] != "" && ds != want[id] {
			t.Errorf("archive: %s has dataset %s, want %s", id, ds, want[id])
		}
	}
	compare(t, "archive", got, want)
	out := map[string]bool{}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("archive: event.id %s %d times", id, n)
		}
		out[id] = true
	}
	if len(docs) != len(want) {
		t.Errorf("archive: %d documents, want %d", len(docs), len(want))
	}
	return out
}

// checkSearch compares the rows of the search store (VictoriaLogs, which ignores the
// bulk _id, so a retried request would add rows) with want and the archive's
// event.ids: every record and every id present, nothing else.
func checkSearch(t *testing.T, rows []map[string]string, want records, archived map[string]bool) {
	t.Helper()
	got := map[string]int{}
	ids := map[string]bool{}
	for _, r := range rows {
		id := identity(func(f string) any {
			if v, ok := r[f]; ok {
				return v
			}
			return nil
		})
		got[id] = 1
		ids[r["event.id"]] = true
		if ds := r["event.dataset"]; want[id] != "" && ds != want[id] {
			t.Errorf("search store: %s has dataset %s, want %s", id, ds, want[id])
		}
	}
	compare(t, "search store", got, want)
	for id := range archived {
		if !ids[id] {
			t.Errorf("search store: event.id %s is archived but not searchable", id)
		}
	}
	for id := range ids {
		if !archived[id] {
			t.Errorf("search store: event.id %s is not in the archive", id)
		}
	}
}

func compare(t *testing.T, where string, got map[string]int, want records) {
	t.Helper()
	bad := 0
	for id := range want {
		if got[id] != 1 {
			if bad++; bad <= 10 {
				t.Errorf("%s: %s %d times, want once", where, id, got[id])
			}
		}
	}
	for id, n := range got {
		if _, ok := want[id]; !ok {
			if bad++; bad <= 10 {
				t.Errorf("%s: unexpected record %s (%d times)", where, id, n)
			}
		}
	}
}

// waitSearchable waits until the search store holds n distinct event.ids, and
// fails with what it holds, by dataset, and vigil's log if it does not in time.
func waitSearchable(t *testing.T, p *proc, vl searchStore, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ids := map[string]bool{}
		byDataset := map[string]int{}
		for _, r := range vl.Rows(t) {
			if !ids[r["event.id"]] {
				byDataset[r["event.dataset"]]++
			}
			ids[r["event.id"]] = true
		}
		if len(ids) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d of %d records searchable (by dataset %v); vigil's log:\n%s", within, len(ids), n, byDataset, p.out.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// metricSum adds up the samples of a counter on vigil's /metrics whose labels
// contain every one of labels (as `name="value"`).
func metricSum(t *testing.T, adminAddr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics: %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// quickArchive makes a seed example's S3 archive close its objects after 3 s rather
// than the shipped 60 s (config substitution covers strings only, so the test edits the
// line), so the test does not spend a minute waiting for the first object.
func quickArchive(t *testing.T, cfg string) string {
	t.Helper()
	const shipped = `{type: s3, bucket: "${ARCHIVE_BUCKET}",`
	if strings.Count(cfg, shipped) != 1 {
		t.Fatalf("the example's archive line changed; want one %q", shipped)
	}
	return strings.Replace(cfg, shipped, shipped+" max_age: 3s,", 1)
}
