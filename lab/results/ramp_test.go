package results

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestMergeRamps(t *testing.T) {
	if m := MergeRamps(nil); m.Server != "all" || len(m.Bins) != 0 {
		t.Errorf("no ramps: %+v", m)
	}
	a := Ramp{Server: "us-east-1", Bins: []RampBin{
		{FromS: 0, ToS: 5, Placements: 10, OnServer: 1, RampShare: 0.1, RuleShare: 0.2},
		{FromS: 5, ToS: 10, Placements: 0, RampShare: 0.3, RuleShare: 0.3},
	}}
	b := Ramp{Server: "eu-west-1", Bins: []RampBin{
		{FromS: 0, ToS: 5, Placements: 30, OnServer: 6, RampShare: 0.2, RuleShare: 0.2},
	}}
	m := MergeRamps([]Ramp{a, b})
	if len(m.Bins) != 2 {
		t.Fatalf("bins %+v", m.Bins)
	}
	b0, b1 := m.Bins[0], m.Bins[1]
	if b0.Placements != 40 || b0.OnServer != 7 || math.Abs(b0.Share-7.0/40) > 1e-9 || math.Abs(b0.RampShare-(10*0.1+30*0.2)/40) > 1e-9 || math.Abs(b0.RuleShare-0.2) > 1e-9 {
		t.Errorf("bin 0 %+v", b0)
	}
	// A bin without placements weighs as one, and has no share.
	if b1.Placements != 0 || b1.Share != 0 || math.Abs(b1.RampShare-0.3) > 1e-9 || b1.FromS != 5 {
		t.Errorf("bin 1 %+v", b1)
	}
}

func TestRampTable(t *testing.T) {
	var buf bytes.Buffer
	RampTable(&buf, Row{Scenario: "kill"})
	if buf.Len() != 0 {
		t.Errorf("a row without ramps printed %q", buf.String())
	}
	RampTable(&buf, Row{Scenario: "slow-start", Mode: "sessionpin", Ramps: []Ramp{{Server: "us-east-1", ReturnedAtS: 31.5,
		Bins: []RampBin{{FromS: 0, ToS: 5, Placements: 4, OnServer: 1, Share: 0.25, RampShare: 0.12, RuleShare: 0.3}}}}})
	out := buf.String()
	for _, want := range []string{"us-east-1", "31.5", "0–5", "0.25", "0.12", "0.30", "all"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestPeakText(t *testing.T) {
	if s := PeakText(nil); s != "-" {
		t.Errorf("%q", s)
	}
	if s := PeakText(&LoadPeak{Server: "a", Load: 0.99, Limit: 0.9, Ratio: 1.1, AtLimitShare: 0.125}); s != "1.10 (a, at limit 12% of the time)" && s != "1.10 (a, at limit 13% of the time)" {
		t.Errorf("%q", s)
	}
	if s := NewcomersText(&Newcomers{Placed: 10, PlacedElsewhere: 2, Refused: map[string]int{"503": 1, "timeout": 2}}); s != "10 (2 elsewhere), 3 refused" {
		t.Errorf("%q", s)
	}
}
