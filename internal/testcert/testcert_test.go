package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

func TestIssuedPairVerifiesForServerAndClient(t *testing.T) {
	ca := NewCA(t, "test")
	p := ca.Issue("member", "127.0.0.1", "localhost")
	pair, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		for _, name := range []string{"127.0.0.1", "localhost"} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("verify %s for usage %v: %v", name, usage, err)
			}
		}
	}
	other := NewCA(t, "other")
	otherPEM, _ := os.ReadFile(other.CertFile)
	otherRoots := x509.NewCertPool()
	otherRoots.AppendCertsFromPEM(otherPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: otherRoots}); err == nil {
		t.Error("a leaf verified under a CA that did not sign it")
	}
}
