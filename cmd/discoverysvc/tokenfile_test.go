package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc"
)

// A token comes from --token-file (trimmed) or the environment without a
// word; from --token, which the process list shows, with a warning; a
// missing or empty file, or both flags, is a usage error naming the flag.
func TestTokenFile(t *testing.T) {
	t.Setenv(envToken, "")
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := discoverysvc.AgentToken("admin-token", "eu-1") + "\n"
	for _, tc := range []struct {
		args     []string
		code     int
		warns    bool
		errorHas string
	}{
		{[]string{"token", "--token-file", file, "eu-1"}, 0, false, ""},
		{[]string{"token", "--token", "admin-token", "eu-1"}, 0, true, ""},
		{[]string{"token", "--token-file", filepath.Join(dir, "missing"), "eu-1"}, 2, false, "--token-file"},
		{[]string{"token", "--token-file", empty, "eu-1"}, 2, false, "empty"},
		{[]string{"token", "--token", "x", "--token-file", file, "eu-1"}, 2, false, "not both"},
	} {
		var stdout, stderr syncBuffer
		code := runWith(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Fatalf("%q: exit %d, want %d: %s", tc.args, code, tc.code, stderr.String())
		}
		if code == 0 && stdout.String() != want {
			t.Fatalf("%q printed %q", tc.args, stdout.String())
		}
		if got := strings.Contains(stderr.String(), "process list"); got != tc.warns {
			t.Errorf("%q: warned %v, want %v: %s", tc.args, got, tc.warns, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.errorHas) {
			t.Errorf("%q: %s, want it to name %q", tc.args, stderr.String(), tc.errorHas)
		}
		if strings.Contains(stderr.String(), "admin-token") {
			t.Errorf("%q: the token was printed", tc.args)
		}
	}
}
