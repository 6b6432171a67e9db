package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

func TestParseRefreshBody(t *testing.T) {
	tests := []struct {
		name                        string
		body                        string
		want                        placement.RefreshRequest
		foundClosest, foundCritical bool
		err                         string // substring; "" means no error
	}{
		{"both fields", `{"closestServerId":"eu-2","criticalTaskInProgress":true}`, placement.RefreshRequest{Closest: "eu-2", Critical: true}, true, true, ""},
		{"whitespace and other fields", " \n{\"user\":{\"closestServerId\":7},\"closestServerId\" : \"a.b_c-1\", \"x\":[1,2]}\n", placement.RefreshRequest{Closest: "a.b_c-1"}, true, false, ""},
		{"only critical false", `{"criticalTaskInProgress":false}`, placement.RefreshRequest{}, false, true, ""},
		{"empty closest means unknown", `{"closestServerId":""}`, placement.RefreshRequest{}, true, false, ""},
		{"null counts as absent", `{"closestServerId":null,"criticalTaskInProgress":null}`, placement.RefreshRequest{}, false, false, ""},
		{"escaped names and values", `{"closest\u0053erverId":"eu\u002d2"}`, placement.RefreshRequest{Closest: "eu-2"}, true, false, ""},
		{"other keys may repeat", `{"user":1,"user":2,"closestServerId":"a"}`, placement.RefreshRequest{Closest: "a"}, true, false, ""},
		{"names match exactly", `{"ClosestServerId":"a","criticaltaskinprogress":true}`, placement.RefreshRequest{}, false, false, ""},
		{"nested fields are not top level", `{"data":{"criticalTaskInProgress":true}}`, placement.RefreshRequest{}, false, false, ""},
		{"empty object", `{}`, placement.RefreshRequest{}, false, false, ""},

		{"empty body", ``, placement.RefreshRequest{}, false, false, ""},
		{"form body", `closestServerId=eu-2&criticalTaskInProgress=true`, placement.RefreshRequest{}, false, false, ""},
		{"json array", `[{"closestServerId":"eu-2"}]`, placement.RefreshRequest{}, false, false, ""},
		{"json string", `"closestServerId"`, placement.RefreshRequest{}, false, false, ""},
		{"truncated json", `{"closestServerId":"eu-2"`, placement.RefreshRequest{}, false, false, ""},
		{"trailing garbage", `{"closestServerId":"eu-2"} x`, placement.RefreshRequest{}, false, false, ""},

		{"closest not a string", `{"closestServerId":12}`, placement.RefreshRequest{}, false, false, "closestServerId must be a string"},
		{"closest an address", `{"closestServerId":"127.0.0.1:9000"}`, placement.RefreshRequest{}, false, false, "closestServerId"},
		{"closest too long", `{"closestServerId":"` + strings.Repeat("a", 65) + `"}`, placement.RefreshRequest{}, false, false, "not a valid server id"},
		{"critical a string", `{"criticalTaskInProgress":"true"}`, placement.RefreshRequest{}, false, false, "criticalTaskInProgress must be a boolean"},
		{"critical a number", `{"closestServerId":"eu-1","criticalTaskInProgress":1}`, placement.RefreshRequest{}, false, false, "criticalTaskInProgress must be a boolean"},
		{"closest repeated", `{"closestServerId":"a","closestServerId":"b"}`, placement.RefreshRequest{}, false, false, "closestServerId given more than once"},
		{"closest repeated, same value", `{"closestServerId":"a","closestServerId":"a"}`, placement.RefreshRequest{}, false, false, "closestServerId given more than once"},
		{"closest repeated, escaped", `{"closest\u0053erverId":"a","closestServerId":"b"}`, placement.RefreshRequest{}, false, false, "closestServerId given more than once"},
		{"closest repeated, once null", `{"closestServerId":null,"closestServerId":"b"}`, placement.RefreshRequest{}, false, false, "closestServerId given more than once"},
		{"critical repeated", `{"criticalTaskInProgress":true,"x":0,"criticalTaskInProgress":false}`, placement.RefreshRequest{}, false, false, "criticalTaskInProgress given more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, fc, fk, err := parseRefreshBody([]byte(tt.body))
			if checkParsed(t, in, fc, fk, err, tt.want, tt.foundClosest, tt.foundCritical, tt.err) &&
				(in != (placement.RefreshRequest{}) || fc || fk) {
				t.Fatalf("on error got %+v %v %v, want nothing", in, fc, fk)
			}
		})
	}
}

func TestParseRefreshHeaders(t *testing.T) {
	tests := []struct {
		name                        string
		headers                     map[string][]string
		want                        placement.RefreshRequest
		foundClosest, foundCritical bool
		err                         string
	}{
		{"none", nil, placement.RefreshRequest{}, false, false, ""},
		{"both", map[string][]string{"X-Closest-Server": {"eu-2"}, "X-Critical-Task": {"true"}}, placement.RefreshRequest{Closest: "eu-2", Critical: true}, true, true, ""},
		{"critical 1", map[string][]string{"X-Critical-Task": {"1"}}, placement.RefreshRequest{Critical: true}, false, true, ""},
		{"critical TRUE", map[string][]string{"X-Critical-Task": {" TRUE "}}, placement.RefreshRequest{Critical: true}, false, true, ""},
		{"critical False", map[string][]string{"X-Critical-Task": {"False"}}, placement.RefreshRequest{}, false, true, ""},
		{"critical 0", map[string][]string{"X-Critical-Task": {"0"}}, placement.RefreshRequest{}, false, true, ""},
		{"empty closest means unknown", map[string][]string{"X-Closest-Server": {""}}, placement.RefreshRequest{}, true, false, ""},
		{"critical yes", map[string][]string{"X-Critical-Task": {"yes"}}, placement.RefreshRequest{}, false, false, "header X-Critical-Task"},
		{"critical empty", map[string][]string{"X-Critical-Task": {""}}, placement.RefreshRequest{}, false, false, "header X-Critical-Task"},
		{"closest an address", map[string][]string{"X-Closest-Server": {"10.0.0.1:80"}}, placement.RefreshRequest{}, false, false, "header X-Closest-Server"},
		{"closest twice", map[string][]string{"X-Closest-Server": {"a", "b"}}, placement.RefreshRequest{}, false, false, "given 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, fc, fk, err := parseRefreshHeaders(http.Header(tt.headers))
			checkParsed(t, in, fc, fk, err, tt.want, tt.foundClosest, tt.foundCritical, tt.err)
		})
	}
}

