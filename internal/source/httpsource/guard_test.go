package httpsource

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/vigil-sec/vigil/internal/config"
)

func sign(secret, prefix string, parts ...string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		mac.Write([]byte(p))
	}
	return prefix + hex.EncodeToString(mac.Sum(nil))
}

// The examples the vendors publish: GitHub's "Validating webhook deliveries" and
// Slack's "Verifying requests from Slack".
func TestSignatureKnownAnswers(t *testing.T) {
	gh := &signer{cfg: HMAC{Secret: "It's a Secret to Everybody"}.resolved(), now: time.Now}
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	if _, err := gh.header(req); err != nil {
		t.Fatal(err)
	}
	if err := gh.verify(req, "", []byte("Hello, World!")); err != nil {
		t.Errorf("github example: %v", err)
	}

	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	sl := &signer{cfg: HMAC{Style: StyleSlack, Secret: "8f742231b10e8888abcd99yyyzzz85a5"}.resolved(),
		now: func() time.Time { return time.Unix(1531420618+60, 0) }}
	req = httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("X-Slack-Request-Timestamp", "1531420618")
	req.Header.Set("X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")
	ts, err := sl.header(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.verify(req, ts, []byte(body)); err != nil {
		t.Errorf("slack example: %v", err)
	}
	// Six minutes later the same request is a possible replay.
	sl.now = func() time.Time { return time.Unix(1531420618+360, 0) }
	if _, err := sl.header(req); err == nil || err.code != http.StatusForbidden || err.reason != "stale_signature" {
		t.Errorf("stale: %v", err)
	}
}

func TestHMACGitHub(t *testing.T) {
	const secret = "gh-secret"
	ts := startSource(t, func(c *Config) { c.HMAC = &HMAC{Style: StyleGitHub, Secret: secret} })
	body := `{"action":"opened","number":1}`
	z := gzipped(t, []byte(body))
	tests := []struct {
		name string
		body []byte
		sig  string
		gzip bool
		want int
	}{
		{"valid", []byte(body), sign(secret, "sha256=", body), false, 200},
		{"upper-case hex", []byte(body), "sha256=" + strings.ToUpper(strings.TrimPrefix(sign(secret, "sha256=", body), "sha256=")), false, 200},
		{"signed gzip body as sent", z, sign(secret, "sha256=", string(z)), true, 200},
		{"missing", []byte(body), "", false, http.StatusUnauthorized},
		{"wrong secret", []byte(body), sign("other", "sha256=", body), false, http.StatusForbidden},
		{"body changed", []byte(body + " "), sign(secret, "sha256=", body), false, http.StatusForbidden},
		{"sha1 style", []byte(body), sign(secret, "sha1=", body), false, http.StatusForbidden},
		{"not hex", []byte(body), "sha256=zz", false, http.StatusForbidden},
		{"truncated", []byte(body), sign(secret, "sha256=", body)[:40], false, http.StatusForbidden},
		{"signed decoded body but sent gzip", z, sign(secret, "sha256=", body), true, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.sig != "" {
				hdr["X-Hub-Signature-256"] = tt.sig
			}
			if tt.gzip {
				hdr["Content-Encoding"] = "gzip"
			}
			r := ts.post(t, "apps", "application/json", bytes.NewReader(tt.body), hdr)
			if r.code != tt.want {
				t.Fatalf("got %d %s, want %d", r.code, r.raw, tt.want)
			}
			if strings.Contains(r.raw, secret) {
				t.Errorf("answer echoes the secret: %s", r.raw)
			}
		})
	}
	if n := len(ts.intake.records()); n != 3 {
		t.Errorf("stored %d records, want 3", n)
	}
}

func TestHMACSlack(t *testing.T) {
	const secret = "slack-signing-secret"
	ts := startSource(t, func(c *Config) { c.HMAC = &HMAC{Style: StyleSlack, Secret: secret} })
	body := "payload=%7B%22type%22%3A%22block_actions%22%7D"
	now := strconv.FormatInt(time.Now().Unix(), 10)
	old := strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
	future := strconv.FormatInt(time.Now().Add(10*time.Minute).Unix(), 10)
	tests := []struct {
		name    string
		ts, sig string
		want    int
	}{
		{"valid", now, sign(secret, "v0=", "v0:"+now+":", body), 200},
		{"missing signature", now, "", http.StatusUnauthorized},
		{"missing timestamp", "", sign(secret, "v0=", "v0:"+now+":", body), http.StatusUnauthorized},
		{"timestamp not a number", "yesterday", sign(secret, "v0=", "v0:"+now+":", body), http.StatusUnauthorized},
		{"stale", old, sign(secret, "v0=", "v0:"+old+":", body), http.StatusForbidden},
		{"from the future", future, sign(secret, "v0=", "v0:"+future+":", body), http.StatusForbidden},
		{"old signature, fresh timestamp", now, sign(secret, "v0=", "v0:"+old+":", body), http.StatusForbidden},
		{"github-style signature", now, sign(secret, "v0=", body), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.sig != "" {
				hdr["X-Slack-Signature"] = tt.sig
			}
			if tt.ts != "" {
				hdr["X-Slack-Request-Timestamp"] = tt.ts
			}
			r := ts.post(t, "apps", "text/plain", strings.NewReader(body), hdr)
			if r.code != tt.want {
				t.Fatalf("got %d %s, want %d", r.code, r.raw, tt.want)
			}
		})
	}
	if n := len(ts.intake.records()); n != 1 {
		t.Errorf("stored %d records, want 1", n)
	}
}

