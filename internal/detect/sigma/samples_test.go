package sigma_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/detect/sigma"
	"github.com/vigil-sec/vigil/internal/parse/cloudtrailparse"
	"github.com/vigil-sec/vigil/internal/parse/conformancetest"
	"github.com/vigil-sec/vigil/internal/process"
)

// collect is a process.Output that counts events and alerts.
type collect struct {
	events  int
	alerts  []map[string]any
	rejects []error
}

func (c *collect) Event(dataset string, doc []byte) error {
	if dataset != sigma.AlertDataset {
		c.events++
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return err
	}
	c.alerts = append(c.alerts, m)
	return nil
}
func (c *collect) Reject(_ int, _ []byte, reason error) { c.rejects = append(c.rejects, reason) }
func (c *collect) Skip(string)                          {}

// newNormalizer returns a CloudTrail normalizer whose chain holds one sigma processor.
func newNormalizer(t testing.TB, rules ...string) *process.Normalizer {
	t.Helper()
	cfg := sigma.NewConfig()
	cfg.Rules = rules
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	types := func(name string) (process.Type, bool) { return sigma.Type(), name == "sigma" }
	chain, err := process.NewChain([]*config.Processor{{Type: "sigma", Settings: cfg}}, types, process.Deps{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cloudtrailparse.Format().New(cloudtrailparse.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &process.Normalizer{Source: "test", FormatDataset: cloudtrailparse.Dataset, KeepOriginal: true,
		Parser: p, Chain: chain}
}

var hitRE = regexp.MustCompile("`([a-z0-9_]+)` \\((\\d+)\\)")

// TestCloudTrailSamples replays the Stratus Red Team detonations through the
// CloudTrail parser and the 57 AWS rules and expects exactly the matches the
// samples' README lists per file.
func TestCloudTrailSamples(t *testing.T) {
	dir := conformancetest.Shared(t, "sigma", "cloudtrail-samples")
	rulesDir := conformancetest.Shared(t, "sigma", "rules", "cloud", "aws")
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int{} // file → rule file stem → hits
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `aws.") {
			continue
		}
		cols := strings.Split(line, "|")
		file := strings.Trim(strings.TrimSpace(cols[1]), "`")
		hits := map[string]int{}
		for _, m := range hitRE.FindAllStringSubmatch(cols[len(cols)-2], -1) {
			n, _ := strconv.Atoi(m[2])
			hits[m[1]] = n
		}
		want[file] = hits
	}
	if len(want) < 30 {
		t.Fatalf("read %d files from the README's table; has its format changed?", len(want))
	}
	stems := map[string]string{} // rule id → file stem
	set, err := sigma.Load([]string{rulesDir}, sigma.BuiltinFieldMapping())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range set.Rules {
		stems[r.ID] = strings.TrimSuffix(filepath.Base(r.File), ".yml")
	}
	n := newNormalizer(t, rulesDir)
	files := make([]string, 0, len(want))
	for f := range want {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, "stratus-red-team", f))
			if err != nil {
				t.Fatal(err)
			}
			out := &collect{}
			if _, err := n.Process(process.Record{Data: data, Received: time.Unix(0, 0)}, out); err != nil {
				t.Fatal(err)
			}
			if len(out.rejects) > 0 {
				t.Fatalf("rejected: %v", out.rejects)
			}
			got := map[string]int{}
			for _, a := range out.alerts {
				rule := a["rule"].(map[string]any)
				got[stems[rule["id"].(string)]]++
				if rule["author"] == nil || rule["author"] == "" {
					t.Errorf("alert of %s has no rule.author", rule["id"])
				}
			}
			w := want[f]
			for r, n := range w {
				if got[r] != n {
					t.Errorf("%s: %d matches, want %d", r, got[r], n)
				}
			}
			for r, n := range got {
				if _, ok := w[r]; !ok {
					t.Errorf("%s: %d unexpected matches", r, n)
				}
			}
		})
	}
}
