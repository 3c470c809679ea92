package awsconf_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/goccy/go-yaml"

	"github.com/vigil-sec/vigil/internal/awsconf"
)

// isolate keeps the developer's AWS environment, shared files and the EC2 metadata
// service out of a test, so that only what the test sets is seen.
func isolate(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "") // restores the value after the test
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestValidate(t *testing.T) {
	valid := func() awsconf.ClientConfig { return awsconf.ClientConfig{Region: awsconf.DefaultRegion} }
	tests := []struct {
		name   string
		modify func(*awsconf.ClientConfig)
		err    string // empty: valid
	}{
		{name: "defaults", modify: func(*awsconf.ClientConfig) {}},
		{name: "endpoint", modify: func(c *awsconf.ClientConfig) { c.Endpoint = "http://127.0.0.1:7070" }},
		{name: "https endpoint with path", modify: func(c *awsconf.ClientConfig) { c.Endpoint = "https://gw.example/s3" }},
		{name: "endpoint not a URL", modify: func(c *awsconf.ClientConfig) { c.Endpoint = "http://[::1" }, err: "endpoint: not a URL"},
		{name: "endpoint scheme", modify: func(c *awsconf.ClientConfig) { c.Endpoint = "ftp://x" }, err: "endpoint: want an http or https URL"},
		{name: "endpoint without scheme", modify: func(c *awsconf.ClientConfig) { c.Endpoint = "minio:9000" }, err: "endpoint: want an http or https URL"},
		{name: "endpoint without host", modify: func(c *awsconf.ClientConfig) { c.Endpoint = "http:///bucket" }, err: "endpoint: no host"},
		{name: "endpoint with credentials", modify: func(c *awsconf.ClientConfig) { c.Endpoint = "http://key:hunter2@minio:9000" }, err: "endpoint: credentials do not belong in the URL"},
		{name: "no region", modify: func(c *awsconf.ClientConfig) { c.Region = "" }, err: "region: required"},
		{name: "static keys", modify: func(c *awsconf.ClientConfig) { c.AccessKeyID, c.SecretAccessKey, c.SessionToken = "AKIA", "s", "t" }},
		{name: "key without secret", modify: func(c *awsconf.ClientConfig) { c.AccessKeyID = "AKIA" }, err: "access_key_id: set both"},
		{name: "secret without key", modify: func(c *awsconf.ClientConfig) { c.SecretAccessKey = "s" }, err: "access_key_id: set both"},
		{name: "token without keys", modify: func(c *awsconf.ClientConfig) { c.SessionToken = "t" }, err: "session_token: only with access_key_id"},
		{name: "role", modify: func(c *awsconf.ClientConfig) { c.RoleARN = "arn:aws:iam::123456789012:role/vigil" }},
		{name: "role with path, id and name", modify: func(c *awsconf.ClientConfig) {
			c.RoleARN, c.ExternalID, c.RoleSessionName = "arn:aws:iam::123456789012:role/ops/vigil-reader", "tenant-42:x", "vigil@node-1"
		}},
		{name: "role in another partition", modify: func(c *awsconf.ClientConfig) { c.RoleARN = "arn:aws-us-gov:iam::123456789012:role/vigil" }},
		{name: "role with keys", modify: func(c *awsconf.ClientConfig) {
			c.AccessKeyID, c.SecretAccessKey, c.RoleARN = "AKIA", "s", "arn:aws:iam::123456789012:role/vigil"
		}},
		{name: "role name only", modify: func(c *awsconf.ClientConfig) { c.RoleARN = "vigil" }, err: "role_arn: want an IAM role ARN"},
		{name: "role short account", modify: func(c *awsconf.ClientConfig) { c.RoleARN = "arn:aws:iam::12345:role/vigil" }, err: "role_arn: want an IAM role ARN"},
		{name: "user not role", modify: func(c *awsconf.ClientConfig) { c.RoleARN = "arn:aws:iam::123456789012:user/vigil" }, err: "role_arn: want an IAM role ARN"},
		{name: "role with region", modify: func(c *awsconf.ClientConfig) { c.RoleARN = "arn:aws:iam:us-east-1:123456789012:role/vigil" }, err: "role_arn: want an IAM role ARN"},
		{name: "role with space", modify: func(c *awsconf.ClientConfig) { c.RoleARN = "arn:aws:iam::123456789012:role/vi gil" }, err: "role_arn: want an IAM role ARN"},
		{name: "external id without role", modify: func(c *awsconf.ClientConfig) { c.ExternalID = "abc" }, err: "external_id: only with role_arn"},
		{name: "external id too short", modify: func(c *awsconf.ClientConfig) {
			c.RoleARN, c.ExternalID = "arn:aws:iam::123456789012:role/vigil", "a"
		}, err: "external_id: want 2 to 1224"},
		{name: "external id too long", modify: func(c *awsconf.ClientConfig) {
			c.RoleARN, c.ExternalID = "arn:aws:iam::123456789012:role/vigil", strings.Repeat("a", 1225)
		}, err: "external_id: want 2 to 1224"},
		{name: "session name without role", modify: func(c *awsconf.ClientConfig) { c.RoleSessionName = "vigil" }, err: "role_session_name: only with role_arn"},
		{name: "session name bad character", modify: func(c *awsconf.ClientConfig) {
			c.RoleARN, c.RoleSessionName = "arn:aws:iam::123456789012:role/vigil", "vigil node"
		}, err: "role_session_name: want 2 to 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.modify(&c)
			err := c.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes a secret: %v", err)
			}
		})
	}
}

