package app

import (
	"strings"
	"testing"
	"time"
)

func TestRecentCount(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type visit struct {
		id string
		at time.Duration
	}
	tests := []struct {
		name   string
		visits []visit
		at     time.Duration
		want   int
	}{
		{"none", nil, 0, 0},
		{"one client, many requests", []visit{{"a", 0}, {"a", time.Second}, {"a", 2 * time.Second}}, 2 * time.Second, 1},
		{"two clients", []visit{{"a", 0}, {"b", 0}}, time.Second, 2},
		{"gone after the window", []visit{{"a", 0}, {"b", 2 * time.Second}}, 3 * time.Second, 1},
		{"at the window's edge it is gone", []visit{{"a", 0}}, 3 * time.Second, 0},
		{"a later request keeps it", []visit{{"a", 0}, {"a", 2900 * time.Millisecond}}, 5 * time.Second, 1},
		{"an earlier request after a later one does not shorten it", []visit{{"a", 2 * time.Second}, {"a", 0}}, 4 * time.Second, 1},
		{"no id is not counted", []visit{{"", 0}}, 0, 0},
		{"an overlong id is not counted", []visit{{strings.Repeat("x", maxClientID+1), 0}, {strings.Repeat("x", maxClientID), 0}}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRecent(3 * time.Second)
			for _, v := range tt.visits {
				r.seen(v.id, t0.Add(v.at))
			}
			if got := r.count(t0.Add(tt.at)); got != tt.want {
				t.Errorf("count = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRecentForgets(t *testing.T) {
	r := newRecent(time.Second)
	t0 := time.Unix(1000, 0)
	for i := range 100 {
		r.seen(string(rune('a'+i%26))+strings.Repeat("y", i), t0)
	}
	if n := r.count(t0.Add(2 * time.Second)); n != 0 || len(r.last) != 0 {
		t.Fatalf("count %d, %d kept; want every client forgotten", n, len(r.last))
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		clients  int
		capacity float64
		want     float64
	}{
		{0, 30, 0},
		{15, 30, 0.5},
		{33, 30, 1.1},
		{5, 0, 0},
		{5, -1, 0},
	}
	for _, tt := range tests {
		if got := Load(tt.clients, tt.capacity); got != tt.want {
			t.Errorf("Load(%d, %v) = %v, want %v", tt.clients, tt.capacity, got, tt.want)
		}
	}
}
