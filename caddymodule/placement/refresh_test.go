package placement

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc"
)

func TestParseRefreshBody(t *testing.T) {
	tests := []struct {
		name                        string
		body                        string
		want                        RefreshInput
		foundClosest, foundCritical bool
		err                         string // substring; "" means no error
	}{
		{"both fields", `{"closestServerId":"eu-2","criticalTaskInProgress":true}`, RefreshInput{"eu-2", true}, true, true, ""},
		{"whitespace and other fields", " \n{\"user\":{\"closestServerId\":7},\"closestServerId\" : \"a.b_c-1\", \"x\":[1,2]}\n", RefreshInput{Closest: "a.b_c-1"}, true, false, ""},
		{"only critical false", `{"criticalTaskInProgress":false}`, RefreshInput{}, false, true, ""},
		{"empty closest means unknown", `{"closestServerId":""}`, RefreshInput{}, true, false, ""},
		{"null counts as absent", `{"closestServerId":null,"criticalTaskInProgress":null}`, RefreshInput{}, false, false, ""},
		{"escaped names and values", `{"closest\u0053erverId":"eu\u002d2"}`, RefreshInput{Closest: "eu-2"}, true, false, ""},
		{"last duplicate wins", `{"closestServerId":"a","closestServerId":"b"}`, RefreshInput{Closest: "b"}, true, false, ""},
		{"names match exactly", `{"ClosestServerId":"a","criticaltaskinprogress":true}`, RefreshInput{}, false, false, ""},
		{"nested fields are not top level", `{"data":{"criticalTaskInProgress":true}}`, RefreshInput{}, false, false, ""},
		{"empty object", `{}`, RefreshInput{}, false, false, ""},

		{"empty body", ``, RefreshInput{}, false, false, ""},
		{"form body", `closestServerId=eu-2&criticalTaskInProgress=true`, RefreshInput{}, false, false, ""},
		{"json array", `[{"closestServerId":"eu-2"}]`, RefreshInput{}, false, false, ""},
		{"json string", `"closestServerId"`, RefreshInput{}, false, false, ""},
		{"truncated json", `{"closestServerId":"eu-2"`, RefreshInput{}, false, false, ""},
		{"trailing garbage", `{"closestServerId":"eu-2"} x`, RefreshInput{}, false, false, ""},

		{"closest not a string", `{"closestServerId":12}`, RefreshInput{}, false, false, "closestServerId must be a string"},
		{"closest an address", `{"closestServerId":"127.0.0.1:9000"}`, RefreshInput{}, false, false, "closestServerId"},
		{"closest too long", `{"closestServerId":"` + strings.Repeat("a", 65) + `"}`, RefreshInput{}, false, false, "not a valid server id"},
		{"critical a string", `{"criticalTaskInProgress":"true"}`, RefreshInput{}, false, false, "criticalTaskInProgress must be a boolean"},
		{"critical a number", `{"closestServerId":"eu-1","criticalTaskInProgress":1}`, RefreshInput{}, false, false, "criticalTaskInProgress must be a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, fc, fk, err := ParseRefreshBody([]byte(tt.body))
			if checkParsed(t, in, fc, fk, err, tt.want, tt.foundClosest, tt.foundCritical, tt.err) &&
				(in != (RefreshInput{}) || fc || fk) {
				t.Fatalf("on error got %+v %v %v, want nothing", in, fc, fk)
			}
		})
	}
}