func TestExternalIDNotEchoed(t *testing.T) {
	c := awsconf.ClientConfig{Region: "us-east-1", RoleARN: "arn:aws:iam::123456789012:role/vigil", ExternalID: "s3cr3t id"}
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %v: want one that does not echo the external id", err)
	}
}

// TestInlineYAML checks the embedding contract with the config loader's decoder: the
// keys sit at the component's level, defaults survive, unknown keys are rejected.
func TestInlineYAML(t *testing.T) {
	type component struct {
		Bucket               string `yaml:"bucket"`
		awsconf.ClientConfig `yaml:",inline"`
	}
	src := "bucket: b\nendpoint: http://minio:9000\nforce_path_style: false\nrole_arn: arn:aws:iam::123456789012:role/vigil\n"
	c := component{ClientConfig: awsconf.ClientConfig{Region: awsconf.DefaultRegion}}
	if err := yaml.UnmarshalWithOptions([]byte(src), &c, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "b" || c.Endpoint != "http://minio:9000" || c.Region != "us-east-1" || c.ForcePathStyle == nil ||
		*c.ForcePathStyle || c.RoleARN != "arn:aws:iam::123456789012:role/vigil" {
		t.Errorf("decoded %+v", c)
	}
	if err := yaml.UnmarshalWithOptions([]byte("bucket: b\nrole_ar: x\n"), &c, yaml.DisallowUnknownField()); err == nil ||
		!strings.Contains(err.Error(), `unknown field "role_ar"`) {
		t.Errorf("typo: error %v", err)
	}
}

func TestPathStyle(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		endpoint string
		force    *bool
		want     bool
	}{
		{"", nil, false},
		{"http://minio:9000", nil, true},
		{"http://minio:9000", &no, false},
		{"", &yes, true},
	}
	for _, tt := range tests {
		c := awsconf.ClientConfig{Endpoint: tt.endpoint, ForcePathStyle: tt.force}
		if got := c.PathStyle(); got != tt.want {
			t.Errorf("endpoint %q force %v: path style %v, want %v", tt.endpoint, tt.force, got, tt.want)
		}
	}
}

// recorder is an HTTP client that answers every request with an empty 200 and keeps
// the requests, so tests see where the SDK sends them and how it signs them.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

func (r *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request sent")
	}
	return r.reqs[len(r.reqs)-1]
}

// headBucket sends one HeadBucket through a client built the way components build
// theirs, and returns the request as sent.
func headBucket(t *testing.T, c awsconf.ClientConfig) *http.Request {
	t.Helper()
	rec := &recorder{}
	cfg, err := c.Load(context.Background(), awsconfig.WithHTTPClient(rec))
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, c.S3Options)
	if _, err := client.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatal(err)
	}
	return rec.last(t)
}

func TestEndpointAndPathStyle(t *testing.T) {
	isolate(t)
	yes, no := true, false
	tests := []struct {
		name     string
		endpoint string
		force    *bool
		want     string // scheme://host/path of the HeadBucket request
	}{
		{name: "AWS", want: "https://logs.s3.eu-west-1.amazonaws.com/"},
		{name: "AWS path style", force: &yes, want: "https://s3.eu-west-1.amazonaws.com/logs"},
		{name: "endpoint", endpoint: "http://minio.test:9000", want: "http://minio.test:9000/logs"},
		{name: "endpoint virtual host", endpoint: "http://minio.test:9000", force: &no, want: "http://logs.minio.test:9000/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := awsconf.ClientConfig{Region: "eu-west-1", Endpoint: tt.endpoint, ForcePathStyle: tt.force,
				AccessKeyID: "AKIASTATIC", SecretAccessKey: "secret"}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			req := headBucket(t, c)
			u := *req.URL
			u.RawQuery = ""
			if got := u.String(); got != tt.want {
				t.Errorf("request to %s, want %s", got, tt.want)
			}
			if auth := req.Header.Get("Authorization"); !strings.Contains(auth, "Credential=AKIASTATIC/") ||
				!strings.Contains(auth, "/eu-west-1/s3/aws4_request") {
				t.Errorf("Authorization %q: want the static key and the region", auth)
			}
		})
	}
}

