package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// fleet10k is a 10,000-server registry over 20 regions, a tenth draining.
func fleet10k(b *testing.B) *watch.Snapshot {
	b.Helper()
	return watch.BuildSnapshot(1, fleet10kServers(), nil)
}

// fleet10kServers are fleet10k's servers.
func fleet10kServers() []schema.Server {
	r := rand.New(rand.NewPCG(1, 2))
	servers := make([]schema.Server, 10000)
	for i := range servers {
		servers[i] = schema.Server{
			ID:       fmt.Sprintf("srv-%05d", i),
			Region:   fmt.Sprintf("region-%02d", i%20),
			URL:      fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250),
			Load:     r.Float64(),
			Draining: i%10 == 0,
		}
	}
	return servers
}

func BenchmarkPlace10k(b *testing.B) { benchPlace(b, "region-07") }

// BenchmarkPlaceAnywhere10k is the fallback: the edge's region is empty, so
// the choice is made over the whole fleet.
func BenchmarkPlaceAnywhere10k(b *testing.B) { benchPlace(b, "elsewhere") }

// benchPlace places clients of an edge in region over a 10,000-server fleet.
func benchPlace(b *testing.B, region string) {
	snap := fleet10k(b)
	e := &Edge{Region: region, Hysteresis: 0.1}
	b.ReportAllocs()
	var rnd uint64
	for b.Loop() {
		rnd += 0x9e3779b97f4a7c15
		if e.Place(snap, rnd) == nil {
			b.Fatal("no server")
		}
	}
}

// placedServer is what an edge keeps of one server for placement: its
// placements and its last load report.
type placedServer struct {
	placements Placements
	report     Report
}

// BenchmarkPlaceCapacity10k places over a region of 500 servers that
// declare capacities and limits, each with recent placements and a report
// that learnt of other edges' placements: the path that reads every
// server's tally.
func BenchmarkPlaceCapacity10k(b *testing.B) {
	now := 100 * time.Second
	servers := fleet10kServers()
	for i := range servers {
		s := &servers[i]
		s.Load, s.Draining, s.Capacity, s.Limit = 0.5*s.Load, false, 1000, 0.9
	}
	snap := watch.BuildSnapshot(1, servers, func(s schema.Server) any {
		p := new(placedServer)
		p.placements.Received(s.Load-0.01, s.Capacity, now-3*time.Second)
		for k := range 3 {
			p.placements.Add(now - time.Duration(k)*700*time.Millisecond)
		}
		p.report = p.placements.Received(s.Load, s.Capacity, now-time.Second)
		return p
	})
	at := time.Unix(0, 0).Add(now)
	e := &Edge{Region: "region-07", Hysteresis: 0.1, LimitEdges: 3,
		Now: func() time.Time { return at },
		Placed: func(s *watch.Entry, t time.Time) Recent {
			p := s.Attachment.(*placedServer)
			return p.placements.Since(p.report, t.Sub(time.Unix(0, 0)))
		}}
	b.ReportAllocs()
	var rnd uint64
	for b.Loop() {
		rnd += 0x9e3779b97f4a7c15
		if e.Place(snap, rnd) == nil {
			b.Fatal("no server")
		}
	}
}

func BenchmarkRebalance10k(b *testing.B) {
	snap := fleet10k(b)
	reqs := []RefreshRequest{
		{Current: "srv-00017", Closest: "srv-00042"},                 // other region
		{Current: "srv-00017", Closest: "srv-00037"},                 // same region
		{Current: "srv-00017", Closest: "srv-00042", Critical: true}, // keep
		{Current: "gone", Closest: "srv-00020"},                      // failover, draining C
		{Current: "srv-00010"},                                       // draining current
		{},                                                           // placement
	}
	e := &Edge{Region: "region-07", Hysteresis: 0.1}
	b.ReportAllocs()
	var rnd uint64
	i := 0
	for b.Loop() {
		rnd += 0x9e3779b97f4a7c15
		e.Rebalance(snap, reqs[i], rnd)
		i++
		if i == len(reqs) {
			i = 0
		}
	}
}
