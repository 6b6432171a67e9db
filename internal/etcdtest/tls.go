package etcdtest

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/sessionpin/sessionpin/internal/testcert"
)

// TLSMember is a single etcd member whose client port speaks only TLS.
type TLSMember struct {
	// Client is the client URL, https://127.0.0.1:port.
	Client string
	// Addr is the client host:port.
	Addr string
	e    *embed.Etcd
}

// StartTLS runs a single-member etcd that serves clients over TLS with a
// certificate of ca for 127.0.0.1; with clientAuth it accepts only clients
// holding a certificate from ca. It stops when the test ends.
func StartTLS(t testing.TB, ca *testcert.CA, clientAuth bool) *TLSMember {
	t.Helper()
	srv := ca.Issue("etcd-server", "127.0.0.1")
	m := &TLSMember{Addr: FreePort(t)}
	m.Client = "https://" + m.Addr
	curl, _ := url.Parse(m.Client)
	purl, _ := url.Parse("http://" + FreePort(t))
	cfg := embed.NewConfig()
	cfg.Name = "tls"
	cfg.Dir = t.TempDir()
	cfg.ListenClientUrls = []url.URL{*curl}
	cfg.AdvertiseClientUrls = []url.URL{*curl}
	cfg.ListenPeerUrls = []url.URL{*purl}
	cfg.AdvertisePeerUrls = []url.URL{*purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.InitialClusterToken = "sessionpin-test-tls"
	cfg.ClientTLSInfo.CertFile = srv.CertFile
	cfg.ClientTLSInfo.KeyFile = srv.KeyFile
	cfg.ClientTLSInfo.TrustedCAFile = ca.CertFile
	cfg.ClientTLSInfo.ClientCertAuth = clientAuth
	cfg.LogLevel = "fatal" // a refused handshake is what some tests want
	cfg.Logger = "zap"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd with TLS: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd with TLS: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("etcd with TLS not ready after 60s")
	}
	m.e = e
	return m
}

// NewTLSClient returns a client of m that trusts ca and presents client,
// closed when the test ends.
func NewTLSClient(t testing.TB, m *TLSMember, ca *testcert.CA, client testcert.Pair) *clientv3.Client {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, "etcd client with TLS", clientv3.Config{
		Endpoints: []string{m.Client},
		TLS: &tls.Config{
			RootCAs:      Roots(t, ca),
			Certificates: []tls.Certificate{pair},
			MinVersion:   tls.VersionTLS12,
		},
	})
}

// Roots is a cert pool that trusts only ca.
func Roots(t testing.TB, ca *testcert.CA) *x509.CertPool {
	t.Helper()
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s", ca.CertFile)
	}
	return roots
}
