package discoverysvc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

const testToken = "s3cret-token"

// apiFixture is a discovery API over a real etcd member.
type apiFixture struct {
	member *etcdtest.Member
	client *clientv3.Client
	srv    *httptest.Server
}

// startAPI runs the API with the admin token, letting servers register
// loopback URLs as the test backends have.
func startAPI(t *testing.T, token string) *apiFixture {
	t.Helper()
	return startAPIWith(t, discoverysvc.APIConfig{Token: token, AllowLoopback: true})
}

func startAPIWith(t *testing.T, cfg discoverysvc.APIConfig) *apiFixture {
	t.Helper()
	m := etcdtest.Start(t)
	c := etcdtest.NewClient(t, m)
	srv := httptest.NewServer(discoverysvc.NewAPI(discoverysvc.NewRegistry(c, ""), cfg))
	t.Cleanup(srv.Close)
	return &apiFixture{member: m, client: c, srv: srv}
}

type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// errorText returns the "error" field of a JSON error body.
func (r apiResponse) errorText(t *testing.T) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
		t.Fatalf("status %d: body %q is not a JSON error", r.status, r.body)
	}
	return e.Error
}

func (f *apiFixture) do(t *testing.T, method, path, token, body string) apiResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return apiResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// revision is etcd's current revision: unchanged means nothing was written.
func (f *apiFixture) revision(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := f.client.Get(ctx, "revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func TestAPIRefusesBadInputAndWritesNothing(t *testing.T) {
	f := startAPI(t, testToken)
	// An existing server, so that bad heartbeats for it must not touch it.
	if r := f.do(t, "PUT", "/v1/servers/eu-1", testToken, `{"region":"eu","url":"http://10.0.0.1:9000","load":0.1}`); r.status != 200 {
		t.Fatalf("setup: %d %s", r.status, r.body)
	}
	good := func(replace string) string {
		return strings.Replace(`{"region":"eu","url":"http://10.0.0.1:9000","load":0.1,"ttl":10}`, `"load":0.1`, replace, 1)
	}
	huge := `{"region":"eu","url":"http://10.0.0.1:9000","load":0.1,"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name, method, path, body string
		field                    string // must appear in the error text
	}{
		{"id with a space", "PUT", "/v1/servers/eu%201", good(`"load":0.1`), "id"},
		{"id too long", "PUT", "/v1/servers/" + strings.Repeat("a", 65), good(`"load":0.1`), "id"},
		{"id with a slash", "PUT", "/v1/servers/eu/1", good(`"load":0.1`), "id"},
		{"id with an escaped slash", "PUT", "/v1/servers/eu%2F1", good(`"load":0.1`), "id"},
		{"empty id", "PUT", "/v1/servers/", good(`"load":0.1`), "id"},
		{"body id differs from path", "PUT", "/v1/servers/eu-1", `{"id":"eu-2","region":"eu","url":"http://a","load":0}`, "id"},
		{"body id not a string", "PUT", "/v1/servers/eu-1", `{"id":7,"region":"eu","url":"http://a","load":0}`, "id"},
		{"region missing", "PUT", "/v1/servers/eu-1", `{"url":"http://a","load":0}`, "region"},
		{"region empty", "PUT", "/v1/servers/eu-1", `{"region":"","url":"http://a","load":0}`, "region"},
		{"region with a space", "PUT", "/v1/servers/eu-1", `{"region":"eu west","url":"http://a","load":0}`, "region"},
		{"region too long", "PUT", "/v1/servers/eu-1", `{"region":"` + strings.Repeat("r", 65) + `","url":"http://a","load":0}`, "region"},
		{"region not a string", "PUT", "/v1/servers/eu-1", `{"region":1,"url":"http://a","load":0}`, "region"},
		{"url missing", "PUT", "/v1/servers/eu-1", `{"region":"eu","load":0}`, "url"},
		{"url empty", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"","load":0}`, "url"},
		{"url relative", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"/app","load":0}`, "url"},
		{"url ftp", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"ftp://a","load":0}`, "url"},
		{"url without host", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://","load":0}`, "url"},
		{"url with userinfo", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://u:p@a","load":0}`, "url"},
		{"url with query", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a/?x=1","load":0}`, "url"},
		{"url with fragment", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a/#x","load":0}`, "url"},
		{"url with bad port", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a:x","load":0}`, "url"},
		{"url not a string", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":["http://a"],"load":0}`, "url"},
		{"load missing", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a"}`, "load"},
		{"load null", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a","load":null}`, "load"},
		{"load negative", "PUT", "/v1/servers/eu-1", good(`"load":-0.5`), "load"},
		{"load a string", "PUT", "/v1/servers/eu-1", good(`"load":"0.5"`), "load"},
		{"load out of range", "PUT", "/v1/servers/eu-1", good(`"load":1e400`), "load"},
		{"draining not a boolean", "PUT", "/v1/servers/eu-1", good(`"load":0.1,"draining":"yes"`), "draining"},
		{"ttl zero", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a","load":0,"ttl":0}`, "ttl"},
		{"ttl negative", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a","load":0,"ttl":-5}`, "ttl"},
		{"ttl fractional", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a","load":0,"ttl":1.5}`, "ttl"},
		{"ttl too long", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a","load":0,"ttl":3601}`, "ttl"},
		{"ttl a duration string", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a","load":0,"ttl":"10s"}`, "ttl"},
		{"unknown field", "PUT", "/v1/servers/eu-1", good(`"load":0.1,"weight":3`), "weight"},
		{"field in another case", "PUT", "/v1/servers/eu-1", `{"REGION":"eu","url":"http://a","load":0}`, "REGION"},
		{"repeated field", "PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a","load":0,"region":"us"}`, "region"},
		{"empty body", "PUT", "/v1/servers/eu-1", "", "body"},
		{"not JSON", "PUT", "/v1/servers/eu-1", `region=eu`, "body"},
		{"truncated JSON", "PUT", "/v1/servers/eu-1", `{"region":"eu"`, "body"},
		{"JSON array", "PUT", "/v1/servers/eu-1", `[{"region":"eu","url":"http://a","load":0}]`, "body"},
		{"JSON null", "PUT", "/v1/servers/eu-1", `null`, "body"},
		{"JSON string", "PUT", "/v1/servers/eu-1", `"eu"`, "body"},
		{"two objects", "PUT", "/v1/servers/eu-1", good(`"load":0.9`) + `{}`, "body"},
		{"trailing garbage", "PUT", "/v1/servers/eu-1", good(`"load":0.9`) + `x`, "body"},
		{"body over 64 KiB", "PUT", "/v1/servers/eu-1", huge, "body"},
		{"delete bad id", "DELETE", "/v1/servers/eu%201", "", "id"},
		{"delete empty id", "DELETE", "/v1/servers/", "", "id"},
		{"list bad region", "GET", "/v1/servers?region=eu%20west", "", "region"},
		{"list empty region", "GET", "/v1/servers?region=", "", "region"},
		{"list two regions", "GET", "/v1/servers?region=eu&region=us", "", "region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.revision(t)
			r := f.do(t, tt.method, tt.path, testToken, tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if msg := r.errorText(t); !strings.Contains(msg, tt.field) {
				t.Errorf("error %q does not name %q", msg, tt.field)
			}
			if after := f.revision(t); after != before {
				t.Errorf("etcd revision moved from %d to %d: a bad request wrote something", before, after)
			}
		})
	}
	// The existing record is as it was.
	var list struct{ Servers []schema.Server }
	if err := json.Unmarshal(f.do(t, "GET", "/v1/servers", "", "").body, &list); err != nil {
		t.Fatal(err)
	}
	want := schema.Server{ID: "eu-1", Region: "eu", URL: "http://10.0.0.1:9000", Load: 0.1}
	if len(list.Servers) != 1 || !list.Servers[0].Same(want) {
		t.Fatalf("servers %+v, want only %+v", list.Servers, want)
	}
}

func TestAPIRequiresTheTokenForWrites(t *testing.T) {
	f := startAPI(t, testToken)
	body := `{"region":"eu","url":"http://a","load":0}`
	tests := []struct {
		name, method, auth string
	}{
		{"put without a token", "PUT", ""},
		{"put with a wrong token", "PUT", "Bearer wrong"},
		{"put with a token prefix", "PUT", "Bearer " + testToken[:4]},
		{"put with a longer token", "PUT", "Bearer " + testToken + "x"},
		{"put with basic auth", "PUT", "Basic " + testToken},
		{"put with a bare token", "PUT", testToken},
		{"delete without a token", "DELETE", ""},
		{"delete with a wrong token", "DELETE", "Bearer wrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.revision(t)
			req, _ := http.NewRequest(tt.method, f.srv.URL+"/v1/servers/eu-1", strings.NewReader(body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %s", resp.StatusCode, b)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			apiResponse{status: resp.StatusCode, body: b}.errorText(t)
			if after := f.revision(t); after != before {
				t.Errorf("etcd revision moved from %d to %d", before, after)
			}
		})
	}
	if r := f.do(t, "PUT", "/v1/servers/eu-1", testToken, body); r.status != 200 {
		t.Fatalf("with the token: %d %s", r.status, r.body)
	}
	// The API alone leaves reads to the service in front of it (see
	// Exposure and TestExposureMatrix).
	if r := f.do(t, "GET", "/v1/servers", "", ""); r.status != 200 {
		t.Fatalf("the API alone: reads need no token: %d %s", r.status, r.body)
	}
	// The scheme is case-insensitive (RFC 9110 §11.1).
	req, _ := http.NewRequest("DELETE", f.srv.URL+"/v1/servers/eu-1", nil)
	req.Header.Set("Authorization", "bearer "+testToken)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("lowercase bearer: %d", resp.StatusCode)
	}
}

func TestAPIRejectsWrongMethods(t *testing.T) {
	f := startAPI(t, "")
	tests := []struct {
		method, path, allow string
	}{
		{"POST", "/v1/servers/eu-1", "PUT, DELETE"},
		{"GET", "/v1/servers/eu-1", "PUT, DELETE"},
		{"PATCH", "/v1/servers/eu-1", "PUT, DELETE"},
		{"PUT", "/v1/servers", "GET, HEAD"},
		{"DELETE", "/v1/servers", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			before := f.revision(t)
			r := f.do(t, tt.method, tt.path, "", `{"region":"eu","url":"http://a","load":0}`)
			if r.status != http.StatusMethodNotAllowed {
				t.Fatalf("status %d, want 405", r.status)
			}
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			r.errorText(t)
			if after := f.revision(t); after != before {
				t.Errorf("etcd revision moved from %d to %d", before, after)
			}
		})
	}
	if r := f.do(t, "GET", "/v2/servers", "", ""); r.status != http.StatusNotFound {
		t.Fatalf("unknown path: %d", r.status)
	} else {
		r.errorText(t)
	}
}

func TestAPIRegistersListsAndDeregisters(t *testing.T) {
	f := startAPI(t, testToken)
	put := func(id, body string) schema.Server {
		t.Helper()
		r := f.do(t, "PUT", "/v1/servers/"+id, testToken, body)
		if r.status != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", id, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var s schema.Server
		if err := json.Unmarshal(r.body, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	got := put("us-1", `{"region":"us-east","url":"https://us1.example.com","load":0.5,"ttl":30}`)
	if want := (schema.Server{ID: "us-1", Region: "us-east", URL: "https://us1.example.com", Load: 0.5}); !got.Same(want) {
		t.Fatalf("PUT answered %+v, want %+v", got, want)
	}
	put("eu-2", `{"id":"eu-2","region":"eu-west","url":"http://127.0.0.1:9002","load":0.2,"draining":true}`)
	put("eu-1", `{"region":"eu-west","url":"http://127.0.0.1:9001","load":0.25}`)

	// The stored value is the server record's JSON under <prefix>servers/<id>, on a lease.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := f.client.Get(ctx, "/sessionpin/servers/eu-2")
	if err != nil || len(kv.Kvs) != 1 {
		t.Fatalf("etcd get: %v %v", err, kv)
	}
	var stored map[string]any
	if err := json.Unmarshal(kv.Kvs[0].Value, &stored); err != nil {
		t.Fatal(err)
	}
	if stored["id"] != "eu-2" || stored["region"] != "eu-west" || stored["draining"] != true {
		t.Errorf("stored value %s", kv.Kvs[0].Value)
	}
	if kv.Kvs[0].Lease == 0 {
		t.Error("stored without a lease")
	}
	ttl, err := f.client.TimeToLive(ctx, clientv3.LeaseID(kv.Kvs[0].Lease))
	if err != nil || ttl.GrantedTTL != 10 {
		t.Errorf("lease granted %d s (%v), want the default 10", ttl.GrantedTTL, err)
	}

	list := func(query string) (int64, []string) {
		t.Helper()
		r := f.do(t, "GET", "/v1/servers"+query, "", "")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", query, r.status, r.body)
		}
		var l struct {
			Revision *int64
			Servers  []schema.Server
		}
		if err := json.Unmarshal(r.body, &l); err != nil || l.Revision == nil || l.Servers == nil {
			t.Fatalf("list body %s: %v", r.body, err)
		}
		var ids []string
		for _, s := range l.Servers {
			ids = append(ids, s.ID)
		}
		return *l.Revision, ids
	}
	rev, ids := list("")
	if strings.Join(ids, ",") != "eu-1,eu-2,us-1" {
		t.Fatalf("list: %v", ids)
	}
	if rev != f.revision(t) {
		t.Errorf("list revision %d, etcd at %d", rev, f.revision(t))
	}
	if _, ids := list("?region=eu-west"); strings.Join(ids, ",") != "eu-1,eu-2" {
		t.Fatalf("region eu-west: %v", ids)
	}
	if _, ids := list("?region=nowhere"); len(ids) != 0 {
		t.Fatalf("region nowhere: %v", ids)
	}

	if r := f.do(t, "DELETE", "/v1/servers/eu-1", testToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	r := f.do(t, "DELETE", "/v1/servers/eu-1", testToken, "")
	if r.status != http.StatusNotFound {
		t.Fatalf("second DELETE: %d %s", r.status, r.body)
	}
	if msg := r.errorText(t); !strings.Contains(msg, "eu-1") {
		t.Errorf("404 error %q does not name the server", msg)
	}
	if _, ids := list(""); strings.Join(ids, ",") != "eu-2,us-1" {
		t.Fatalf("after delete: %v", ids)
	}
}

func TestAPIHealthFollowsEtcd(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	f := startAPIWith(t, discoverysvc.APIConfig{AllowLoopback: true, Logger: zap.New(core)})
	r := f.do(t, "GET", "/healthz", "", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("healthz with etcd up: %d %s", r.status, r.body)
	}
	f.member.Stop()
	poll.True(t, 30*time.Second, "healthz 503 with etcd down", func() bool {
		return f.do(t, "GET", "/healthz", "", "").status == http.StatusServiceUnavailable
	})
	// With etcd down every call is an outage, not the caller's fault, and
	// the answer tells the caller nothing about the cluster: the etcd
	// error goes to the log.
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/servers/eu-1", `{"region":"eu","url":"http://a","load":0}`},
		{"DELETE", "/v1/servers/eu-1", ""},
		{"GET", "/v1/servers", ""},
	} {
		r := f.do(t, c.method, c.path, "", c.body)
		if r.status != http.StatusServiceUnavailable || string(r.body) != "{\"error\":\"registry_unavailable\"}\n" {
			t.Errorf("%s %s with etcd down: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	if r := f.do(t, "GET", "/healthz", "", ""); strings.Contains(string(r.body), f.member.Client) || !strings.Contains(string(r.body), "registry_unavailable") {
		t.Errorf("healthz with etcd down: %s", r.body)
	}
	if logs.Len() == 0 {
		t.Errorf("no etcd error logged")
	}
	for _, e := range logs.All() {
		if _, ok := e.ContextMap()["error"]; !ok {
			t.Errorf("log %q carries no etcd error", e.Message)
		}
	}
}

// TestAPIRefusesURLsNoEdgeShouldDial: a server may not point edges at a
// link-local (metadata service), unspecified, multicast or broadcast
// address, nor at the edge's own host unless loopback is allowed.
func TestAPIRefusesURLsNoEdgeShouldDial(t *testing.T) {
	f := startAPIWith(t, discoverysvc.APIConfig{Token: testToken})
	refused := []string{
		"http://169.254.169.254/latest", "http://[fe80::1]:80", "http://0.0.0.0:2019", "http://[::]:2019",
		"http://224.0.0.1", "http://[ff02::1]", "http://255.255.255.255", "http://[::ffff:169.254.169.254]",
		"http://127.0.0.1:2019", "http://127.8.8.8", "http://[::1]:2019", "http://[::ffff:127.0.0.1]:2019",
		"http://localhost:2019", "http://LocalHost.:2019", "http://admin.localhost",
		"http://127.1:2019", "http://0x7f000001:2019", "http://2130706433:2019",
	}
	for _, u := range refused {
		before := f.revision(t)
		r := f.do(t, "PUT", "/v1/servers/eu-1", testToken, fmt.Sprintf(`{"region":"eu","url":%q,"load":0}`, u))
		if r.status != http.StatusBadRequest || !strings.Contains(r.errorText(t), "url") {
			t.Errorf("%s: %d %s, want 400 naming url", u, r.status, r.body)
		}
		if after := f.revision(t); after != before {
			t.Errorf("%s: etcd revision moved from %d to %d", u, before, after)
		}
	}
	for _, u := range []string{"http://10.0.0.1:9000", "https://eu-1.example.com", "http://[2001:db8::1]:80"} {
		if r := f.do(t, "PUT", "/v1/servers/eu-1", testToken, fmt.Sprintf(`{"region":"eu","url":%q,"load":0}`, u)); r.status != 200 {
			t.Errorf("%s: %d %s", u, r.status, r.body)
		}
	}
	// --allow-loopback admits the machine itself, and nothing else.
	lo := startAPI(t, testToken)
	for _, u := range []string{"http://127.0.0.1:9001", "http://localhost:9001", "http://[::1]:9001"} {
		if r := lo.do(t, "PUT", "/v1/servers/eu-1", testToken, fmt.Sprintf(`{"region":"eu","url":%q,"load":0}`, u)); r.status != 200 {
			t.Errorf("allow-loopback, %s: %d %s", u, r.status, r.body)
		}
	}
	for _, u := range []string{"http://169.254.169.254", "http://0.0.0.0:9001", "http://127.1:9001"} {
		if r := lo.do(t, "PUT", "/v1/servers/eu-1", testToken, fmt.Sprintf(`{"region":"eu","url":%q,"load":0}`, u)); r.status != http.StatusBadRequest {
			t.Errorf("allow-loopback, %s: %d %s, want 400", u, r.status, r.body)
		}
	}
}

func TestDecodeHeartbeat(t *testing.T) {
	srv, ttl, err := discoverysvc.DecodeHeartbeat("eu-1", []byte(` {"region":"eu","url":"http://a:1/p","load":0.5,"draining":true,"ttl":2} `))
	if err != nil {
		t.Fatal(err)
	}
	if want := (schema.Server{ID: "eu-1", Region: "eu", URL: "http://a:1/p", Load: 0.5, Draining: true}); !srv.Same(want) || ttl != 2*time.Second {
		t.Fatalf("got %+v %s", srv, ttl)
	}
	if _, ttl, _ := discoverysvc.DecodeHeartbeat("eu-1", []byte(`{"region":"eu","url":"http://a","load":0}`)); ttl != schema.DefaultTTL {
		t.Fatalf("default ttl %s", ttl)
	}
	_, _, err = discoverysvc.DecodeHeartbeat("eu-1", []byte(`{"region":"eu","url":"http://a","load":0,"nope":1}`))
	if fe, ok := errors.AsType[*schema.FieldError](err); !ok || fe.Field != "body" || !strings.Contains(fe.Reason, `"nope"`) {
		t.Fatalf("unknown field: %v", err)
	}
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add("eu-1", []byte(`{"region":"eu","url":"http://127.0.0.1:9001","load":0.25}`))
	f.Add("eu-1", []byte(`{"id":"eu-1","region":"eu","url":"https://a/b","load":1,"draining":true,"ttl":30}`))
	f.Add("x", []byte(`{"region":"eu","url":"http://a","load":1e400}`))
	f.Add("x", []byte(`{"region":"eu","url":"http://a","load":0} {}`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		srv, ttl, err := discoverysvc.DecodeHeartbeat(id, body)
		if err != nil {
			if _, ok := errors.AsType[*schema.FieldError](err); !ok {
				t.Fatalf("error %T %v is not a *FieldError", err, err)
			}
			return
		}
		if srv.ID != id {
			t.Fatalf("id %q from path %q", srv.ID, id)
		}
		if err := srv.Validate(); err != nil {
			t.Fatalf("accepted an invalid server %+v: %v", srv, err)
		}
		if ttl < schema.MinTTL || ttl > schema.MaxTTL || ttl%time.Second != 0 {
			t.Fatalf("accepted ttl %s", ttl)
		}
		if len(body) > discoverysvc.MaxBodyBytes {
			t.Fatalf("accepted a %d-byte body", len(body))
		}
	})
}
