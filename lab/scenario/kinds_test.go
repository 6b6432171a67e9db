package scenario

import (
	"slices"
	"testing"
)

func TestKinds(t *testing.T) {
	tests := []struct {
		n                         int
		careless, roam            float64
		wantCareless, wantRoaming []int
	}{
		{9, 0, 0, nil, nil},
		{9, 0.2, 0, []int{2, 7}, nil},
		{9, 0, 1, nil, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		// 0.3 of the 2 careless clients (2, 7) and of the 7 careful.
		{9, 0.2, 0.3, []int{2, 7}, []int{1, 5, 7}},
		// make lab-data-aware: 2 of the 4 careless clients roam.
		{18, 0.2, 0.5, []int{2, 7, 12, 17}, []int{0, 2, 3, 5, 8, 10, 12, 13, 15}},
	}
	for _, tt := range tests {
		var careless, roaming []int
		for i, k := range Kinds(tt.n, tt.careless, tt.roam) {
			if k.Careless {
				careless = append(careless, i)
			}
			if k.Roaming {
				roaming = append(roaming, i)
			}
		}
		if !slices.Equal(careless, tt.wantCareless) || !slices.Equal(roaming, tt.wantRoaming) {
			t.Errorf("%d clients, careless %v, roam %v: careless %v, roaming %v; want %v and %v",
				tt.n, tt.careless, tt.roam, careless, roaming, tt.wantCareless, tt.wantRoaming)
		}
	}
}
