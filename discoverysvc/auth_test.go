package discoverysvc_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc"
)

// TestAPIAgentTokenWritesOnlyItsOwnServer tries to use one server's agent
// token, and forgeries of it, for what only the admin or another server's
// agent may do.
func TestAPIAgentTokenWritesOnlyItsOwnServer(t *testing.T) {
	f := startAPI(t, testToken)
	eu1 := discoverysvc.AgentToken(testToken, "eu-1")
	body := `{"region":"eu","url":"http://10.0.0.1","load":0}`
	if r := f.do(t, "PUT", "/v1/servers/eu-2", testToken, body); r.status != 200 {
		t.Fatalf("admin PUT eu-2: %d %s", r.status, r.body)
	}
	if r := f.do(t, "PUT", "/v1/servers/eu-1", eu1, body); r.status != 200 {
		t.Fatalf("eu-1's agent PUT eu-1: %d %s", r.status, r.body)
	}

	mac := eu1[strings.LastIndexByte(eu1, '.')+1:]
	eu2mac := discoverysvc.AgentToken(testToken, "eu-2")
	eu2mac = eu2mac[strings.LastIndexByte(eu2mac, '.')+1:]
	flipped := []byte(mac)
	flipped[0] ^= 1
	tests := []struct {
		name, method, path, token string
		status                    int
	}{
		{"PUT another server", "PUT", "/v1/servers/eu-2", eu1, http.StatusForbidden},
		{"PUT a new server", "PUT", "/v1/servers/intruder", eu1, http.StatusForbidden},
		{"DELETE another server", "DELETE", "/v1/servers/eu-2", eu1, http.StatusForbidden},
		{"drain its own server", "PUT", "/v1/servers/eu-1/drain", eu1, http.StatusForbidden},
		{"undrain its own server", "DELETE", "/v1/servers/eu-1/drain", eu1, http.StatusForbidden},
		{"drain another server", "PUT", "/v1/servers/eu-2/drain", eu1, http.StatusForbidden},
		{"read another server's drain", "GET", "/v1/servers/eu-2/drain", eu1, http.StatusForbidden},
		{"a token of another admin token", "PUT", "/v1/servers/eu-1", discoverysvc.AgentToken("another-admin-token", "eu-1"), http.StatusUnauthorized},
		{"eu-2's MAC under eu-1's name", "PUT", "/v1/servers/eu-1", "eu-1." + eu2mac, http.StatusUnauthorized},
		{"eu-1's MAC under eu-2's name", "PUT", "/v1/servers/eu-2", "eu-2." + mac, http.StatusUnauthorized},
		{"a flipped bit", "PUT", "/v1/servers/eu-1", "eu-1." + string(flipped), http.StatusUnauthorized},
		{"the MAC alone", "PUT", "/v1/servers/eu-1", mac, http.StatusUnauthorized},
		{"a truncated MAC", "PUT", "/v1/servers/eu-1", eu1[:len(eu1)-2], http.StatusUnauthorized},
		{"the id alone", "PUT", "/v1/servers/eu-1", "eu-1.", http.StatusUnauthorized},
		{"an invalid id", "PUT", "/v1/servers/eu-1", "eu 1." + mac, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.revision(t)
			var b string
			if tt.method == "PUT" && !strings.HasSuffix(tt.path, "/drain") {
				b = body
			}
			r := f.do(t, tt.method, tt.path, tt.token, b)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			if tt.status == http.StatusForbidden && string(r.body) != "{\"error\":\"forbidden\"}\n" {
				t.Errorf("body %q, want {\"error\":\"forbidden\"}", r.body)
			}
			if after := f.revision(t); after != before {
				t.Errorf("etcd revision moved from %d to %d", before, after)
			}
		})
	}
	// Its own drain status is what the agent waits on before it leaves.
	if r := f.do(t, "GET", "/v1/servers/eu-1/drain", eu1, ""); r.status != http.StatusNotFound {
		t.Fatalf("eu-1's agent reads its own drain status: %d %s, want 404 (not draining)", r.status, r.body)
	}
	if r := f.do(t, "DELETE", "/v1/servers/eu-1", eu1, ""); r.status != http.StatusNoContent {
		t.Fatalf("eu-1's agent DELETE eu-1: %d %s", r.status, r.body)
	}
	if r := f.do(t, "DELETE", "/v1/servers/eu-2", testToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("admin DELETE eu-2: %d %s", r.status, r.body)
	}
}

// TestAgentTokenIsStatelessAcrossReplicas: a second API over the same etcd
// with the same admin token accepts the agent token the first never saw.
func TestAgentTokenIsStatelessAcrossReplicas(t *testing.T) {
	f := startAPI(t, testToken)
	other := startAPI(t, "another-admin-token")
	tok := discoverysvc.AgentToken(testToken, "eu-1")
	body := `{"region":"eu","url":"http://10.0.0.1","load":0}`
	if r := f.do(t, "PUT", "/v1/servers/eu-1", tok, body); r.status != 200 {
		t.Fatalf("replica with the admin token: %d %s", r.status, r.body)
	}
	if r := other.do(t, "PUT", "/v1/servers/eu-1", tok, body); r.status != http.StatusUnauthorized {
		t.Fatalf("replica with another admin token: %d %s", r.status, r.body)
	}
	if a, b := discoverysvc.AgentToken(testToken, "eu-1"), discoverysvc.AgentToken(testToken, "eu-1"); a != b {
		t.Fatalf("AgentToken is not deterministic: %s %s", a, b)
	}
}
