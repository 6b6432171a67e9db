package scenario

import (
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/lab/client"
)

func TestRecovery(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ev := func(c int, s float64, ok bool) client.Event { return client.Event{At: at(s), Client: c, OK: ok} }
	tests := []struct {
		name   string
		events []client.Event
		ref    time.Time
		want   float64
	}{
		{"no reference", []client.Event{ev(0, 1, false)}, time.Time{}, 0},
		{"no failure after the reference", []client.Event{ev(0, 1, false), ev(0, 2, true), ev(0, 6, true)}, at(5), 0},
		{"slowest client counts", []client.Event{ev(0, 6, false), ev(0, 7, true), ev(1, 6, false), ev(1, 8, false), ev(1, 9.5, true)}, at(5), 4.5},
		{"a client never back", []client.Event{ev(0, 6, false), ev(1, 6, false), ev(1, 7, true)}, at(5), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Recovery(tt.events, tt.ref, at(100)); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
