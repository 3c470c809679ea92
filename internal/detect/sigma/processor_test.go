package sigma_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/detect/sigma"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/processors"
)

func TestConfig(t *testing.T) {
	cfg, err := config.Load("testdata/config_sigma.yaml", components.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	reg := components.Builtin()
	chain, err := process.NewChain(processors.Configured(cfg), reg.Processor, process.Deps{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if chain.Len() != 1 {
		t.Fatalf("%d processors", chain.Len())
	}

	_, err = config.Load("testdata/config_sigma_typo.yaml", components.Builtin())
	if err == nil || !strings.Contains(err.Error(), "rulez") {
		t.Fatalf("typo: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		rules []string
		fm    string
		want  string
	}{
		{"no rules", nil, "builtin", "rules: missing"},
		{"no match", []string{"testdata/nothing/**/*.yml"}, "builtin", "matches no rule file"},
		{"missing file", []string{"testdata/rules/nope.yml"}, "builtin", "no such file"},
		{"bad mapping", []string{"testdata/rules"}, "testdata/nope.yml", "field_mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sigma.NewConfig()
			c.Rules, c.FieldMapping = tt.rules, tt.fm
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestAlert checks the alert a match emits and that the event passes unchanged.
func TestAlert(t *testing.T) {
	n := newNormalizer(t, "testdata/rules")
	rec := `{"Records":[{"eventVersion":"1.09","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/alice","accountId":"123456789012","userName":"alice"},"eventTime":"2026-12-01T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","requestParameters":{"userName":"mallory"},"eventID":"11111111-2222-3333-4444-555555555555","eventType":"AwsApiCall","recipientAccountId":"123456789012"}]}`
	out := &collect{}
	if _, err := n.Process(process.Record{Data: []byte(rec), Received: time.Unix(0, 0)}, out); err != nil {
		t.Fatal(err)
	}
	if out.events != 1 || len(out.alerts) != 1 {
		t.Fatalf("%d events, %d alerts", out.events, len(out.alerts))
	}
	a := out.alerts[0]
	get := func(path string) any {
		var v any = a
		for _, p := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		}
		return v
	}
	want := map[string]any{
		"event.kind":                            "alert",
		"event.dataset":                         "vigil.alert",
		"event.severity":                        float64(47),
		"event.risk_score":                      float64(47),
		"log.level":                             "medium",
		"rule.id":                               "6b7f3c1e-2d4a-4e59-9c0b-1a2b3c4d5e01",
		"rule.name":                             "Access Key Created For Another User",
		"rule.author":                           "Vigil authors",
		"rule.ruleset":                          "sigma",
		"event.id":                              sigma.AlertID("6b7f3c1e-2d4a-4e59-9c0b-1a2b3c4d5e01", "11111111-2222-3333-4444-555555555555"),
		"vigil.alert.event.id":                  "11111111-2222-3333-4444-555555555555",
		"vigil.alert.event.dataset":             "aws.cloudtrail",
		"vigil.alert.event.timestamp":           "2026-12-01T10:00:00Z",
		"@timestamp":                            "2026-12-01T10:00:00Z",
		"vigil.alert.source_event.event.action": "CreateAccessKey",
	}
	for k, w := range want {
		if got := get(k); got != w {
			t.Errorf("%s = %v, want %v", k, got, w)
		}
	}
	if tags, _ := get("tags").([]any); len(tags) != 2 {
		t.Errorf("tags = %v", get("tags"))
	}
	if ids, _ := get("threat.technique.id").([]any); len(ids) != 1 || ids[0] != "T1098.001" {
		t.Errorf("threat.technique.id = %v", get("threat.technique.id"))
	}
	if refs, _ := get("rule.reference").([]any); len(refs) != 1 {
		t.Errorf("rule.reference = %v", get("rule.reference"))
	}
}

func TestAlertIDDeterministic(t *testing.T) {
	a, b := sigma.AlertID("r1", "e1"), sigma.AlertID("r1", "e1")
	if a != b || len(a) != 20 || a == sigma.AlertID("r1", "e2") || a == sigma.AlertID("r2", "e1") {
		t.Errorf("ids %q %q", a, b)
	}
}

func TestSeverity(t *testing.T) {
	for level, want := range map[string]int64{"informational": 1, "low": 21, "medium": 47, "high": 73, "critical": 99, "": 0} {
		if got := sigma.Severity(level); got != want {
			t.Errorf("%q: %d, want %d", level, got, want)
		}
	}
}
