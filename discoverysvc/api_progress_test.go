package discoverysvc_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// A heartbeat's origin and progress are held to the record's rules and
// spelled exactly; a bad one is refused with an error naming the field and
// writes nothing, and the stored record stays as it was.
func TestAPIRefusesBadProgressAndWritesNothing(t *testing.T) {
	f := startAPI(t, testToken)
	const base = `{"region":"eu","url":"http://10.0.0.1:9000","load":0.1`
	const stored = base + `,"origin":"eu","progress":{"us":{"lag_ms":500}}}`
	if r := f.do(t, "PUT", "/v1/servers/eu-1", testToken, stored); r.status != 200 {
		t.Fatalf("setup: %d %s", r.status, r.body)
	}
	many := make([]string, schema.MaxOrigins+1)
	for i := range many {
		many[i] = `"o` + strings.Repeat("x", i+1) + `":{"lag_ms":0}`
	}
	for _, tc := range []struct{ name, extra, field string }{
		{"origin not a string", `,"origin":7`, "origin"},
		{"origin with a space", `,"origin":"eu west"`, "origin"},
		{"origin of dots", `,"origin":".."`, "origin"},
		{"origin too long", `,"origin":"` + strings.Repeat("o", 65) + `"`, "origin"},
		{"origin repeated", `,"origin":"eu","origin":"us"`, "origin"},
		{"progress a list", `,"progress":[]`, "progress"},
		{"progress a number", `,"progress":0`, "progress"},
		{"entry null", `,"progress":{"us":null}`, "progress"},
		{"entry empty", `,"progress":{"us":{}}`, "progress"},
		{"entry a number", `,"progress":{"us":0.5}`, "progress"},
		{"lag negative", `,"progress":{"us":{"lag_ms":-1}}`, "progress"},
		{"lag over a day", `,"progress":{"us":{"lag_ms":86400001}}`, "progress"},
		{"lag fractional", `,"progress":{"us":{"lag_ms":1.5}}`, "progress"},
		{"lag a string", `,"progress":{"us":{"lag_ms":"5"}}`, "progress"},
		{"lag out of range", `,"progress":{"us":{"lag_ms":1e400}}`, "progress"},
		{"unknown with a lag", `,"progress":{"us":{"lag_ms":5,"unknown":true}}`, "progress"},
		{"unknown not a boolean", `,"progress":{"us":{"unknown":"yes"}}`, "progress"},
		{"unknown field in an entry", `,"progress":{"us":{"lag_ms":5,"lsn":"0/1"}}`, "lsn"},
		{"field in another case", `,"progress":{"us":{"LAG_MS":5}}`, "LAG_MS"},
		{"field repeated", `,"progress":{"us":{"lag_ms":5,"lag_ms":0}}`, "lag_ms"},
		{"origin given twice", `,"progress":{"us":{"unknown":true},"us":{"lag_ms":0}}`, `"us"`},
		{"origin name with a slash", `,"progress":{"u/s":{"lag_ms":0}}`, "progress"},
		{"empty origin name", `,"progress":{"":{"lag_ms":0}}`, "progress"},
		{"too many origins", `,"progress":{` + strings.Join(many, ",") + `}`, "progress"},
		{"progress repeated", `,"progress":{},"progress":{}`, "progress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.revision(t)
			r := f.do(t, "PUT", "/v1/servers/eu-1", testToken, base+tc.extra+`}`)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", r.status, r.body)
			}
			if msg := r.errorText(t); !strings.Contains(msg, tc.field) {
				t.Errorf("error %q does not name %q", msg, tc.field)
			}
			if after := f.revision(t); after != before {
				t.Errorf("etcd revision moved from %d to %d: a bad request wrote something", before, after)
			}
		})
	}
	var list struct{ Servers []schema.Server }
	if err := json.Unmarshal(f.do(t, "GET", "/v1/servers", "", "").body, &list); err != nil {
		t.Fatal(err)
	}
	want := schema.Server{ID: "eu-1", Region: "eu", URL: "http://10.0.0.1:9000", Load: 0.1,
		Origin: "eu", Progress: map[string]schema.Progress{"us": {LagMS: 500}}}
	if len(list.Servers) != 1 || !list.Servers[0].Same(want) {
		t.Fatalf("servers %+v, want only %+v", list.Servers, want)
	}
}

func TestDecodeHeartbeatProgress(t *testing.T) {
	srv, _, err := discoverysvc.DecodeHeartbeat("eu-1", []byte(`{"region":"eu","url":"http://a","load":0,`+
		`"origin":"eu-db","progress":{"eu-db":{"lag_ms":0},"us-db":{"lag_ms":1234,"unknown":false},"ap-db":{"unknown":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]schema.Progress{"eu-db": {}, "us-db": {LagMS: 1234}, "ap-db": {Unknown: true}}
	if srv.Origin != "eu-db" || !schema.SameProgress(srv.Progress, want) {
		t.Fatalf("origin %q progress %v", srv.Origin, srv.Progress)
	}
	// No progress, and an explicit null, say the same: no progress source.
	for _, body := range []string{`{"region":"eu","url":"http://a","load":0}`, `{"region":"eu","url":"http://a","load":0,"origin":null,"progress":null}`} {
		srv, _, err := discoverysvc.DecodeHeartbeat("eu-1", []byte(body))
		if err != nil || srv.Origin != "" || srv.Progress != nil {
			t.Fatalf("%s: %+v %v", body, srv, err)
		}
	}
	_, _, err = discoverysvc.DecodeHeartbeat("eu-1", []byte(`{"region":"eu","url":"http://a","load":0,"progress":{"us":{}}}`))
	if fe, ok := errors.AsType[*schema.FieldError](err); !ok || fe.Field != "progress" {
		t.Fatalf("empty entry: %v", err)
	}
}
