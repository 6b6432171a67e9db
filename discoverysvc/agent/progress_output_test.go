package agent_test

import (
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

func TestParseProgressOutput(t *testing.T) {
	many := make([]string, schema.MaxOrigins+1)
	for i := range many {
		many[i] = `"o` + strings.Repeat("x", i+1) + `":0`
	}
	for _, tc := range []struct {
		name    string
		out     string
		want    map[string]schema.Progress
		wantErr string
	}{
		{"lags and unknown", `{"eu-db": 0, "us-db": 1.5, "ap-db": null}`,
			map[string]schema.Progress{"eu-db": {}, "us-db": {LagMS: 1500}, "ap-db": {Unknown: true}}, ""},
		{"no origins", `{}`, map[string]schema.Progress{}, ""},
		{"surrounding whitespace", " \n{\"eu\":2}\n", map[string]schema.Progress{"eu": {LagMS: 2000}}, ""},
		{"rounded up to a millisecond", `{"eu":0.0001}`, map[string]schema.Progress{"eu": {LagMS: 1}}, ""},
		{"exponent", `{"eu":1e-3}`, map[string]schema.Progress{"eu": {LagMS: 1}}, ""},
		{"negative zero", `{"eu":-0}`, map[string]schema.Progress{"eu": {}}, ""},
		{"a day is known", `{"eu":86400}`, map[string]schema.Progress{"eu": {LagMS: 86400000}}, ""},
		{"over a day is unknown", `{"eu":86400.5}`, map[string]schema.Progress{"eu": {Unknown: true}}, ""},
		{"huge is unknown", `{"eu":1e300}`, map[string]schema.Progress{"eu": {Unknown: true}}, ""},
		{"as many origins as a record holds", `{` + strings.Join(many[:schema.MaxOrigins], ",") + `}`, nil, ""},
		{"empty", ``, nil, "one JSON object"},
		{"null", `null`, nil, "one JSON object"},
		{"a list", `[{"eu":0}]`, nil, "one JSON object"},
		{"a number", `0.5`, nil, "one JSON object"},
		{"truncated", `{"eu":0`, nil, "malformed"},
		{"two objects", `{"eu":0}{}`, nil, "after the JSON object"},
		{"trailing garbage", `{"eu":0} x`, nil, "after the JSON object"},
		{"negative", `{"eu":-1}`, nil, `"eu"`},
		{"overflowing", `{"eu":1e400}`, nil, `"eu"`},
		{"a string", `{"eu":"1.5"}`, nil, `"eu"`},
		{"NaN", `{"eu":NaN}`, nil, "malformed"},
		{"a boolean", `{"eu":true}`, nil, `"eu"`},
		{"an object", `{"eu":{"lag":1}}`, nil, `"eu"`},
		{"a list value", `{"eu":[1]}`, nil, `"eu"`},
		{"duplicate origin", `{"eu":0,"eu":null}`, nil, "more than once"},
		{"invalid origin", `{"eu west":0}`, nil, "eu west"},
		{"origin of dots", `{"..":0}`, nil, `".."`},
		{"empty origin", `{"":0}`, nil, `""`},
		{"too many origins", `{` + strings.Join(many, ",") + `}`, nil, "more than 16"},
		{"over 64 KiB", `{"eu":0` + strings.Repeat(" ", agent.MaxProgressOutput) + `}`, nil, "over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := agent.ParseProgressOutput([]byte(tc.out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseProgressOutput = %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !schema.SameProgress(got, tc.want) {
				t.Fatalf("ParseProgressOutput = %v, want %v", got, tc.want)
			}
			if got == nil {
				t.Fatal("nil progress for a good answer")
			}
		})
	}
}

// FuzzParseProgressOutput: whatever a progress URL or command answers, the
// agent either refuses it whole or reports progress that a record may
// carry, the same at every parse.
func FuzzParseProgressOutput(f *testing.F) {
	f.Add([]byte(`{"eu-db": 0, "us-db": 1.5, "ap-db": null}`))
	f.Add([]byte(`{"eu":0,"eu":null}`))
	f.Add([]byte(`{"eu":-1e-400}`))
	f.Fuzz(func(t *testing.T, out []byte) {
		got, err := agent.ParseProgressOutput(out)
		if err != nil {
			if got != nil {
				t.Fatalf("refused with progress %v", got)
			}
			return
		}
		if err := schema.ValidateProgress(schema.Server{Progress: got}); err != nil {
			t.Fatalf("accepted %q as %v, which a record may not carry: %v", out, got, err)
		}
		if len(out) > agent.MaxProgressOutput {
			t.Fatalf("accepted %d bytes", len(out))
		}
		again, err := agent.ParseProgressOutput(out)
		if err != nil || !schema.SameProgress(again, got) {
			t.Fatalf("a second parse of %q gave %v, %v", out, again, err)
		}
	})
}
