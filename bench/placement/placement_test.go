package main

import (
	"os"
	"slices"
	"testing"
)

// The short form of the simulation: one run of the burst, whose figure is
// the goal sessionpin's rule is held to. A deterministic model, so the
// figure does not depend on the machine.
func TestBurstGoal(t *testing.T) {
	sums := []summary{}
	for _, sc := range scenarios {
		if sc.name != "burst" {
			continue
		}
		for _, p := range policies {
			sums = append(sums, summary{scenario: sc, policy: p.name, runs: []result{run(sc, p, 1)}})
		}
	}
	if len(sums) != len(policies) {
		t.Fatalf("%d runs, want one per policy", len(sums))
	}
	for _, s := range sums {
		t.Logf("%s: largest server %.3f of its fair share", s.policy, s.worstPeak())
	}
	if !goalMet(sums) {
		t.Fatal("sessionpin's largest server is above 1.15 times its fair share, or not below every other policy")
	}
}

// The joining server takes no more than its slow-start share while it
// ramps: with a linear ramp from 10% over 15 s, its first 10 s average
// well under half its fair share.
func TestJoinRamps(t *testing.T) {
	i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == "join" })
	j := slices.IndexFunc(policies, func(p policy) bool { return p.name == "sessionpin" })
	r := run(scenarios[i], policies[j], 1)
	if r.joinShare <= 0 || r.joinShare > r.joinFair/2 {
		t.Fatalf("joining server took %.3f of new clients in its first %v; fair share %.3f, want above 0 and at most half of it", r.joinShare, joinWindow, r.joinFair)
	}
	if r.joinAfter > 4*r.joinFair {
		t.Fatalf("after slow start the joining server took %.3f of new clients, want at most four times its fair share %.3f", r.joinAfter, r.joinFair)
	}
}

func TestWriteSection(t *testing.T) {
	path := t.TempDir() + "/B.md"
	for _, step := range []struct{ before, body, want string }{
		{"# B\n\n## other\n", "one\n", "# B\n\n## other\n\n<!-- placement:begin -->\none\n<!-- placement:end -->\n"},
		{"", "two\n", "# B\n\n## other\n\n<!-- placement:begin -->\ntwo\n<!-- placement:end -->\n"},
	} {
		if step.before != "" {
			if err := writeFile(path, step.before); err != nil {
				t.Fatal(err)
			}
		}
		if err := writeSection(path, step.body); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, path); got != step.want {
			t.Fatalf("got %q, want %q", got, step.want)
		}
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
