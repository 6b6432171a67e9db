package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// TestPinWriter: the session headers go out with the final status however
// the rest of the route writes it (WriteHeader, an implicit 200 on Write,
// io.Copy's ReadFrom, a flush), never on a 5xx, never on interim 1xx.
func TestPinWriter(t *testing.T) {
	h := &Handler{Region: "eu", Key: &pin.KeyConfig{Algorithm: "hs256", Secret: secret32}}
	h.logger = zap.NewNop()
	if err := h.setup(); err != nil {
		t.Fatal(err)
	}
	tgt := attachTarget(schema.Server{ID: "eu-1", Region: "eu", URL: "http://10.0.0.1:80"}).(*target)

	cases := []struct {
		name      string
		write     func(w http.ResponseWriter)
		wantPin   bool
		wantFinal int
	}{
		{"WriteHeader 200", func(w http.ResponseWriter) { w.WriteHeader(200) }, true, 200},
		{"implicit 200 on Write", func(w http.ResponseWriter) { w.Write([]byte("x")) }, true, 200},
		{"io.Copy (ReadFrom), as file_server writes", func(w http.ResponseWriter) { io.Copy(w, strings.NewReader("body")) }, true, 200},
		{"flush first", func(w http.ResponseWriter) { http.NewResponseController(w).Flush() }, true, 200},
		{"404 still pins", func(w http.ResponseWriter) { w.WriteHeader(404) }, true, 404},
		{"500 does not pin", func(w http.ResponseWriter) { w.WriteHeader(500) }, false, 500},
		{"503 does not pin", func(w http.ResponseWriter) { w.WriteHeader(503) }, false, 503},
		{"103 then 200 pins the final response", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(200) }, true, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &finalRecorder{ResponseRecorder: httptest.NewRecorder()}
			d := &decision{choice: choice{target: tgt, issue: true, reason: "placement"}}
			pw := &pinWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: rec}, h: h, d: d}
			pw.server[0] = tgt.id
			c.write(pw)
			if rec.final != c.wantFinal {
				t.Fatalf("final status %d, want %d", rec.final, c.wantFinal)
			}
			hdr := rec.Header() // live: the recorder snapshots at an interim 1xx
			if got := hdr.Get("X-Session-Server"); got != "eu-1" {
				t.Errorf("X-Session-Server = %q", got)
			}
			if got := hdr.Get("X-Session-Pin") != ""; got != c.wantPin {
				t.Errorf("pin issued = %v, want %v", got, c.wantPin)
			}
			if got := strings.HasPrefix(hdr.Get("Set-Cookie"), "sessionpin="); got != c.wantPin {
				t.Errorf("cookie set = %v, want %v", got, c.wantPin)
			}
		})
	}
}

// finalRecorder records the last status written; httptest's recorder keeps
// the first, even an interim 1xx.
type finalRecorder struct {
	*httptest.ResponseRecorder
	final int
}

func (r *finalRecorder) WriteHeader(status int) {
	r.final = status
	r.ResponseRecorder.WriteHeader(status)
}

func (r *finalRecorder) Write(b []byte) (int, error) {
	if r.final == 0 {
		r.final = http.StatusOK
	}
	return r.ResponseRecorder.Write(b)
}

func (r *finalRecorder) Flush() {
	if r.final == 0 {
		r.final = http.StatusOK
	}
	r.ResponseRecorder.Flush()
}
