package app

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// cluster starts n servers that replicate to each other after delay.
func cluster(t *testing.T, delay time.Duration, ids ...string) []*httptest.Server {
	t.Helper()
	servers := make([]*httptest.Server, len(ids))
	handlers := make([]http.Handler, len(ids))
	for i := range ids {
		i := i
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handlers[i].ServeHTTP(w, r) }))
		t.Cleanup(servers[i].Close)
	}
	for i, id := range ids {
		var peers []string
		for j, s := range servers {
			if j != i {
				peers = append(peers, s.URL)
			}
		}
		a, err := New(Config{ServerID: id, Region: "r", TokenKey: testKey, Peers: peers, ReplicationDelay: delay})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
		handlers[i] = a.Handler()
	}
	return servers
}

type result struct {
	status int
	served string
	body   map[string]any
}

func call(t *testing.T, method, url, token string, body any) result {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	res := result{status: resp.StatusCode, served: resp.Header.Get(ServedByHeader)}
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &res.body); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, url, b, err)
		}
	}
	return res
}

func login(t *testing.T, base, user string) (access, refresh string) {
	t.Helper()
	r := call(t, "POST", base+"/auth/login", "", map[string]any{"user": user})
	if r.status != 200 {
		t.Fatalf("login: %d %v", r.status, r.body)
	}
	return r.body["accessToken"].(string), r.body["refreshToken"].(string)
}

func TestWorkflowOnOneServer(t *testing.T) {
	s := cluster(t, time.Hour, "eu-1", "eu-2")
	access, _ := login(t, s[0].URL, "alice")
	r := call(t, "POST", s[0].URL+"/orders", access, nil)
	if r.status != 201 || r.served != "eu-1" {
		t.Fatalf("create: %d by %q %v", r.status, r.served, r.body)
	}
	id := r.body["id"].(string)
	r = call(t, "POST", s[0].URL+"/orders/"+id+"/items", access, map[string]any{"sku": "book", "qty": 2})
	if r.status != 200 || len(r.body["items"].([]any)) != 1 {
		t.Fatalf("add item: %d %v", r.status, r.body)
	}
	r = call(t, "POST", s[0].URL+"/orders/"+id+"/submit", access, nil)
	if r.status != 200 || r.body["status"] != "submitted" {
		t.Fatalf("submit: %d %v", r.status, r.body)
	}
	r = call(t, "POST", s[0].URL+"/orders/"+id+"/submit", access, nil)
	if r.status != 409 || r.body["error"] != "order_submitted" {
		t.Fatalf("second submit: %d %v", r.status, r.body)
	}
}

// TestHopBreaksWorkflow is why sessionpin exists: a step sent to another
// server before replication fails with a clear error from that server.
func TestHopBreaksWorkflow(t *testing.T) {
	s := cluster(t, time.Hour, "eu-1", "eu-2")
	access, _ := login(t, s[0].URL, "alice")
	id := call(t, "POST", s[0].URL+"/orders", access, nil).body["id"].(string)
	r := call(t, "POST", s[1].URL+"/orders/"+id+"/items", access, map[string]any{"sku": "book", "qty": 1})
	if r.status != 404 || r.served != "eu-2" || r.body["error"] != "order_not_found" {
		t.Fatalf("hop: %d by %q %v", r.status, r.served, r.body)
	}
	if msg := r.body["message"].(string); !strings.Contains(msg, "not found on eu-2: replication lag") {
		t.Fatalf("message %q does not explain the hop", msg)
	}
}

