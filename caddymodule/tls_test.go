package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/testcert"
)

// TestPinCookieSecureOverTLS: a pin cookie set on an HTTPS request is
// Secure, so the browser never sends it over plain HTTP where it could be
// read; one set on a plain HTTP request cannot be (the browser would drop
// it), so it is not.
func TestPinCookieSecureOverTLS(t *testing.T) {
	f := newFixture(t, "")
	f.serveTLS()
	f.reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.1, false)
	f.waitRouted("eu-1", "eu-west")

	r := f.do(request{tls: true})
	if r.status != http.StatusOK || r.server() != "eu-1" || r.pinOut() == "" {
		t.Fatalf("over TLS: %d from %q, pin %q", r.status, r.server(), r.pinOut())
	}
	want := "sessionpin=" + r.pinOut() + "; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax; Secure"
	if got := r.header.Get("Set-Cookie"); got != want {
		t.Errorf("over TLS: Set-Cookie = %q, want %q", got, want)
	}

	r = f.do(request{})
	if r.pinOut() == "" {
		t.Fatalf("over plain HTTP: no pin issued: %d %q", r.status, r.body)
	}
	if got := r.header.Get("Set-Cookie"); strings.Contains(got, "Secure") {
		t.Errorf("over plain HTTP: Set-Cookie = %q, want no Secure", got)
	}
}

// TestEtcdOverTLS: the edge's etcd client uses `tls { ca cert key }`: it
// routes from an etcd that serves only TLS and only to clients with a
// certificate from its CA.
func TestEtcdOverTLS(t *testing.T) {
	ca := testcert.NewCA(t, "etcd")
	m := etcdtest.StartTLS(t, ca, true)
	prefix := "/tls/"
	reg := &registry{t: t, cli: etcdtest.NewTLSClient(t, m, ca, ca.Issue("writer")), prefix: prefix}
	reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.1, false)

	edgeCert := ca.Issue("edge")
	e := startEdgeApp(t, m.Client, prefix, fmt.Sprintf(`		tls {
			ca %s
			cert %s
			key %s
		}`, ca.CertFile, edgeCert.CertFile, edgeCert.KeyFile), "hysteresis 0\n\t\tslow_start 0")
	f := &fixture{edge: e, reg: reg, keys: testKeyring(t)}
	f.waitRouted("eu-1", "eu-west")
	if r := f.do(request{}); r.server() != "eu-1" || r.pinOut() == "" {
		t.Fatalf("placement from the TLS etcd: %d from %q", r.status, r.server())
	}
}
