package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/vigil-sec/vigil/internal/testutil"
)

// dlqLetter is the part of a `vigil dlq show` line the test reads.
type dlqLetter struct {
	Stage    string `json:"stage"`
	Source   string `json:"source"`
	Reason   string `json:"reason"`
	Original string `json:"original"`
}

// vigilCLI runs a vigil subcommand and returns its stdout; a non-zero exit fails.
func vigilCLI(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(vigilBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("vigil %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// TestSeed004 runs examples/seed-004-mozdef.yaml as shipped, with its schemas from
// examples/schemas, against test servers: GitHub-signed webhooks, the Okta System
// Log (a local server that pages as Okta documents) and an SQS queue (moto). Each
// intake gets valid events and events whose severity is lower case, which the
// schemas refuse. Valid events reach the archive and the search store
// (VictoriaLogs) once; the others wait in the DLQ. After the schemas are fixed to
// accept lower-case severities and Vigil restarted, `vigil dlq replay` brings every
// one of them through exactly once, and the DLQ is empty.
func TestSeed004(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil, moto and VictoriaLogs as processes; skipped with -short")
	}
	vl := testutil.StartVictoriaLogs(t)
	moto := testutil.StartMoto(t)
	okta := testutil.StartOktaSystemLog(t, "seed-004-okta-token")
	sqsc := sqs.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")},
		func(o *sqs.Options) { o.BaseEndpoint = aws.String(moto.Endpoint()) })
	q, err := sqsc.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("mozdef-events")})
	if err != nil {
		t.Fatal(err)
	}

	// keys of the events sent, valid or not: "w…" webhooks, "q…" SQS, "o…" Okta uuids.
	valid, invalid := map[string]bool{}, map[string]bool{}
	const perIntake, badPerIntake = 6, 3
	severity := func(i int) string {
		if i >= perIntake {
			return "warning" // a producer that writes severities in lower case
		}
		return "INFO"
	}
	mozdefEvent := func(key string, i int) []byte {
		b, _ := json.Marshal(map[string]any{"tid": key, "summary": "login by alice", "category": "authentication",
			"severity": severity(i), "hostname": "sso.example", "tags": []string{"seed-004"}, "details": map[string]any{"n": i}})
		return b
	}
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for i := range perIntake + badPerIntake {
		key := fmt.Sprintf("o%d", i)
		ev := testutil.AuditEvent{ID: key, Time: base.Add(time.Duration(i) * time.Second)}
		if i >= perIntake {
			ev.Fields = map[string]any{"severity": "warn"}
			invalid[key] = true
		} else {
			valid[key] = true
		}
		okta.Add(ev)
	}

	dir := t.TempDir()
	schemaDir := filepath.Join(dir, "schemas")
	if err := os.MkdirAll(schemaDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mozdef-event.json", "okta-system-log.json"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "schemas", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(schemaDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	webhookAddr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	raw, err := os.ReadFile(filepath.Join("..", "examples", "seed-004-mozdef.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, dir, string(raw)+fmt.Sprintf("admin: {address: %s}\n", adminAddr))
	const secret = "seed-004-webhook-secret"
	for k, v := range map[string]string{
		"VIGIL_DATA_DIR": filepath.Join(dir, "data"), "WEBHOOK_ADDRESS": webhookAddr, "WEBHOOK_SECRET": secret,
		"OKTA_ORG_URL": okta.URL, "OKTA_TOKEN": "seed-004-okta-token",
		"QUEUE_URL": aws.ToString(q.QueueUrl), "SQS_ENDPOINT": moto.Endpoint(),
		"SCHEMA_DIR": schemaDir, "ES_URL": vl.BulkURL(),
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	p := startVigil(t, adminAddr, "-c", cfgPath)
	defer func() {
		if t.Failed() {
			p.kill()
			t.Logf("vigil output:\n%s", p.out.String())
		}
	}()

	// Webhooks, signed as GitHub signs them; one with a wrong signature is refused.
	post := func(body []byte, sig string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+webhookAddr+"/v1/events/webhooks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(body []byte) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	if code := post(mozdefEvent("forged", 0), sign([]byte("something else"))); code != http.StatusForbidden {
		t.Fatalf("webhook with a wrong signature: %d, want 403", code)
	}
	for i := range perIntake + badPerIntake {
		key := fmt.Sprintf("w%d", i)
		body := mozdefEvent(key, i)
		if code := post(body, sign(body)); code != 200 {
			t.Fatalf("signed webhook %s: %d", key, code)
		}
		if i >= perIntake {
			invalid[key] = true
		} else {
			valid[key] = true
		}
	}
	// SQS: one batch.
	var entries []sqstypes.SendMessageBatchRequestEntry
	for i := range perIntake + badPerIntake {
		key := fmt.Sprintf("q%d", i)
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(key), MessageBody: aws.String(string(mozdefEvent(key, i)))})
		if i >= perIntake {
			invalid[key] = true
		} else {
			valid[key] = true
		}
	}
	if out, err := sqsc.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries}); err != nil || len(out.Failed) > 0 {
		t.Fatalf("sqs send: %v %v", err, out)
	}

	archiveDir := filepath.Join(dir, "data", "archive")
	// keyOf names the sent event an archived or dead-lettered document came from.
	keyOf := func(d map[string]any) string {
		if k, ok := d["tid"].(string); ok {
			return k
		}
		if k, ok := d["uuid"].(string); ok {
			return k
		}
		return ""
	}
	archived := func() (byKey map[string]int, ids map[string]int) {
		byKey, ids = map[string]int{}, map[string]int{}
		for _, d := range testutil.ArchiveDocs(t, archiveDir) {
			byKey[keyOf(d)]++
			ids[fmt.Sprint(testutil.Field(d, "event.id"))]++
		}
		return byKey, ids
	}
	dlqAdmin := "--admin=http://" + adminAddr
	letters := func() map[string]dlqLetter {
		out := map[string]dlqLetter{}
		sc := bufio.NewScanner(strings.NewReader(vigilCLI(t, "dlq", "show", dlqAdmin, "-n", "1000")))
		for sc.Scan() {
			var l dlqLetter
			var orig map[string]any
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil || json.Unmarshal([]byte(l.Original), &orig) != nil {
				t.Fatalf("dlq show line %q: %v", sc.Text(), err)
			}
			key := keyOf(orig)
			if _, dup := out[key]; dup {
				t.Errorf("%s dead-lettered twice", key)
			}
			out[key] = l
		}
		return out
	}
	hasAll := func(have map[string]int, want map[string]bool) bool {
		for k := range want {
			if have[k] == 0 {
				return false
			}
		}
		return true
	}
	var dead map[string]dlqLetter
	testutil.Eventually(t, 60*time.Second, "valid events archived and invalid ones dead-lettered", func() bool {
		byKey, _ := archived()
		dead = letters()
		return hasAll(byKey, valid) && len(dead) >= len(invalid)
	})
	time.Sleep(2 * time.Second) // a duplicate would have arrived by now
	byKey, ids := archived()
	dead = letters()
	for k := range valid {
		if byKey[k] != 1 {
			t.Errorf("valid event %s archived %d times, want once", k, byKey[k])
		}
	}
	for k := range invalid {
		l, ok := dead[k]
		if byKey[k] != 0 || !ok || l.Stage != "validate" || !strings.Contains(l.Reason, "severity") {
			t.Errorf("invalid event %s: archived %d times, dead letter %+v; want only a validate letter about severity", k, byKey[k], l)
		}
	}
	if len(byKey) != len(valid) || len(dead) != len(invalid) || byKey["forged"] != 0 {
		t.Fatalf("archive has %d distinct events (want %d), DLQ %d (want %d)", len(byKey), len(valid), len(dead), len(invalid))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event id %s archived %d times", id, n)
		}
	}

	// The fix: the schemas accept lower-case severities too. Schemas are compiled
	// at start-up, so Vigil restarts (its DLQ, poll cursor and queue state kept).
	for _, name := range []string{"mozdef-event.json", "okta-system-log.json"} {
		path := filepath.Join(schemaDir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var schema map[string]any
		if err := json.Unmarshal(b, &schema); err != nil {
			t.Fatal(err)
		}
		sev := schema["properties"].(map[string]any)["severity"].(map[string]any)
		values := sev["enum"].([]any)
		for _, v := range values {
			values = append(values, strings.ToLower(v.(string)))
		}
		sev["enum"] = values
		b, _ = json.MarshalIndent(schema, "", "  ")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.out.String())
	}
	p = startVigil(t, adminAddr, "-c", cfgPath)
	out := vigilCLI(t, "dlq", "replay", dlqAdmin)
	t.Logf("vigil dlq replay: %s", strings.TrimSpace(out))

	testutil.Eventually(t, 60*time.Second, "replayed events archived", func() bool {
		byKey, _ := archived()
		return hasAll(byKey, invalid)
	})
	time.Sleep(2 * time.Second)
	byKey, ids = archived()
	for k := range valid {
		if byKey[k] != 1 {
			t.Errorf("valid event %s archived %d times after the replay, want once", k, byKey[k])
		}
	}
	for k := range invalid {
		if byKey[k] != 1 {
			t.Errorf("replayed event %s archived %d times, want once", k, byKey[k])
		}
	}
	if len(byKey) != len(valid)+len(invalid) {
		t.Errorf("archive has %d distinct events, want %d: %v", len(byKey), len(valid)+len(invalid), byKey)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event id %s archived %d times", id, n)
		}
	}
	if dead = letters(); len(dead) != 0 {
		t.Errorf("DLQ after the replay: %v, want empty", dead)
	}
	// The search store got every event too (at-least-once: distinct keys).
	testutil.Eventually(t, 30*time.Second, "every event in the search store", func() bool {
		seen := map[string]bool{}
		for _, r := range vl.Rows(t) {
			if k := r["tid"]; k != "" {
				seen[k] = true
			} else if k := r["uuid"]; k != "" {
				seen[k] = true
			}
		}
		return len(seen) == len(valid)+len(invalid)
	})
	if err := p.terminate(t, 40*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