func TestReplicationConverges(t *testing.T) {
	s := cluster(t, 20*time.Millisecond, "eu-1", "eu-2", "us-1")
	access, _ := login(t, s[0].URL, "alice")
	id := call(t, "POST", s[0].URL+"/orders", access, nil).body["id"].(string)
	call(t, "POST", s[0].URL+"/orders/"+id+"/items", access, map[string]any{"sku": "book", "qty": 1})
	for _, peer := range s[1:] {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := call(t, "GET", peer.URL+"/orders/"+id, access, nil)
			if r.status == 200 && len(r.body["items"].([]any)) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order never replicated to %s: %d %v", peer.URL, r.status, r.body)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Once replicated, another server can continue the workflow.
	r := call(t, "POST", s[2].URL+"/orders/"+id+"/submit", access, nil)
	if r.status != 200 || r.served != "us-1" {
		t.Fatalf("submit after replication: %d %v", r.status, r.body)
	}
}

func TestTokensAcceptedByEveryServer(t *testing.T) {
	s := cluster(t, time.Hour, "eu-1", "us-1")
	access, refresh := login(t, s[0].URL, "alice")
	r := call(t, "GET", s[1].URL+"/whoami", access, nil)
	if r.status != 200 || r.body["user"] != "alice" || r.body["server"] != "us-1" {
		t.Fatalf("whoami: %d %v", r.status, r.body)
	}
	// The refresh body sessionpin's clients send; the app ignores the
	// routing fields.
	r = call(t, "POST", s[1].URL+"/auth/refresh", "", map[string]any{
		"refreshToken": refresh, "closestServerId": "eu-1", "criticalTaskInProgress": true})
	if r.status != 200 || r.body["server"] != "us-1" || r.body["accessToken"] == "" {
		t.Fatalf("refresh: %d %v", r.status, r.body)
	}
	// An access token is not a refresh token and the reverse.
	if r := call(t, "POST", s[1].URL+"/auth/refresh", "", map[string]any{"refreshToken": access}); r.status != 401 {
		t.Fatalf("access token as refresh token: %d %v", r.status, r.body)
	}
	if r := call(t, "POST", s[1].URL+"/orders", refresh, nil); r.status != 401 {
		t.Fatalf("refresh token as access token: %d %v", r.status, r.body)
	}
}

func TestBadInput(t *testing.T) {
	s := cluster(t, time.Hour, "eu-1")
	access, _ := login(t, s[0].URL, "alice")
	id := call(t, "POST", s[0].URL+"/orders", access, nil).body["id"].(string)
	for _, tc := range []struct {
		name, method, path, token string
		body                      any
		status                    int
	}{
		{"login without user", "POST", "/auth/login", "", map[string]any{}, 400},
		{"login bad user", "POST", "/auth/login", "", map[string]any{"user": "a b"}, 400},
		{"login not JSON", "POST", "/auth/login", "", "x", 400},
		{"order without token", "POST", "/orders", "", nil, 401},
		{"order forged token", "POST", "/orders", "abc.def.ghi", nil, 401},
		{"item qty 0", "POST", "/orders/" + id + "/items", access, map[string]any{"sku": "a", "qty": 0}, 400},
		{"item bad sku", "POST", "/orders/" + id + "/items", access, map[string]any{"sku": "", "qty": 1}, 400},
		{"submit empty order", "POST", "/orders/" + id + "/submit", access, nil, 409},
		{"replicate without token", "POST", "/internal/replicate", "", map[string]any{"id": "x"}, 401},
		{"replicate with access token", "POST", "/internal/replicate", access, map[string]any{"id": "x"}, 401},
		{"unknown path", "GET", "/nope", "", nil, 404},
	} {
		r := call(t, tc.method, s[0].URL+tc.path, tc.token, tc.body)
		if r.status != tc.status || r.body["error"] == nil || r.served != "eu-1" {
			t.Errorf("%s: %d %v, want %d with an error", tc.name, r.status, r.body, tc.status)
		}
	}
	// Nothing changed.
	if r := call(t, "GET", s[0].URL+"/orders/"+id, access, nil); r.status != 200 || len(r.body["items"].([]any)) != 0 {
		t.Fatalf("order changed by bad input: %v", r.body)
	}
	// Another user's order does not exist for alice.
	bob, _ := login(t, s[0].URL, "bob")
	if r := call(t, "POST", s[0].URL+"/orders/"+id+"/items", bob, map[string]any{"sku": "a", "qty": 1}); r.status != 404 {
		t.Fatalf("bob on alice's order: %d %v", r.status, r.body)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{ServerID: "", Region: "r", TokenKey: testKey},
		{ServerID: "a", Region: "r r", TokenKey: testKey},
		{ServerID: "a", Region: "r", TokenKey: []byte("short")},
		{ServerID: "a", Region: "r", TokenKey: testKey, Peers: []string{"127.0.0.1:9001"}},
		{ServerID: "a", Region: "r", TokenKey: testKey, ReplicationDelay: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestHealthAndAdmin(t *testing.T) {
	a, err := New(Config{ServerID: "eu-1", Region: "eu-west", TokenKey: testKey, Load: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	pub := httptest.NewServer(a.Handler())
	defer pub.Close()
	adm := httptest.NewServer(a.AdminHandler())
	defer adm.Close()

	r := call(t, "GET", pub.URL+"/healthz", "", nil)
	if r.status != 200 || r.body["load"] != 0.25 || r.body["server"] != "eu-1" || r.body["status"] != "ok" {
		t.Fatalf("healthz: %d %v", r.status, r.body)
	}
	if r := call(t, "POST", adm.URL+"/admin/load", "", map[string]any{"load": 0.9}); r.status != 200 || r.body["load"] != 0.9 {
		t.Fatalf("set load: %d %v", r.status, r.body)
	}
	if r := call(t, "POST", adm.URL+"/admin/load", "", map[string]any{}); r.status != 400 {
		t.Fatalf("set load without load: %d %v", r.status, r.body)
	}
	call(t, "POST", adm.URL+"/admin/down", "", nil)
	if r := call(t, "GET", pub.URL+"/healthz", "", nil); r.status != 503 || r.body["status"] != "down" {
		t.Fatalf("healthz when down: %d %v", r.status, r.body)
	}
	if r := call(t, "POST", pub.URL+"/auth/login", "", map[string]any{"user": "a"}); r.status != 503 || r.body["error"] != "server_down" {
		t.Fatalf("login when down: %d %v", r.status, r.body)
	}
	call(t, "POST", adm.URL+"/admin/up", "", nil)
	if r := call(t, "GET", pub.URL+"/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz after up: %d %v", r.status, r.body)
	}
	// Negative load: counted from in-flight requests, the probe excluded.
	a.SetLoad(-1)
	if r := call(t, "GET", pub.URL+"/healthz", "", nil); r.body["load"] != 0.0 {
		t.Fatalf("idle load: %v", r.body)
	}
}