func TestHMACGenericWithToken(t *testing.T) {
	const secret = "generic-secret"
	ts := startSource(t, func(c *Config) {
		c.Tokens = []string{"tok"}
		c.HMAC = &HMAC{Style: StyleGeneric, Secret: secret, Header: "X-Signature", Encoding: "base64"}
	})
	body := `{"alert":"x"}`
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	good := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	tests := []struct {
		name       string
		auth, sig  string
		want       int
		wantReason string
	}{
		{"both", "Bearer tok", good, 200, ""},
		{"signature without token", "", good, http.StatusUnauthorized, "missing bearer token"},
		{"token without signature", "Bearer tok", "", http.StatusUnauthorized, "missing signature header X-Signature"},
		{"hex instead of base64", "Bearer tok", sign(secret, "", body), http.StatusForbidden, "signature does not match the body; check the shared secret"},
		{"not base64", "Bearer tok", "%%%", http.StatusForbidden, "signature in X-Signature is not base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			if tt.sig != "" {
				hdr["X-Signature"] = tt.sig
			}
			r := ts.post(t, "apps", "application/json", strings.NewReader(body), hdr)
			if r.code != tt.want || r.body.Error != tt.wantReason {
				t.Errorf("got %d %s, want %d %q", r.code, r.raw, tt.want, tt.wantReason)
			}
		})
	}
}

func TestRateLimitPerToken(t *testing.T) {
	ts := startSource(t, func(c *Config) {
		c.Tokens = []string{"alpha", "beta"}
		// One request per 100 s: a test run never sees the bucket refill.
		c.RateLimit = &RateLimit{RequestsPerSecond: 0.01, Burst: 2}
	})
	post := func(tok string) reply {
		return ts.post(t, "apps", "application/json", strings.NewReader(`{}`), map[string]string{"Authorization": "Bearer " + tok})
	}
	for i := range 2 {
		if r := post("alpha"); r.code != 200 {
			t.Fatalf("alpha request %d: %d %s", i, r.code, r.raw)
		}
	}
	r := post("alpha")
	if r.code != http.StatusTooManyRequests || r.body.Error == "" {
		t.Fatalf("alpha over the limit: %d %s", r.code, r.raw)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 90 || ra > 100 {
		t.Errorf("Retry-After %q, want about 100 s", r.header.Get("Retry-After"))
	}
	// Another token has its own bucket.
	if r := post("beta"); r.code != 200 {
		t.Errorf("beta: %d %s", r.code, r.raw)
	}
	// A refused token is not charged to anyone.
	if r := post("gamma"); r.code != http.StatusForbidden {
		t.Errorf("gamma: %d", r.code)
	}
	if n := len(ts.intake.records()); n != 3 {
		t.Errorf("stored %d, want 3", n)
	}
}

func TestRateLimitPerIP(t *testing.T) {
	ts := startSource(t, func(c *Config) { c.RateLimit = &RateLimit{RequestsPerSecond: 0.01, Burst: 1} })
	if r := ts.post(t, "apps", "application/json", strings.NewReader(`{}`), nil); r.code != 200 {
		t.Fatalf("first: %d", r.code)
	}
	if r := ts.post(t, "apps", "application/json", strings.NewReader(`{}`), nil); r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("second: %d %v", r.code, r.header)
	}
}

func TestLimitersBounded(t *testing.T) {
	clock := time.Unix(1000, 0)
	l := newLimiters(RateLimit{RequestsPerSecond: 1, Burst: 1}, func() time.Time { return clock })
	for i := range maxLimiters {
		if ok, _ := l.allow("ip:" + strconv.Itoa(i)); !ok {
			t.Fatalf("client %d refused", i)
		}
	}
	// The map is full of active clients: a newcomer shares the overflow bucket.
	if ok, _ := l.allow("ip:new-1"); !ok {
		t.Fatal("first overflow request refused")
	}
	if ok, wait := l.allow("ip:new-2"); ok || wait <= 0 {
		t.Fatalf("overflow bucket not shared: %v %v", ok, wait)
	}
	if len(l.m) != maxLimiters {
		t.Fatalf("%d limiters", len(l.m))
	}
	// Once the idle buckets are full again they are forgotten.
	clock = clock.Add(2 * time.Second)
	if ok, _ := l.allow("ip:new-3"); !ok {
		t.Fatal("refused after the sweep")
	}
	if len(l.m) != 1 {
		t.Errorf("%d limiters after the sweep, want 1", len(l.m))
	}
}

