package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	etcd "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
	"github.com/sessionpin/sessionpin/internal/testcert"
)

// etcdGet reads the registry with the given client TLS (nil: plain) and
// reports the error; a refused client fails within the timeout.
func etcdGet(endpoint string, tc *tls.Config) error {
	c, err := etcd.New(etcd.Config{Endpoints: []string{endpoint}, TLS: tc, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = c.Get(ctx, "/sessionpin/", etcd.WithPrefix())
	return err
}

func tlsConfig(t *testing.T, ca, cert, key string) *tls.Config {
	t.Helper()
	tc, err := (transport.TLSInfo{TrustedCAFile: ca, CertFile: cert, KeyFile: key}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// TestServeEmbeddedEtcdOverMutualTLS: the embedded etcd listens beyond
// loopback only with a server certificate and a client CA; then discovery
// itself (in-process), a second discovery replica and a client holding a
// certificate from that CA connect, and a client without one, or with one
// from another CA, is refused.
func TestServeEmbeddedEtcdOverMutualTLS(t *testing.T) {
	ca := testcert.NewCA(t, "registry")
	member := ca.Issue("etcd", "127.0.0.1", "localhost")
	edgeCert := ca.Issue("edge")
	replicaCert := ca.Issue("discovery-2")
	stranger := testcert.NewCA(t, "stranger").Issue("stranger")

	listen, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
	_, port, _ := net.SplitHostPort(etcdtest.FreePort(t))
	etcdListen := "0.0.0.0:" + port // every interface: allowed only with mTLS
	endpoint := "127.0.0.1:" + port
	base := "http://" + listen
	t.Setenv(envToken, "admin-token")
	stop, log := command(t, "serve", "--listen", listen, "--etcd-listen", etcdListen, "--etcd-peer-listen", peer,
		"--data-dir", t.TempDir()+"/etcd", "--etcd-listen-cert", member.CertFile, "--etcd-listen-key", member.KeyFile,
		"--etcd-client-ca", ca.CertFile, "--allow-loopback")
	poll.True(t, 60*time.Second, "/healthz 200 over mTLS", func() bool { return httpStatus("GET", base+"/healthz", "", "") == 200 })
	if got := httpStatus("PUT", base+"/v1/servers/eu-1", "admin-token", `{"region":"eu","url":"http://127.0.0.1:9001","load":0}`); got != 200 {
		t.Fatalf("PUT through discovery over mTLS: %d\n%s", got, log)
	}

	// A replica on another host is a client like an edge: what it writes,
	// the first replica serves.
	replica := "http://" + etcdtest.FreePort(t)
	stopReplica, replicaLog := command(t, "serve", "--listen", replica[len("http://"):], "--etcd", "https://"+endpoint,
		"--etcd-ca", ca.CertFile, "--etcd-cert", replicaCert.CertFile, "--etcd-key", replicaCert.KeyFile, "--allow-loopback")
	poll.True(t, 60*time.Second, "the replica's /healthz 200 over mTLS", func() bool { return httpStatus("GET", replica+"/healthz", "", "") == 200 })
	if got := httpStatus("PUT", replica+"/v1/servers/eu-2", "admin-token", `{"region":"eu","url":"http://127.0.0.1:9002","load":0}`); got != 200 {
		t.Fatalf("PUT through the replica over mTLS: %d\n%s", got, replicaLog)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/servers", nil)
	req.Header.Set("Authorization", "Bearer admin-token") // listing the fleet takes a token
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(list), `"id":"eu-2"`) {
		t.Fatalf("the first replica does not list what the second wrote: %s", list)
	}
	if code := stopReplica(); code != 0 {
		t.Fatalf("replica exited %d:\n%s", code, replicaLog)
	}

	if err := etcdGet(endpoint, tlsConfig(t, ca.CertFile, edgeCert.CertFile, edgeCert.KeyFile)); err != nil {
		t.Fatalf("a client with a certificate from the CA: %v", err)
	}
	refused := map[string]*tls.Config{
		"plain TCP":              nil,
		"TLS without a cert":     tlsConfig(t, ca.CertFile, "", ""),
		"a cert from another CA": tlsConfig(t, ca.CertFile, stranger.CertFile, stranger.KeyFile),
	}
	for name, tc := range refused {
		if err := etcdGet(endpoint, tc); err == nil {
			t.Errorf("%s: read the registry", name)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, log)
	}
}
