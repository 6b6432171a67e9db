package scenario

import (
	"math"
	"testing"
	"time"
)

// A value that grows for the first half of a soak and then stays flat has
// a slope over the whole run and none over the later half; one that keeps
// growing has the same slope over both.
func TestSoakResultLaterHalf(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	e := &Env{}
	for i := range 11 {
		at := start.Add(time.Duration(i) * 6 * time.Minute) // 0 to 60 min
		e.samples = append(e.samples, sample{at, map[string]float64{
			"levels":  min(float64(i), 5) * 10, // +100 an hour, then flat from 30 min
			"leaking": float64(i) * 10,         // +100 an hour throughout
		}})
	}
	r := e.SoakResult()
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-6 }
	if r.Samples != 11 || len(r.Series) != 11 || r.Series[10].Seconds != 3600 || r.Series[10].Values["leaking"] != 100 {
		t.Fatalf("samples %d, series %+v", r.Samples, r.Series)
	}
	if !near(r.LaterSlopes["levels"], 0) || r.Slopes["levels"] <= 0 {
		t.Errorf("levels: slope %v, later half %v; want > 0 and 0", r.Slopes["levels"], r.LaterSlopes["levels"])
	}
	if !near(r.Slopes["leaking"], 100) || !near(r.LaterSlopes["leaking"], 100) {
		t.Errorf("leaking: slope %v, later half %v; want 100 and 100", r.Slopes["leaking"], r.LaterSlopes["leaking"])
	}
	if (&Env{}).SoakResult() != nil {
		t.Error("a soak without samples has a result")
	}
}
