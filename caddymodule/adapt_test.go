package caddymodule_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestCaddyfileAdapt runs the fixtures in testdata/caddyfile_adapt: a
// Caddyfile, a "----------" line, then either the JSON it must adapt to or
// "ERROR: <text the error must contain>".
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, expected, ok := strings.Cut(string(data), "\n----------\n")
			if !ok {
				t.Fatal("fixture lacks the ---------- separator")
			}
			got, _, err := adapter.Adapt([]byte(caddyfile+"\n"), map[string]any{"filename": file})
			if want, isErr := strings.CutPrefix(strings.TrimSpace(expected), "ERROR: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want it to contain %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			var gotV, wantV any
			if err := json.Unmarshal(got, &gotV); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(expected), &wantV); err != nil {
				t.Fatalf("fixture JSON: %v", err)
			}
			if !reflect.DeepEqual(gotV, wantV) {
				pretty, _ := json.MarshalIndent(gotV, "", "\t")
				t.Fatalf("adapted to:\n%s", pretty)
			}
		})
	}
}
