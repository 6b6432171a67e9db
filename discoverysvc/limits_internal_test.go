package discoverysvc

import "testing"

func TestAdmitSubscriber(t *testing.T) {
	tests := []struct {
		name                              string
		total, fromClient, maxT, maxPerCl int
		want                              string
	}{
		{"room everywhere", 0, 0, 10, 2, ""},
		{"last place in total", 9, 0, 10, 2, ""},
		{"total full", 10, 0, 10, 2, refusedTotal},
		{"last place for the client", 5, 1, 10, 2, ""},
		{"client full", 5, 2, 10, 2, refusedPerClient},
		{"both full: total first", 10, 2, 10, 2, refusedTotal},
		{"no limits", 1 << 20, 1 << 20, 0, 0, ""},
		{"no per-client limit", 3, 3, 10, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := admitSubscriber(tt.total, tt.fromClient, tt.maxT, tt.maxPerCl); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSubscriberLimitReleases(t *testing.T) {
	l := newSubscriberLimit(2, 1)
	r1, why := l.acquire("a")
	if why != "" {
		t.Fatal(why)
	}
	if _, why := l.acquire("a"); why != refusedPerClient {
		t.Fatalf("second from a: %q", why)
	}
	r2, why := l.acquire("b")
	if why != "" {
		t.Fatal(why)
	}
	if _, why := l.acquire("c"); why != refusedTotal {
		t.Fatalf("third in all: %q", why)
	}
	r1()
	r1() // twice is once
	r2()
	if l.total != 0 || len(l.byClient) != 0 {
		t.Fatalf("after release: total %d, clients %v", l.total, l.byClient)
	}
}
