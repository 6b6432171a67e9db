package discoverysvc

import (
	"strconv"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

func TestParseEventID(t *testing.T) {
	for _, tc := range []struct {
		in     string
		rev    int64
		ok     bool
		refuse bool
	}{
		{in: "", ok: false},
		{in: "1", rev: 1, ok: true},
		{in: "42", rev: 42, ok: true},
		{in: "9223372036854775807", rev: 9223372036854775807, ok: true},
		{in: "9223372036854775808", refuse: true},
		{in: "0", refuse: true},
		{in: "007", refuse: true},
		{in: "-1", refuse: true},
		{in: "+1", refuse: true},
		{in: " 1", refuse: true},
		{in: "1 ", refuse: true},
		{in: "1e3", refuse: true},
		{in: "0x10", refuse: true},
		{in: "١", refuse: true},
		{in: strings.Repeat("9", 40), refuse: true},
	} {
		rev, ok, err := ParseEventID(tc.in)
		if tc.refuse {
			if err == nil || !strings.Contains(err.Error(), "Last-Event-ID") {
				t.Errorf("%q: (%d, %v, %v), want an error naming Last-Event-ID", tc.in, rev, ok, err)
			}
			continue
		}
		if err != nil || rev != tc.rev || ok != tc.ok {
			t.Errorf("%q: (%d, %v, %v), want (%d, %v, nil)", tc.in, rev, ok, err, tc.rev, tc.ok)
		}
	}
}

// FuzzParseEventID: whatever a client sends as Last-Event-ID, the parser
// accepts exactly the canonical decimal form of a positive revision.
func FuzzParseEventID(f *testing.F) {
	for _, s := range []string{"", "1", "123456", "9223372036854775807", "0", "-1", "01", "1a", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rev, ok, err := ParseEventID(s)
		switch {
		case err != nil:
			if ok || rev != 0 {
				t.Fatalf("%q: error %v with (%d, %v)", s, err, rev, ok)
			}
		case !ok:
			if s != "" || rev != 0 {
				t.Fatalf("%q: no id but rev %d", s, rev)
			}
		default:
			if rev <= 0 || strconv.FormatInt(rev, 10) != s {
				t.Fatalf("%q accepted as %d", s, rev)
			}
		}
	})
}

func TestEventEncoding(t *testing.T) {
	e := &watch.Entry{Server: schema.Server{ID: "eu-1", Region: "eu-west", URL: "http://h:1", Load: 0.5}}
	buf := appendServerChanges(nil, 7, []watch.ServerChange{
		{ID: "eu-1", New: e},
		{ID: "eu-2", Old: &watch.Entry{Server: schema.Server{ID: "eu-2", Region: "eu-west"}}},
	})
	got := string(appendID(buf, 7))
	want := "event: server_added\ndata: {\"revision\":7,\"id\":\"eu-1\",\"region\":\"eu-west\",\"url\":\"http://h:1\",\"load\":0.5,\"draining\":false}\n\n" +
		"event: server_removed\ndata: {\"revision\":7,\"id\":\"eu-2\",\"region\":\"eu-west\"}\nid: 7\n\n"
	if got != want {
		t.Fatalf("encoded\n%s\nwant\n%s", got, want)
	}
}
