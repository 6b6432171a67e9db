package caddymodule

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
)

func gzipped(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const bom = "\xEF\xBB\xBF"

// The edge reads a refresh body the way the app will: it honours gzip and
// skips a byte-order mark, so a repeated field cannot hide behind either,
// and it refuses codings it does not read.
func TestParseRefreshEncodings(t *testing.T) {
	critical := `{"criticalTaskInProgress":true}`
	twice := `{"criticalTaskInProgress":false,"criticalTaskInProgress":true}`
	tests := []struct {
		name   string
		body   string
		coding []string // Content-Encoding lines
		want   placement.RefreshRequest
		status int // of the error; 0 means none
	}{
		{"plain", critical, nil, placement.RefreshRequest{Critical: true}, 0},
		{"identity", critical, []string{"identity"}, placement.RefreshRequest{Critical: true}, 0},
		{"byte-order mark", bom + critical, nil, placement.RefreshRequest{Critical: true}, 0},
		{"byte-order mark, then space", bom + " \n" + critical, nil, placement.RefreshRequest{Critical: true}, 0},
		{"byte-order mark hides no repeated field", bom + twice, nil, placement.RefreshRequest{}, http.StatusBadRequest},
		{"gzip", gzipped(t, critical), []string{"gzip"}, placement.RefreshRequest{Critical: true}, 0},
		{"x-gzip, any case", gzipped(t, critical), []string{"X-GZip"}, placement.RefreshRequest{Critical: true}, 0},
		{"gzip with a byte-order mark", gzipped(t, bom+critical), []string{"gzip"}, placement.RefreshRequest{Critical: true}, 0},
		{"gzip hides no repeated field", gzipped(t, twice), []string{"gzip"}, placement.RefreshRequest{}, http.StatusBadRequest},
		{"gzip and identity", gzipped(t, critical), []string{"identity, gzip"}, placement.RefreshRequest{Critical: true}, 0},
		{"empty gzip body", "", []string{"gzip"}, placement.RefreshRequest{}, 0},
		{"gzip header, plain body", critical, []string{"gzip"}, placement.RefreshRequest{}, http.StatusBadRequest},
		{"gzip cut short", gzipped(t, critical)[:20], []string{"gzip"}, placement.RefreshRequest{}, http.StatusBadRequest},
		{"gzip then garbage", gzipped(t, critical) + "garbage", []string{"gzip"}, placement.RefreshRequest{}, http.StatusBadRequest},
		{"gzip bomb", gzipped(t, `{"pad":"`+strings.Repeat("x", 1<<20)+`"}`), []string{"gzip"}, placement.RefreshRequest{}, http.StatusRequestEntityTooLarge},
		{"gzip twice", gzipped(t, gzipped(t, critical)), []string{"gzip, gzip"}, placement.RefreshRequest{}, http.StatusUnsupportedMediaType},
		{"gzip on two lines", gzipped(t, gzipped(t, critical)), []string{"gzip", "gzip"}, placement.RefreshRequest{}, http.StatusUnsupportedMediaType},
		{"deflate", critical, []string{"deflate"}, placement.RefreshRequest{}, http.StatusUnsupportedMediaType},
		{"br", critical, []string{"br"}, placement.RefreshRequest{}, http.StatusUnsupportedMediaType},
		{"zstd", critical, []string{"zstd"}, placement.RefreshRequest{}, http.StatusUnsupportedMediaType},
		{"unknown, even with an empty body", "", []string{"compress"}, placement.RefreshRequest{}, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, c := range tt.coding {
				h.Add("Content-Encoding", c)
			}
			got, err := parseRefresh([]byte(tt.body), h)
			if tt.status != 0 {
				if err == nil {
					t.Fatalf("got %+v, want an error answered %d", got, tt.status)
				}
				if s := refreshErrorStatus(err); s != tt.status {
					t.Fatalf("error %v answered %d, want %d", err, s, tt.status)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzDecodeRefreshBody: no gzip body makes the decoder panic or return
// more than the edge reads.
func FuzzDecodeRefreshBody(f *testing.F) {
	for _, seed := range []string{
		gzipped(f, `{"criticalTaskInProgress":true}`),
		gzipped(f, bom+`{"closestServerId":"eu-1"}`),
		gzipped(f, `{"criticalTaskInProgress":false,"criticalTaskInProgress":true}`),
		gzipped(f, strings.Repeat("{", 70000)),
		gzipped(f, ""),
		"\x1f\x8b",
		"",
	} {
		f.Add([]byte(seed))
	}
	h := http.Header{"Content-Encoding": {"gzip"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := decodeRefreshBody(body, h)
		if err == nil && len(out) > maxRefreshBody {
			t.Fatalf("decoded %d bytes, more than %d", len(out), maxRefreshBody)
		}
		if err != nil {
			if s := refreshErrorStatus(err); s != http.StatusBadRequest && s != http.StatusRequestEntityTooLarge {
				t.Fatalf("error %v answered %d", err, s)
			}
			return
		}
		_, _ = parseRefresh(body, h)
	})
}
