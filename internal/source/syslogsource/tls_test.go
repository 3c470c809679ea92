package syslogsource_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client certificate.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth)
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth)
	pki := &testPKI{
		caFile:   writePEM("ca.pem", "CERTIFICATE", caDER),
		certFile: writePEM("server.pem", "CERTIFICATE", srvDER),
		keyFile:  writePEM("server.key", "EC PRIVATE KEY", srvKeyDER),
		pool:     x509.NewCertPool(),
		client:   tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey},
	}
	pki.pool.AddCert(ca)
	return pki
}

// TestTLSClientCertificates: a client with a certificate from client_ca_file is
// archived; one without is refused at the handshake and counted.
func TestTLSClientCertificates(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	p, src := start(t, testConfig(t, dir, func(_ *config.Config, s *syslogsource.Config) {
		s.UDP = ""
		s.TLS = config.ServerTLS{CertFile: pki.certFile, KeyFile: pki.keyFile, ClientCAFile: pki.caFile}
	}))
	if d := src.Describe(); d != "syslog on tls://"+src.TCPAddr() {
		t.Errorf("Describe: %q", d)
	}

	// Without a client certificate the server refuses the handshake (TLS 1.3 reports
	// it on the first read).
	c, err := tls.Dial("tcp", src.TCPAddr(), &tls.Config{RootCAs: pki.pool})
	if err == nil {
		_, _ = io.WriteString(c, "<13>1 - - - - - - no client certificate\n")
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || err == io.EOF {
		t.Errorf("want a handshake error without a client certificate, got %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "the refused handshake counted", func() bool {
		return metric(t, p.Metrics(), "vigil_errors_total") >= 1
	})

	c, err = tls.Dial("tcp", src.TCPAddr(), &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "<13>1 - host app - - - over tls\n20 <13>1 - - - - - - oc"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	docs := waitDocs(t, filepath.Join(dir, "archive"), 2)
	checkFields(t, docs["over tls"], map[string]any{"log.syslog.hostname": "host", "log.syslog.appname": "app"})
	checkFields(t, docs["oc"], map[string]any{"log.syslog.priority": 13})
}