func TestGuardConfig(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"public with hmac only", func(c *Config) { c.Address = "0.0.0.0:8080"; c.HMAC = &HMAC{Secret: "s"} }, ""},
		{"hmac without secret", func(c *Config) { c.HMAC = &HMAC{} }, "hmac.secret: empty"},
		{"unknown style", func(c *Config) { c.HMAC = &HMAC{Style: "stripe", Secret: "s"} }, `hmac.style: want github, slack or generic, got "stripe"`},
		{"generic without header", func(c *Config) { c.HMAC = &HMAC{Style: StyleGeneric, Secret: "s"} }, "hmac.header: required with style generic"},
		{"bad encoding", func(c *Config) { c.HMAC = &HMAC{Secret: "s", Encoding: "base32"} }, `hmac.encoding: want hex or base64, got "base32"`},
		{"max_age without slack", func(c *Config) { c.HMAC = &HMAC{Secret: "s", MaxAge: time.Minute} }, "hmac.timestamp_header, hmac.max_age: only for style slack"},
		{"zero rate", func(c *Config) { c.RateLimit = &RateLimit{} }, "rate_limit.requests_per_second: must be a positive number, got 0"},
		{"negative burst", func(c *Config) { c.RateLimit = &RateLimit{RequestsPerSecond: 1, Burst: -1} }, "rate_limit.burst: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig()
			tt.mod(c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	// The YAML of the config contract decodes, unknown keys rejected.
	c := NewConfig()
	src := "hmac: {header: X-Hub-Signature-256, secret: s3cret, prefix: \"sha256=\", style: github}\nrate_limit: {requests_per_second: 50, burst: 100}\n"
	if err := yaml.UnmarshalWithOptions([]byte(src), c, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	if c.HMAC.Secret != "s3cret" || c.HMAC.Prefix != "sha256=" || c.RateLimit.Burst != 100 || c.RateLimit.RequestsPerSecond != 50 {
		t.Errorf("decoded %+v %+v", c.HMAC, c.RateLimit)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// writePEM writes DER blocks of one type to a new file under dir.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// newCert makes a certificate signed by parent (self-signed when parent is nil).
func newCert(t *testing.T, cn string, parent *testCert, isCA bool, usage x509.ExtKeyUsage) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: cert, key: key, der: der}
}

func (c *testCert) tlsCert(t *testing.T) tls.Certificate {
	t.Helper()
	return tls.Certificate{Certificate: [][]byte{c.der}, PrivateKey: c.key}
}

// TestTLSClientCertificates serves HTTPS requiring client certificates from a CA
// and checks that only clients with such a certificate get through.
func TestTLSClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newCert(t, "vigil test CA", nil, true, 0)
	otherCA := newCert(t, "other CA", nil, true, 0)
	server := newCert(t, "127.0.0.1", ca, false, x509.ExtKeyUsageServerAuth)
	client := newCert(t, "shipper", ca, false, x509.ExtKeyUsageClientAuth)
	stranger := newCert(t, "stranger", otherCA, false, x509.ExtKeyUsageClientAuth)
	keyDER, err := x509.MarshalECPrivateKey(server.key)
	if err != nil {
		t.Fatal(err)
	}
	ts := startSource(t, func(c *Config) {
		c.TLS = config.ServerTLS{
			CertFile:     writePEM(t, dir, "server.crt", "CERTIFICATE", server.der),
			KeyFile:      writePEM(t, dir, "server.key", "EC PRIVATE KEY", keyDER),
			ClientCAFile: writePEM(t, dir, "ca.crt", "CERTIFICATE", ca.der),
		}
	})
	if !strings.HasPrefix(ts.src.Describe(), "apps on https://") {
		t.Errorf("Describe = %q", ts.src.Describe())
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	url := "https://" + ts.src.Addr() + "/v1/events/apps"
	post := func(certs []tls.Certificate) (int, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12},
		}}
		resp, err := c.Post(url, "application/json", strings.NewReader(`{"m":1}`))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := post([]tls.Certificate{client.tlsCert(t)}); err != nil || code != 200 {
		t.Errorf("client certificate from the CA: %d %v", code, err)
	}
	if _, err := post(nil); err == nil {
		t.Error("no client certificate: accepted")
	}
	if _, err := post([]tls.Certificate{stranger.tlsCert(t)}); err == nil {
		t.Error("client certificate from another CA: accepted")
	}
	if n := len(ts.intake.records()); n != 1 {
		t.Errorf("stored %d, want 1", n)
	}
}