func TestParseRefresh(t *testing.T) {
	h := http.Header{}
	h.Set(headerClosest, "us-1")
	h.Set(headerCritical, "true")
	in, err := parseRefresh([]byte(`{"closestServerId":"eu-1"}`), h)
	if err != nil || in != (placement.RefreshRequest{Closest: "eu-1", Critical: true}) {
		t.Fatalf("body closest + header critical: got %+v, %v", in, err)
	}
	in, err = parseRefresh([]byte(`a=b`), h)
	if err != nil || in != (placement.RefreshRequest{Closest: "us-1", Critical: true}) {
		t.Fatalf("form body + headers: got %+v, %v", in, err)
	}
	in, err = parseRefresh([]byte(`{"criticalTaskInProgress":false}`), h)
	if err != nil || in != (placement.RefreshRequest{Closest: "us-1", Critical: false}) {
		t.Fatalf("body critical wins: got %+v, %v", in, err)
	}
	if _, err := parseRefresh([]byte(`{"closestServerId":1}`), h); err == nil {
		t.Fatal("bad body field: no error")
	}
	h.Set(headerCritical, "maybe")
	if _, err := parseRefresh([]byte(`{}`), h); err == nil {
		t.Fatal("bad header: no error")
	}
}

// FuzzparseRefreshBody checks the parser against encoding/json's own reading
// of the same body, and that it never returns an invalid server id.
func FuzzParseRefreshBody(f *testing.F) {
	for _, seed := range []string{
		`{"closestServerId":"eu-2","criticalTaskInProgress":true}`,
		`{"closestServerId":null}`,
		`{"closestServerId":"127.0.0.1:80"}`,
		`{"criticalTaskInProgress":"true"}`,
		`{"closest\u0053erverId":"x","closestServerId":"y"}`,
		`closestServerId=eu-2`,
		`[]`,
		``,
		`{"a":{"closestServerId":1}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, fc, fk, err := parseRefreshBody(body)
		if err != nil {
			if in != (placement.RefreshRequest{}) || fc || fk {
				t.Fatalf("error %v with fields %+v %v %v", err, in, fc, fk)
			}
		}
		if fc && in.Closest != "" && !schema.ValidName(in.Closest) {
			t.Fatalf("invalid closest %q accepted", in.Closest)
		}
		if !fc && in.Closest != "" || !fk && in.Critical {
			t.Fatalf("field set but not found: %+v %v %v", in, fc, fk)
		}
		// UseNumber: 1e400 is valid JSON that a float64 cannot hold.
		var ref map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&ref) != nil || ref == nil || dec.InputOffset() != int64(len(bytes.TrimRight(body, " \t\r\n"))) {
			if fc || fk || err != nil {
				t.Fatalf("not a JSON object, yet got %+v %v %v %v", in, fc, fk, err)
			}
			return
		}
		if err != nil {
			return
		}
		if v, ok := ref[fieldClosest]; ok && v != nil {
			if s, _ := v.(string); !fc || s != in.Closest {
				t.Fatalf("closest: reference %v, got %q found=%v", v, in.Closest, fc)
			}
		}
		if v, ok := ref[fieldCritical]; ok && v != nil {
			if b, _ := v.(bool); !fk || b != in.Critical {
				t.Fatalf("critical: reference %v, got %v found=%v", v, in.Critical, fk)
			}
		}
	})
}

// checkParsed checks one result of a refresh parser against the expected
// input and found flags, or that its error contains wantErr; it reports
// whether an error was expected (and found).
func checkParsed(t *testing.T, in placement.RefreshRequest, fc, fk bool, err error, want placement.RefreshRequest, wantClosest, wantCritical bool, wantErr string) bool {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one containing %q", err, wantErr)
		}
		return true
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if in != want || fc != wantClosest || fk != wantCritical {
		t.Fatalf("got %+v closest=%v critical=%v, want %+v closest=%v critical=%v",
			in, fc, fk, want, wantClosest, wantCritical)
	}
	return false
}

// Errors quote a bad value whole up to 64 bytes and cut a longer one, so
// a client cannot make the edge log an arbitrary amount.
func TestRefreshErrorsQuoteAtMost64Bytes(t *testing.T) {
	for _, tc := range []struct {
		value, quoted string
	}{
		{strings.Repeat("x", 64), `"` + strings.Repeat("x", 64) + `"`},
		{strings.Repeat("x", 65), `"` + strings.Repeat("x", 64) + `..."`},
	} {
		_, _, _, err := parseRefreshHeaders(http.Header{headerCritical: {tc.value}})
		if err == nil || !strings.Contains(err.Error(), tc.quoted) {
			t.Errorf("%d-byte value: error %v, want it to quote %s", len(tc.value), err, tc.quoted)
		}
	}
}
