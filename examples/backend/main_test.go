package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunRejectsBadFlags(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DEMO_BACKEND_TOKEN_KEY", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--id", "eu-1", "--region", "eu-west"}, "missing token key"},
		{[]string{"--id", "eu-1", "--region", "eu-west", "--token-key-file", key + ".nope"}, "read token key"},
		{[]string{"--id", "", "--region", "eu-west", "--token-key-file", key}, "invalid server id"},
		{[]string{"--id", "eu-1", "--region", "eu-west", "--token-key-file", key, "--admin-listen", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"--id", "eu-1", "--region", "eu-west", "--token-key-file", key, "--peers", "eu-2:9002"}, "invalid peer URL"},
		{[]string{"--id", "eu-1", "--region", "eu-west", "--token-key-file", key, "extra"}, "unexpected arguments"},
	} {
		err := run(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