func TestStaticCredentials(t *testing.T) {
	isolate(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENV") // static keys win over the chain
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	c := awsconf.ClientConfig{Region: "us-east-1", AccessKeyID: "AKIASTATIC", SecretAccessKey: "secret", SessionToken: "token"}
	cfg, err := c.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "AKIASTATIC" || creds.SecretAccessKey != "secret" || creds.SessionToken != "token" {
		t.Errorf("credentials %+v", creds)
	}
	if cfg.Region != "us-east-1" {
		t.Errorf("region %q", cfg.Region)
	}
}

func TestDefaultChain(t *testing.T) {
	isolate(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	c := awsconf.ClientConfig{Region: "us-east-1"}
	cfg, err := c.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "AKIAENV" || creds.SecretAccessKey != "envsecret" {
		t.Errorf("credentials %+v: want the environment's", creds)
	}
}

// fakeSTS answers AssumeRole as STS documents it (query protocol, XML result) and
// records the calls.
type fakeSTS struct {
	mu    sync.Mutex
	calls []url.Values
	auth  []string
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, r.PostForm)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	if r.PostForm.Get("Action") != "AssumeRole" {
		http.Error(w, "unexpected action", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/vigil/%[1]s</Arn>
      <AssumedRoleId>AROAEXAMPLE:%[1]s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAROLE</AccessKeyId>
      <SecretAccessKey>rolesecret</SecretAccessKey>
      <SessionToken>roletoken</SessionToken>
      <Expiration>%[2]s</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, r.PostForm.Get("RoleSessionName"), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}

func TestAssumeRole(t *testing.T) {
	tests := []struct {
		name        string
		externalID  string
		sessionName string
		wantSession string
	}{
		{name: "defaults", wantSession: awsconf.DefaultRoleSessionName},
		{name: "external id and session name", externalID: "tenant-42", sessionName: "vigil-node-1", wantSession: "vigil-node-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			sts := &fakeSTS{}
			srv := httptest.NewServer(sts)
			defer srv.Close()
			// The SDK's per-service endpoint setting reaches the STS client that Load
			// builds; the S3 endpoint must not.
			t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)

			c := awsconf.ClientConfig{Region: "eu-west-1", Endpoint: "http://minio.test:9000",
				AccessKeyID: "AKIABASE", SecretAccessKey: "basesecret",
				RoleARN: "arn:aws:iam::123456789012:role/vigil", ExternalID: tt.externalID, RoleSessionName: tt.sessionName}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			cfg, err := c.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			client := s3.NewFromConfig(cfg, c.S3Options, func(o *s3.Options) { o.HTTPClient = rec })
			for range 2 {
				if _, err := client.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("logs")}); err != nil {
					t.Fatal(err)
				}
			}

			sts.mu.Lock()
			defer sts.mu.Unlock()
			if len(sts.calls) != 1 {
				t.Fatalf("%d AssumeRole calls, want 1 (the credentials are cached)", len(sts.calls))
			}
			call := sts.calls[0]
			if got := call.Get("RoleArn"); got != c.RoleARN {
				t.Errorf("RoleArn %q", got)
			}
			if got := call.Get("RoleSessionName"); got != tt.wantSession {
				t.Errorf("RoleSessionName %q, want %q", got, tt.wantSession)
			}
			if got, ok := call["ExternalId"]; (tt.externalID == "") != !ok || (ok && got[0] != tt.externalID) {
				t.Errorf("ExternalId %q, want %q", got, tt.externalID)
			}
			if !strings.Contains(sts.auth[0], "Credential=AKIABASE/") || !strings.Contains(sts.auth[0], "/eu-west-1/sts/") {
				t.Errorf("AssumeRole signed with %q: want the base credentials", sts.auth[0])
			}

			req := rec.last(t)
			if req.URL.Host != "minio.test:9000" {
				t.Errorf("S3 request to %s, want the endpoint", req.URL)
			}
			if auth := req.Header.Get("Authorization"); !strings.Contains(auth, "Credential=ASIAROLE/") {
				t.Errorf("S3 request signed with %q: want the role's credentials", auth)
			}
			if tok := req.Header.Get("X-Amz-Security-Token"); tok != "roletoken" {
				t.Errorf("X-Amz-Security-Token %q, want the role's session token", tok)
			}
		})
	}
}

func TestAssumeRoleRefused(t *testing.T) {
	isolate(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>`+
			`<Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error>`+
			`<RequestId>x</RequestId></ErrorResponse>`)
	}))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	c := awsconf.ClientConfig{Region: "us-east-1", AccessKeyID: "AKIABASE", SecretAccessKey: "basesecret",
		RoleARN: "arn:aws:iam::123456789012:role/vigil"}
	cfg, err := c.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = cfg.Credentials.Retrieve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("error %v, want STS's AccessDenied", err)
	}
}
