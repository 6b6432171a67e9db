package discoverysvc

import (
	"fmt"
	"math"
	"testing"
)

// scanSeeds are bodies the scanner takes and bodies it must leave to
// encoding/json: escapes, miscased and repeated keys, nulls, wrong types,
// numbers out of range, trailing data.
var scanSeeds = []string{
	`{"region":"region-3","url":"http://10.0.0.3:8080","load":0.3412,"ttl":10}`,
	` {"id":"eu-1","region":"eu","url":"https://a/b","load":1,"draining":true,"ttl":30} `,
	"{\n\t\"region\" : \"eu\" ,\r\n\"url\":\"http://a\",\"load\":-0,\"draining\":false}",
	`{}`,
	`{"region":"eu","url":"http://a","load":1e400}`,
	`{"region":"eu","url":"http://a","load":0} {}`,
	`{"region":"e\u0075","url":"http:\/\/a","load":0}`,
	`{"REGION":"eu","url":"http://a","load":0}`,
	`{"region":"eu","region":"eu","url":"http://a","load":0}`,
	`{"region":null,"url":"http://a","load":0}`,
	`{"region":"eu","url":"http://a","load":"0.5"}`,
	`{"region":"eu","url":"http://a","load":01}`,
	`{"region":"eu","url":"http://a","load":1.}`,
	`{"region":"eu","url":"http://a","load":.5}`,
	`{"region":"eu","url":"http://a","load":1e}`,
	`{"region":"eu","url":"http://a","load":0,"draining":truex}`,
	`{"region":"eu","url":"http://a","load":0,}`,
	`{"region":"eu","url":"http://a","load":0,"nope":1}`,
	"{\"region\":\"\xff\",\"url\":\"http://a\",\"load\":0}",
	`null`,
	`{"region":"eu"`,
}

func FuzzScanHeartbeat(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := scanHeartbeat(body)
		if !ok {
			return
		}
		full, err := decodeHeartbeatJSON(body)
		if err != nil {
			t.Fatalf("scanned %q, which encoding/json refuses: %v", body, err)
		}
		if !sameString(fast.ID, full.ID) || !sameString(fast.Region, full.Region) || !sameString(fast.URL, full.URL) ||
			!sameFloat(fast.Load, full.Load) || !sameFloat(fast.TTL, full.TTL) || !sameBool(fast.Draining, full.Draining) {
			t.Fatalf("%q: scanned %s, encoding/json decodes %s", body, show(fast), show(full))
		}
	})
}

func TestScanHeartbeatTakesTheAgentsShape(t *testing.T) {
	for _, s := range scanSeeds[:4] {
		if _, ok := scanHeartbeat([]byte(s)); !ok {
			t.Errorf("%q left to encoding/json", s)
		}
	}
	for _, s := range scanSeeds[4:] {
		if _, ok := scanHeartbeat([]byte(s)); ok {
			t.Errorf("%q scanned, want it left to encoding/json", s)
		}
	}
}

func BenchmarkDecodeHeartbeat(b *testing.B) {
	body := []byte(`{"region":"region-3","url":"http://10.0.0.3:8080","load":0.3412,"ttl":10}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeHeartbeat("srv-00003", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHeartbeatJSON(b *testing.B) {
	body := []byte(`{"region":"region-3","url":"http://10.0.0.3:8080","load":0.3412,"ttl":10}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeHeartbeatJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}

func sameString(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
func sameBool(a, b *bool) bool     { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// sameFloat compares bits, so that -0 and 0 differ.
func sameFloat(a, b *float64) bool {
	return (a == nil) == (b == nil) && (a == nil || math.Float64bits(*a) == math.Float64bits(*b))
}

func show(r HeartbeatRequest) string {
	return fmt.Sprintf("{id:%v region:%v url:%v load:%v ttl:%v draining:%v}", deref(r.ID), deref(r.Region), deref(r.URL), deref(r.Load), deref(r.TTL), deref(r.Draining))
}

func deref[T any](p *T) any {
	if p == nil {
		return "<absent>"
	}
	return *p
}
