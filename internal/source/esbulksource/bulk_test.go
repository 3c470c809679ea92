package esbulksource

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseBulk(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string // items as action/index/id/status, or "error: <reason prefix>"
	}{
		{"index and create", "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n{\"create\":{}}\n{\"y\":2}\n", "index/a/1/0 create/dflt//0"},
		{"blank lines, no final newline", "\n{\"create\":{\"_index\":\"a\"}}\n\n{\"x\":1}", "create/a//0"},
		{"update and delete", "{\"delete\":{\"_id\":\"1\"}}\n{\"update\":{\"_id\":\"2\"}}\n{\"doc\":{}}\n{\"create\":{}}\n{}\n", "delete/dflt/1/400 update/dflt/2/400 create/dflt//0"},
		{"bad document", "{\"create\":{}}\n{\"x\":\n{\"create\":{}}\n{\"ok\":true}\n", "create/dflt//400 create/dflt//0"},
		{"document not an object", "{\"create\":{}}\n[1]\n", "create/dflt//400"},
		{"bad action line", "{\"create\":{}}\n{}\nnot json\n{}\n", "error: Malformed action/metadata line [3]"},
		{"two actions in a line", "{\"create\":{},\"index\":{}}\n{}\n", "error: Malformed action/metadata line [1]"},
		{"unknown action", "{\"upsert\":{}}\n{}\n", "error: Malformed action/metadata line [1], expected one of"},
		{"missing source", "{\"create\":{}}\n", "error: The bulk request must be terminated"},
		{"numeric _id", "{\"create\":{\"_id\":5}}\n{}\n", "error: Malformed action/metadata line [1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := parseBulk([]byte(tt.give), "dflt")
			var got []string
			if err != nil {
				var re *requestError
				if !errors.As(err, &re) {
					t.Fatalf("error %v", err)
				}
				if !strings.HasPrefix(tt.want, "error: ") || !strings.HasPrefix(re.reason, strings.TrimPrefix(tt.want, "error: ")) {
					t.Fatalf("error %q, want %s", re.reason, tt.want)
				}
				return
			}
			for _, it := range items {
				got = append(got, fmt.Sprintf("%s/%s/%s/%d", it.action, it.index, it.id, it.status))
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("got %s, want %s", strings.Join(got, " "), tt.want)
			}
		})
	}
	items, _ := parseBulk([]byte("{\"create\":{}}\n{\"x\":1}\n{\"create\":{}}\n{bad\n"), "i")
	if !strings.Contains(items[1].reason, "line [4]") || items[1].errType != "mapper_parsing_exception" {
		t.Errorf("bad document reason %q", items[1].reason)
	}
	items, _ = parseBulk([]byte("{\"create\":{}}\n{}\n"), "")
	if items[0].status != 400 || items[0].errType != "action_request_validation_exception" {
		t.Errorf("missing index: %+v", items[0])
	}
}

func TestDatasetOf(t *testing.T) {
	tests := []struct{ give, want string }{
		{"logs-nginx.access-default", "nginx.access"},
		{"logs-app-web-prod", "app-web"},
		{"metrics-system.cpu-ns", "system.cpu"},
		{"logs-nodash", ""},
		{"audit-2025.01.31", "audit"},
		{"audit-2025-01-31", "audit"},
		{"filebeat-8.17.0", "filebeat-8.17.0"},
		{".ds-logs", ""},
		{"Bad Name", ""},
		{"plain", "plain"},
	}
	for _, tt := range tests {
		if got := datasetOf(tt.give); got != tt.want {
			t.Errorf("datasetOf(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
