package stream

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/wire"
)

// openListening opens an embedded stream that also serves buffer.listen on a free
// loopback port, after mutate has set its auth and TLS.
func openListening(t *testing.T, mutate func(b *config.Buffer)) *Stream {
	t.Helper()
	cfg := config.Defaults().Buffer
	cfg.Listen = "127.0.0.1:0"
	mutate(&cfg)
	st, err := Open(context.Background(), cfg, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if st.ListenAddr() == "" || strings.HasSuffix(st.ListenAddr(), ":4222") {
		t.Fatalf("listen address %q: want a free port", st.ListenAddr())
	}
	// Vigil's own in-process connection passes the listener's authentication.
	msg := nats.NewMsg(wire.IntakeSubject("s"))
	msg.Data = []byte("x")
	if _, err := st.Publish(context.Background(), msg, ""); err != nil {
		t.Fatalf("in-process publish: %v", err)
	}
	return st
}

// connect dials the listener with opts and, when that works, reads the intake
// stream's info, so that a connection that is let in but cannot use JetStream fails
// too.
func connect(addr string, opts ...nats.Option) error {
	opts = append(opts, nats.Timeout(5*time.Second), nats.MaxReconnects(0))
	nc, err := nats.Connect("nats://"+addr, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = js.Stream(ctx, IntakeStream)
	return err
}

func TestListenUserPassword(t *testing.T) {
	st := openListening(t, func(b *config.Buffer) {
		b.ListenAuth = config.ListenAuth{User: "node2", Password: "correct-horse-battery"}
	})
	if err := connect(st.ListenAddr()); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("without credentials: %v, want an authorization violation", err)
	}
	if err := connect(st.ListenAddr(), nats.UserInfo("node2", "wrong")); err == nil {
		t.Error("a wrong password connected")
	}
	if err := connect(st.ListenAddr(), nats.UserInfo("node2", "correct-horse-battery")); err != nil {
		t.Errorf("with the credentials: %v", err)
	}
}

func TestListenNKey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	st := openListening(t, func(b *config.Buffer) { b.ListenAuth.NKey = pub })
	if err := connect(st.ListenAddr()); err == nil {
		t.Error("connected without the nkey")
	}
	other, _ := nkeys.CreateUser()
	otherPub, _ := other.PublicKey()
	if err := connect(st.ListenAddr(), nats.Nkey(otherPub, other.Sign)); err == nil {
		t.Error("connected with another nkey")
	}
	if err := connect(st.ListenAddr(), nats.Nkey(pub, kp.Sign)); err != nil {
		t.Errorf("with the nkey: %v", err)
	}
}

// TestListenTLS serves the listener with a certificate made here and checks that
// plain-text clients are refused, that a client trusting the certificate connects
// over TLS, and with client_ca_file that only a client presenting a certificate
// does.
func TestListenTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, certPEM := selfSigned(t, dir)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	auth := config.ListenAuth{User: "node2", Password: "correct-horse-battery"}
	creds := nats.UserInfo(auth.User, auth.Password)
	st := openListening(t, func(b *config.Buffer) {
		b.ListenAuth = auth
		b.ListenTLS = config.ServerTLS{CertFile: certFile, KeyFile: keyFile}
	})
	if err := connect(st.ListenAddr(), creds); err == nil {
		t.Error("a plain-text client connected")
	}
	if err := connect(st.ListenAddr(), nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})); err == nil {
		t.Error("a TLS client without credentials connected")
	}
	if err := connect(st.ListenAddr(), creds, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})); err != nil {
		t.Errorf("TLS client with credentials: %v", err)
	}

	mtls := openListening(t, func(b *config.Buffer) {
		b.ListenAuth = auth
		b.ListenTLS = config.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: certFile}
	})
	if err := connect(mtls.ListenAddr(), creds, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})); err == nil {
		t.Error("a client without a certificate connected to a listener with client_ca_file")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(mtls.ListenAddr(), creds, nats.Secure(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert},
		MinVersion: tls.VersionTLS12})); err != nil {
		t.Errorf("client with a certificate: %v", err)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1, usable as server,
// client and CA, and returns its files and PEM.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, certPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, certPEM
}

// TestURLCredentialsNeverShown connects an external buffer with the password in its
// URL, then fails to connect with a wrong one, with a token, and with a URL nats.go
// cannot parse: neither the log nor any error shows a password or a token.
func TestURLCredentialsNeverShown(t *testing.T) {
	const password, wrong, token = "s3cret-Pa55word", "wr0ng-Pa55word", "t0ken-Value-123"
	server := openListening(t, func(b *config.Buffer) {
		b.ListenAuth = config.ListenAuth{User: "vigil", Password: password}
	})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	open := func(timeout time.Duration, url string) (*Stream, error) {
		cfg := config.Defaults().Buffer
		cfg.Type, cfg.URLs = "nats", []string{url}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return Open(ctx, cfg, t.TempDir(), log)
	}

	st, err := open(30*time.Second, "nats://vigil:"+password+"@"+server.ListenAddr())
	if err != nil {
		t.Fatalf("with the password in the URL: %v", err)
	}
	st.Close()
	if !strings.Contains(logs.String(), "stream connected") || !strings.Contains(logs.String(), "vigil:xxxxx@") {
		t.Errorf("want a redacted start-up line, got:\n%s", logs.String())
	}

	var errs []string
	for _, url := range []string{
		"nats://vigil:" + wrong + "@" + server.ListenAddr(),
		"nats://" + token + "@" + server.ListenAddr(),
		"nats://vigil:" + wrong + "@127.0.0.1:notaport",
		"vigil:" + wrong + "@[::1",
	} {
		st, err := open(2*time.Second, url)
		if err == nil {
			st.Close()
			t.Errorf("%s: connected", config.RedactURL(url))
			continue
		}
		errs = append(errs, err.Error())
	}
	all := logs.String() + strings.Join(errs, "\n")
	for _, secret := range []string{password, wrong, token} {
		if strings.Contains(all, secret) {
			t.Errorf("%q shown in:\n%s", secret, all)
		}
	}
	if !strings.Contains(errs[0], "vigil:xxxxx@127.0.0.1") || !strings.Contains(strings.ToLower(errs[0]), "authorization") {
		t.Errorf("wrong password: %s", errs[0])
	}
}
