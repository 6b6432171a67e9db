package main

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 123456, 1 << 40} {
		i := bucketOf(v)
		if up := bucketValue(i); up < v || float64(up-v) > 0.016*float64(v)+1 {
			t.Errorf("value %d: bucket %d upper %d", v, i, up)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < 0 || d > 0.02 {
			t.Errorf("q%.2f = %v, want about %v", c.q, got, c.want)
		}
	}
}
