package caddymodule_test

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Through a real Caddy: a refresh body behind a byte-order mark or gzip is
// read as the app will read it, a repeated field behind either is refused,
// a coding the edge does not read gets 415, and the app always receives the
// body byte for byte.
func TestRefreshBodyEncodingsAtTheEdge(t *testing.T) {
	f := newFixture(t, "")
	eu1, eu2 := newBackend(t, "eu-1"), newBackend(t, "eu-2")
	f.reg.put("eu-1", "eu-west", eu1.srv.URL, 0.9, false)
	f.reg.put("eu-2", "eu-west", eu2.srv.URL, 0.1, false)
	f.waitRouted("eu-1", "eu-west")
	f.waitRouted("eu-2", "eu-west")
	pin, err := f.keys.Issue("eu-1", "eu-west", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.String()
	}
	const bom = "\xEF\xBB\xBF"
	critical := `{"criticalTaskInProgress":true}`
	twice := `{"criticalTaskInProgress":false,"criticalTaskInProgress":true}`
	hits := func() int64 { return eu1.hits.Load() + eu2.hits.Load() }

	for _, c := range []struct {
		name, body, coding string
		status             int
	}{
		// eu-1 is overloaded: only a critical task the edge saw keeps
		// the client there.
		{"byte-order mark", bom + critical, "", http.StatusOK},
		{"gzip", gz(critical), "gzip", http.StatusOK},
		{"gzip and byte-order mark", gz(bom + critical), "gzip", http.StatusOK},
		{"byte-order mark, repeated field", bom + twice, "", http.StatusBadRequest},
		{"gzip, repeated field", gz(twice), "gzip", http.StatusBadRequest},
		{"gzip bomb", gz(`{"pad":"` + strings.Repeat("x", 1<<20) + `"}`), "gzip", http.StatusRequestEntityTooLarge},
		{"brotli", critical, "br", http.StatusUnsupportedMediaType},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := hits()
			req := request{method: http.MethodPost, path: "/auth/refresh", pin: pin, body: c.body,
				headers: map[string]string{"X-Critical-Task": "false"}}
			if c.coding != "" {
				req.headers["Content-Encoding"] = c.coding
			}
			r := f.do(req)
			if r.status != c.status {
				t.Fatalf("got %d %q, want %d", r.status, r.body, c.status)
			}
			if c.status != http.StatusOK {
				if !strings.Contains(r.body, `"error"`) || hits() != before || r.pinOut() != "" {
					t.Fatalf("refused refresh: body %q, proxied %v, pin %q", r.body, hits() != before, r.pinOut())
				}
				return
			}
			if r.server() != "eu-1" {
				t.Fatalf("critical refresh went to %q, want it kept on eu-1", r.server())
			}
			if got := eu1.body(); got != c.body {
				t.Fatalf("app received %q, want the body byte for byte", got)
			}
		})
	}
}
