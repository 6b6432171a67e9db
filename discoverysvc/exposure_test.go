package discoverysvc_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
)

const readToken = "read-only-dashboard-token-0123456789"

// exposureCall is one request of the matrix.
type exposureCall struct {
	method, path, body string
	class              string // public, read, agent (eu-1's own), admin
}

var exposureCalls = []exposureCall{
	{"GET", "/healthz", "", "public"},
	{"GET", "/metrics", "", "public"},
	{"GET", "/v1/registry", "", "public"}, // sizes and alarms, as /metrics
	{"GET", "/", "", "public"},
	{"GET", "/fleet/fleet.js", "", "public"},
	{"GET", "/v1/events", "", "read"},
	{"GET", "/v1/servers", "", "read"},
	{"HEAD", "/v1/servers", "", "read"},
	{"PUT", "/v1/servers/eu-1", hbBody("eu-west", 9001, 0.1, false), "agent"},
	{"GET", "/v1/servers/eu-1/drain", "", "agent"}, // its agent reads its drain
	{"PUT", "/v1/servers/eu-1/drain", `{"reason":"matrix"}`, "admin"},
	{"DELETE", "/v1/servers/eu-1/drain", "", "admin"},
	{"DELETE", "/v1/servers/eu-1", "", "agent"},
}

// call sends one request with a bearer token (none when ""), and returns
// the status; a stream is closed once its headers arrived.
func (f *fleetFixture) call(t *testing.T, host, method, path, body, token string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, f.srv.URL+path, strings.NewReader(body))
	if host != "" {
		req.Host = host
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if path != "/v1/events" {
		io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Every endpoint, with every kind of credential: public ones answer
// anyone; reading the fleet (every server's URL) takes the read-only or
// the admin token; a server's record takes its agent token or the admin
// token; drains take the admin token. With --public-read, reads are open
// and writes are not.
func TestExposureMatrix(t *testing.T) {
	creds := map[string]string{
		"none":       "",
		"wrong":      "not-a-token",
		"read":       readToken,
		"agent":      discoverysvc.AgentToken(testToken, "eu-1"),
		"otherAgent": discoverysvc.AgentToken(testToken, "us-1"),
		"admin":      testToken,
	}
	allowed := func(class, cred string, publicRead bool) bool {
		switch class {
		case "public":
			return true
		case "read":
			return publicRead || cred == "read" || cred == "admin"
		case "agent":
			return cred == "agent" || cred == "admin"
		default:
			return cred == "admin"
		}
	}
	for _, publicRead := range []bool{false, true} {
		f := startFleet(t, fleetOptions{token: testToken, config: discoverysvc.Config{
			Exposure: discoverysvc.Exposure{ReadToken: readToken, PublicRead: publicRead},
		}})
		for _, c := range exposureCalls {
			for name, tok := range creds {
				// The server exists for each call, so that refusals are
				// about the credential and not a missing record.
				if f.heartbeat(t, testToken, "eu-1", hbBody("eu-west", 9001, 0.1, false)) != http.StatusOK {
					t.Fatal("setup heartbeat refused")
				}
				status := f.call(t, "", c.method, c.path, c.body, tok)
				refused := status == http.StatusUnauthorized || status == http.StatusForbidden
				if want := allowed(c.class, name, publicRead); refused == want {
					t.Errorf("public-read=%v %s %s with %s token: %d, want allowed=%v", publicRead, c.method, c.path, name, status, want)
				}
			}
		}
	}
}

// With no token configured at all the service is open, writes included;
// the command warns about it.
func TestExposureWithoutTokensIsOpen(t *testing.T) {
	f := startFleet(t, fleetOptions{})
	for _, c := range exposureCalls {
		if s := f.call(t, "", c.method, c.path, c.body, ""); s == http.StatusUnauthorized || s == http.StatusForbidden {
			t.Errorf("%s %s: %d", c.method, c.path, s)
		}
	}
}

// /metrics stays open for scrapers but names no server URL.
func TestMetricsNameNoURL(t *testing.T) {
	f := startFleet(t, fleetOptions{token: testToken})
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "eu-1", Region: "eu-west", URL: "http://10.9.8.7:9001/very-internal", Load: 0.2})
	f.waitMetric(t, `sessionpin_discovery_servers{region="eu-west",state="active"}`, 1)
	text := f.scrape(t)
	for _, leak := range []string{"10.9.8.7", "9001", "very-internal"} {
		if strings.Contains(text, leak) {
			t.Fatalf("/metrics names %q", leak)
		}
	}
}

// Requests addressed to a name the service does not answer to are refused
// on every endpoint, /healthz included, so that a page whose DNS name
// rebinds to discovery's address reads nothing from an operator's browser.
func TestHostCheck(t *testing.T) {
	f := startFleet(t, fleetOptions{token: testToken, config: discoverysvc.Config{
		Exposure: discoverysvc.Exposure{PublicRead: true, Hosts: []string{"discovery.internal"}},
	}})
	port := f.srv.URL[strings.LastIndexByte(f.srv.URL, ':')+1:]
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:" + port, true},
		{"localhost:" + port, true},
		{"LOCALHOST.:" + port, true},
		{"app.localhost:" + port, true},
		{"[::1]:" + port, true},
		{"10.0.0.5", true},
		{"discovery.internal:" + port, true},
		{"Discovery.Internal", true},
		{"attacker.example:" + port, false},
		{"attacker.example", false},
		{"localhost.attacker.example", false},
		{"discovery.internal.attacker.example", false},
		{"127.0.0.1.nip.io:" + port, false},
	} {
		for _, c := range exposureCalls {
			if c.method != "GET" {
				continue
			}
			status := f.call(t, tc.host, c.method, c.path, "", testToken)
			if refused := status == http.StatusMisdirectedRequest; refused == tc.ok {
				t.Errorf("Host %q, %s: %d, want allowed=%v", tc.host, c.path, status, tc.ok)
			}
		}
	}
}
