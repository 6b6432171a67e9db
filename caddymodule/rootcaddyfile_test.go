package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestRootCaddyfile: the shipped Caddyfile is formatted as `caddy fmt`
// writes it, refuses to adapt without SESSIONPIN_SECRET (naming it), and
// with its documented environment adapts to the edge it documents.
func TestRootCaddyfile(t *testing.T) {
	src, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if formatted := caddyfile.Format(src); !bytes.Equal(formatted, src) {
		t.Errorf("../Caddyfile is not formatted as caddy fmt writes it:\n%s", formatted)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")

	t.Setenv("SESSIONPIN_SECRET", "")
	os.Unsetenv("SESSIONPIN_SECRET")
	if _, _, err := adapter.Adapt(src, map[string]any{"filename": "Caddyfile"}); err == nil || !strings.Contains(err.Error(), "SESSIONPIN_SECRET") {
		t.Fatalf("without SESSIONPIN_SECRET: error %v, want one naming SESSIONPIN_SECRET", err)
	}
	t.Setenv("SESSIONPIN_SECRET", "short")
	if _, _, err := adapter.Adapt(src, nil); err == nil || !strings.Contains(err.Error(), "SESSIONPIN_SECRET") {
		t.Fatalf("with a short secret: error %v, want one naming SESSIONPIN_SECRET", err)
	}

	t.Setenv("SESSIONPIN_SECRET", strings.Repeat("s", 32))
	t.Setenv("SESSIONPIN_LISTEN", "127.0.0.1:18081")
	t.Setenv("SESSIONPIN_ADMIN", "localhost:12020")
	t.Setenv("SESSIONPIN_REGION", "us-east")
	t.Setenv("SESSIONPIN_ETCD", "10.1.2.3:2379")
	out, _, err := adapter.Adapt(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	js := string(out)
	for _, want := range []string{
		`"listen":"localhost:12020"`,
		`"listen":["127.0.0.1:18081"]`,
		`"session_pin":{"etcd":["10.1.2.3:2379"]}`,
		`"region":"us-east"`,
		`"dynamic_upstreams":{"source":"session_pin"}`,
		`"/demo/*"`,
		`"max_idle_conns_per_host":256`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("adapted config lacks %s:\n%s", want, js)
		}
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}

	for _, k := range []string{"SESSIONPIN_LISTEN", "SESSIONPIN_ADMIN", "SESSIONPIN_REGION", "SESSIONPIN_ETCD"} {
		os.Unsetenv(k)
	}
	out, _, err = adapter.Adapt(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"listen":"localhost:2019"`, `"listen":[":8080"]`, `"etcd":["127.0.0.1:2379"]`, `"region":"local"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("defaults: adapted config lacks %s", want)
		}
	}
}
