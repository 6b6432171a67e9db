package embedetcd

import "testing"

func TestShouldDefrag(t *testing.T) {
	const quota = 64 << 20 // the floor is 1 MiB
	tests := []struct {
		name        string
		size, inUse int64
		full        bool
		want        bool
	}{
		{"mostly free", 10 << 20, 2 << 20, false, true},
		{"exactly three quarters free", 8 << 20, 2 << 20, false, true},
		{"half free, as after a periodic compaction", 10 << 20, 5 << 20, false, false},
		{"mostly data", 10 << 20, 6 << 20, false, false},
		{"mostly free but below the floor", 1 << 20, 1 << 10, false, false},
		{"full: any free space above the floor", 64 << 20, 60 << 20, true, true},
		{"full: free space below the floor", 64 << 20, 64<<20 - 1<<10, true, false},
		{"nothing free", 10 << 20, 10 << 20, false, false},
		{"counters out of step", 10 << 20, 11 << 20, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shouldDefrag(tt.size, tt.inUse, quota, tt.full); got != tt.want {
				t.Fatalf("shouldDefrag(%d, %d, %d, %v) = %v, want %v", tt.size, tt.inUse, quota, tt.full, got, tt.want)
			}
		})
	}
}

func TestCanDisarm(t *testing.T) {
	const quota = 1000
	tests := []struct {
		size int64
		want bool
	}{
		{0, true},
		{750, true},  // a quarter of the quota free
		{751, false}, // the next writes would raise it again
		{1000, false},
	}
	for _, tt := range tests {
		if got := canDisarm(tt.size, quota); got != tt.want {
			t.Errorf("canDisarm(%d, %d) = %v, want %v", tt.size, quota, got, tt.want)
		}
	}
}