func TestParseRefreshHeaders(t *testing.T) {
	tests := []struct {
		name                        string
		headers                     map[string][]string
		want                        RefreshInput
		foundClosest, foundCritical bool
		err                         string
	}{
		{"none", nil, RefreshInput{}, false, false, ""},
		{"both", map[string][]string{"X-Closest-Server": {"eu-2"}, "X-Critical-Task": {"true"}}, RefreshInput{"eu-2", true}, true, true, ""},
		{"critical 1", map[string][]string{"X-Critical-Task": {"1"}}, RefreshInput{Critical: true}, false, true, ""},
		{"critical TRUE", map[string][]string{"X-Critical-Task": {" TRUE "}}, RefreshInput{Critical: true}, false, true, ""},
		{"critical False", map[string][]string{"X-Critical-Task": {"False"}}, RefreshInput{}, false, true, ""},
		{"critical 0", map[string][]string{"X-Critical-Task": {"0"}}, RefreshInput{}, false, true, ""},
		{"empty closest means unknown", map[string][]string{"X-Closest-Server": {""}}, RefreshInput{}, true, false, ""},
		{"critical yes", map[string][]string{"X-Critical-Task": {"yes"}}, RefreshInput{}, false, false, "header X-Critical-Task"},
		{"critical empty", map[string][]string{"X-Critical-Task": {""}}, RefreshInput{}, false, false, "header X-Critical-Task"},
		{"closest an address", map[string][]string{"X-Closest-Server": {"10.0.0.1:80"}}, RefreshInput{}, false, false, "header X-Closest-Server"},
		{"closest twice", map[string][]string{"X-Closest-Server": {"a", "b"}}, RefreshInput{}, false, false, "given 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, fc, fk, err := ParseRefreshHeaders(http.Header(tt.headers))
			checkParsed(t, in, fc, fk, err, tt.want, tt.foundClosest, tt.foundCritical, tt.err)
		})
	}
}

func TestParseRefresh(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderClosest, "us-1")
	h.Set(HeaderCritical, "true")
	in, err := ParseRefresh([]byte(`{"closestServerId":"eu-1"}`), h)
	if err != nil || in != (RefreshInput{Closest: "eu-1", Critical: true}) {
		t.Fatalf("body closest + header critical: got %+v, %v", in, err)
	}
	in, err = ParseRefresh([]byte(`a=b`), h)
	if err != nil || in != (RefreshInput{Closest: "us-1", Critical: true}) {
		t.Fatalf("form body + headers: got %+v, %v", in, err)
	}
	in, err = ParseRefresh([]byte(`{"criticalTaskInProgress":false}`), h)
	if err != nil || in != (RefreshInput{Closest: "us-1", Critical: false}) {
		t.Fatalf("body critical wins: got %+v, %v", in, err)
	}
	if _, err := ParseRefresh([]byte(`{"closestServerId":1}`), h); err == nil {
		t.Fatal("bad body field: no error")
	}
	h.Set(HeaderCritical, "maybe")
	if _, err := ParseRefresh([]byte(`{}`), h); err == nil {
		t.Fatal("bad header: no error")
	}
}

// FuzzParseRefreshBody checks the parser against encoding/json's own reading
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
		in, fc, fk, err := ParseRefreshBody(body)
		if err != nil {
			if in != (RefreshInput{}) || fc || fk {
				t.Fatalf("error %v with fields %+v %v %v", err, in, fc, fk)
			}
		}
		if fc && in.Closest != "" && !discoverysvc.ValidName(in.Closest) {
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
		if v, ok := ref[FieldClosest]; ok && v != nil {
			if s, _ := v.(string); !fc || s != in.Closest {
				t.Fatalf("closest: reference %v, got %q found=%v", v, in.Closest, fc)
			}
		}
		if v, ok := ref[FieldCritical]; ok && v != nil {
			if b, _ := v.(bool); !fk || b != in.Critical {
				t.Fatalf("critical: reference %v, got %v found=%v", v, in.Critical, fk)
			}
		}
	})
}

// checkParsed checks one result of a refresh parser against the expected
// input and found flags, or that its error contains wantErr; it reports
// whether an error was expected (and found).
func checkParsed(t *testing.T, in RefreshInput, fc, fk bool, err error, want RefreshInput, wantClosest, wantCritical bool, wantErr string) bool {
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
		_, _, _, err := ParseRefreshHeaders(http.Header{HeaderCritical: {tc.value}})
		if err == nil || !strings.Contains(err.Error(), tc.quoted) {
			t.Errorf("%d-byte value: error %v, want it to quote %s", len(tc.value), err, tc.quoted)
		}
	}
}
