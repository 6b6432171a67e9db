package schema

import (
	"strings"
	"testing"
	"time"
)

func TestDecodeActivity(t *testing.T) {
	const ep = "/sessionpin/edges/"
	cases := []struct {
		name, key, value string
		wantErr          string
	}{
		{"valid", ep + "edge-a", `{"edge":"edge-a","region":"eu","at":"2026-11-29T05:00:00.000Z","servers":{"eu-1":{"pinned":3,"minute":9,"last":"2026-11-29T05:00:00.000Z"}}}`, ""},
		{"no servers", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{}}`, ""},
		{"not an edge key", "/sessionpin/servers/edge-a", `{}`, "not an edge key"},
		{"edge mismatch", ep + "edge-a", `{"edge":"edge-b","at":"2026-11-29T05:00:00Z"}`, `names edge "edge-b"`},
		{"no at", ep + "edge-a", `{"edge":"edge-a","servers":{}}`, "invalid at"},
		{"bad region", ep + "edge-a", `{"edge":"edge-a","region":"e u","at":"2026-11-29T05:00:00Z"}`, "invalid region"},
		{"negative count", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":-1,"last":"2026-11-29T05:00:00Z"}}}`, "decode value"},
		{"fractional count", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":1.5,"last":"2026-11-29T05:00:00Z"}}}`, "decode value"},
		{"bad server id", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"a/b":{"pinned":1,"last":"2026-11-29T05:00:00Z"}}}`, "invalid servers"},
		{"no last", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":1}}}`, "last is required"},
		{"servers not an object", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":[1]}`, "decode value"},
		{"truncated", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":1,`, "decode value"},
		{"with its interval", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","interval_ms":5000,"servers":{}}`, ""},
		{"negative interval", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","interval_ms":-1,"servers":{}}`, "invalid interval_ms"},
		{"absurd interval", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","interval_ms":3600001,"servers":{}}`, "invalid interval_ms"},
		{"interval that wraps to negative in nanoseconds", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","interval_ms":9223372036855,"servers":{}}`, "invalid interval_ms"},
		{"interval that wraps to small in nanoseconds", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","interval_ms":18446744073710,"servers":{}}`, "invalid interval_ms"},
		{"fractional interval", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","interval_ms":1.5,"servers":{}}`, "decode value"},
		{"huge value", ep + "edge-a", `{"pad":"` + strings.Repeat("x", MaxActivityLen) + `"}`, "over"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := DecodeActivity(ep, []byte(tc.key), []byte(tc.value))
			if tc.wantErr == "" {
				if err != nil || a.Edge != "edge-a" {
					t.Fatalf("got %+v, %v", a, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestActivityEncodingRoundTrips(t *testing.T) {
	at := time.Date(2026, 11, 29, 5, 0, 0, 123_000_000, time.UTC)
	servers := map[string]ServerActivity{
		"eu-2": {Pinned: 0, Last: at.Add(-time.Minute)},
		"eu-1": {Pinned: 7, Minute: 40, Last: at},
	}
	value := AppendActivity(nil, "edge-a", "eu", 5*time.Second, at, AppendServers(nil, servers))
	want := `{"edge":"edge-a","region":"eu","at":"2026-11-29T05:00:00.123Z","interval_ms":5000,"servers":{` +
		`"eu-1":{"pinned":7,"minute":40,"last":"2026-11-29T05:00:00.123Z"},` +
		`"eu-2":{"pinned":0,"last":"2026-11-29T04:59:00.123Z"}}}`
	if string(value) != want {
		t.Fatalf("encoded\n %s\nwant\n %s", value, want)
	}
	a, err := DecodeActivity("/p/edges/", []byte("/p/edges/edge-a"), value)
	if err != nil {
		t.Fatal(err)
	}
	if !a.At.Equal(at) || a.Region != "eu" || a.Interval() != 5*time.Second || len(a.Servers) != 2 || a.Servers["eu-1"].Minute != 40 || !a.Servers["eu-2"].Last.Equal(at.Add(-time.Minute)) {
		t.Fatalf("decoded %+v", a)
	}
}

func FuzzDecodeActivity(f *testing.F) {
	const ep = "/sessionpin/edges/"
	f.Add([]byte(ep+"edge-a"), []byte(`{"edge":"edge-a","region":"eu","at":"2026-11-29T05:00:00.000Z","servers":{"eu-1":{"pinned":3,"minute":9,"last":"2026-11-29T05:00:00.000Z"}}}`))
	f.Add([]byte(ep+"edge-a"), []byte(`{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":18446744073709551615,"last":"2026-11-29T05:00:00Z"}}}`))
	f.Add([]byte(ep+"edge-a"), []byte(`{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":null}`))
	f.Add([]byte(ep+"x/y"), []byte(`{}`))
	f.Add([]byte(ep+"edge-a"), []byte(`{"edge":"edge-a","at":"2026-11-29T05:00:00Z","interval_ms":5000,"servers":{}}`))
	f.Add([]byte(ep+"edge-a"), []byte(`{"edge":"edge-a","at":"2026-11-29T05:00:00Z","interval_ms":9223372036855,"servers":{}}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		a, err := DecodeActivity(ep, key, value)
		if err != nil {
			if _, err2 := ActivityOf(ep, key, value, "eu-1"); err2 == nil {
				t.Fatalf("ActivityOf accepted what DecodeActivity refused: %v", err)
			}
			return
		}
		if a.Validate() != nil || ep+a.Edge != string(key) {
			t.Fatalf("accepted %+v for key %q", a, key)
		}
		// The edge's own encoding of an accepted value decodes to the same.
		again, err := DecodeActivity(ep, key, AppendActivity(nil, a.Edge, a.Region, a.Interval(), a.At, AppendServers(nil, a.Servers)))
		if err != nil || len(again.Servers) != len(a.Servers) || again.IntervalMS != a.IntervalMS {
			t.Fatalf("re-encoding %+v: %+v, %v", a, again, err)
		}
	})
}
