package main

import (
	"context"
	"strings"
	"testing"
)

func TestAgentProgressFlagErrorsNameTheFlag(t *testing.T) {
	agent := []string{"agent", "--id", "a", "--region", "r", "--url", "http://a", "--health-url", "http://a/healthz", "--discovery", "http://d"}
	with := func(extra ...string) []string { return append(append([]string{}, agent...), extra...) }
	for _, tt := range []struct {
		args []string
		want string
	}{
		{with("--origin", "eu west"), "--origin"},
		{with("--origin", ".."), "--origin"},
		{with("--progress-postgres", "postgres://h/db"), "--progress-postgres: must be ORIGIN=CONNSTRING"},
		{with("--progress-postgres", "eu="), "--progress-postgres: must be ORIGIN=CONNSTRING"},
		{with("--progress-postgres", "eu west=postgres://h/db"), "--progress-postgres"},
		{with("--progress-postgres", "eu=postgres://u:hunter2@h:notaport/db"), "not a valid PostgreSQL connection string"},
		{with("--progress-postgres", "eu=postgres://h/db", "--progress-postgres", "eu=postgres://g/db"), `origin "eu" given more than once`},
		{with("--progress-url", "ftp://h/progress"), "--progress-url"},
		{with("--progress-url", ""), "--progress-url"},
		{with("--progress-url", "/progress"), "--progress-url"},
		{with("--progress-command", ""), "--progress-command"},
		{with("--progress-command", "  "), "--progress-command"},
		{with("--progress-command", "/nonexistent/progress --json"), "--progress-command"},
	} {
		var stderr syncBuffer
		code := run(context.Background(), tt.args, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, want 2; stderr does not contain %q:\n%s", tt.args[len(agent):], code, tt.want, stderr.String())
		}
		if strings.Contains(stderr.String(), "hunter2") {
			t.Errorf("%q: the error shows the connection string's password:\n%s", tt.args[len(agent):], stderr.String())
		}
	}
}
