package discoverysvc

import (
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

func TestDecodeHeartbeatCapacityAndLimit(t *testing.T) {
	body := func(extra string) []byte {
		return []byte(`{"region":"eu","url":"http://127.0.0.1:9001","load":0.25` + extra + `}`)
	}
	srv, _, err := DecodeHeartbeat("eu-1", body(`,"capacity":1500,"limit":0.85`))
	if err != nil || srv.Capacity != 1500 || srv.Limit != 0.85 {
		t.Fatalf("DecodeHeartbeat = %+v, %v", srv, err)
	}
	for _, tc := range []struct{ extra, field string }{
		{`,"capacity":-3`, "capacity"},
		{`,"capacity":2e9`, "capacity"},
		{`,"limit":-1`, "limit"},
		{`,"limit":1e300`, "limit"},
	} {
		_, _, err := DecodeHeartbeat("eu-1", body(tc.extra))
		fe, ok := err.(*schema.FieldError)
		if !ok || fe.Field != tc.field {
			t.Fatalf("DecodeHeartbeat(%s) = %v, want a FieldError on %s", tc.extra, err, tc.field)
		}
	}
}

// A change of capacity or limit is written at once, like any change but a
// small move of the load.
func TestNeedsWriteCapacityAndLimit(t *testing.T) {
	old := schema.Server{ID: "eu-1", Region: "eu", URL: "http://h", Load: 0.3, Capacity: 1000, Limit: 0.9}
	for _, tc := range []struct {
		name string
		edit func(*schema.Server)
		want bool
	}{
		{"nothing", func(*schema.Server) {}, false},
		{"capacity", func(s *schema.Server) { s.Capacity = 2000 }, true},
		{"capacity dropped", func(s *schema.Server) { s.Capacity = 0 }, true},
		{"limit", func(s *schema.Server) { s.Limit = 0.8 }, true},
		{"load by a little", func(s *schema.Server) { s.Load = 0.31 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := old
			tc.edit(&srv)
			if got := needsWrite(old, srv); got != tc.want {
				t.Fatalf("needsWrite = %v, want %v", got, tc.want)
			}
		})
	}
}
