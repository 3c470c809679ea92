package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRulesCheck(t *testing.T) {
	code, out, errOut := runCLI(t, "", "rules", "check", "../detect/sigma/testdata/rules")
	if code != 0 || strings.TrimSpace(out) != "3 rules loaded" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	bad := filepath.Join(t.TempDir(), "bad.yml")
	rule := "title: x\nid: y\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel:\n    eventName|expand: '%x%'\n  condition: sel\n"
	if err := os.WriteFile(bad, []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "", "rules", "check", bad)
	if want := bad + ":6: unsupported feature modifier expand\n"; code != 1 || !strings.HasPrefix(errOut, want) {
		t.Fatalf("exit %d, stderr %q, want %q", code, errOut, want)
	}
}

func TestRulesTest(t *testing.T) {
	code, out, errOut := runCLI(t, "", "rules", "test", "../detect/sigma/testdata/ruletests")
	if code != 0 || !strings.Contains(out, "rule tests passed") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
