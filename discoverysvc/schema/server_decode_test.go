package schema

import (
	"strings"
	"testing"
)

func TestDecodeServer(t *testing.T) {
	const sp = "/sessionpin/servers/"
	cases := []struct {
		name    string
		key     string
		value   string
		wantErr string // substring; "" means valid
	}{
		{"valid", sp + "eu-1", `{"id":"eu-1","region":"eu-west","url":"http://127.0.0.1:9001","load":0.25,"draining":false}`, ""},
		{"extra fields allowed", sp + "eu-1", `{"id":"eu-1","region":"eu","url":"https://h","load":0,"zone":"a","tags":[1]}`, ""},
		{"draining omitted", sp + "eu-1", `{"id":"eu-1","region":"eu","url":"https://h","load":1.5}`, ""},
		{"not a server key", "/sessionpin/other/eu-1", `{}`, "not a server key"},
		{"nested key", sp + "eu-1/x", `{}`, "not a server key"},
		{"empty id in key", sp, `{}`, "not a server key"},
		{"bad json", sp + "eu-1", `{"id":`, "decode value"},
		{"not an object", sp + "eu-1", `[1,2]`, "decode value"},
		{"wrong type", sp + "eu-1", `{"id":"eu-1","region":"eu","url":"http://h","load":"high"}`, "decode value"},
		{"null", sp + "eu-1", `null`, "invalid id"},
		{"id mismatch", sp + "eu-1", `{"id":"eu-2","region":"eu","url":"http://h","load":0}`, `names id "eu-2"`},
		{"id missing", sp + "eu-1", `{"region":"eu","url":"http://h","load":0}`, "invalid id"},
		{"bad region", sp + "eu-1", `{"id":"eu-1","region":"eu/west","url":"http://h","load":0}`, "invalid region"},
		{"bad url", sp + "eu-1", `{"id":"eu-1","region":"eu","url":"http://user:pw@h","load":0}`, "invalid url"},
		{"negative load", sp + "eu-1", `{"id":"eu-1","region":"eu","url":"http://h","load":-0.1}`, "invalid load"},
		{"huge value", sp + "eu-1", `{"id":"eu-1","pad":"` + strings.Repeat("x", maxValueLen) + `"}`, "over"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := DecodeServer(sp, []byte(tc.key), []byte(tc.value))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if srv.ID != "eu-1" {
					t.Fatalf("decoded %+v", srv)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzDecodeServer(f *testing.F) {
	const sp = "/sessionpin/servers/"
	f.Add([]byte(sp+"eu-1"), []byte(`{"id":"eu-1","region":"eu-west","url":"http://127.0.0.1:9001","load":0.25,"draining":false}`))
	f.Add([]byte(sp+"eu-1"), []byte(`{"id":"eu-1","region":"eu","url":"http://[::1]:80/p","load":1e308}`))
	f.Add([]byte(sp+"a/b"), []byte(`{}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		srv, err := DecodeServer(sp, key, value)
		if err != nil {
			return
		}
		if err := srv.Validate(); err != nil {
			t.Fatalf("decoded an invalid record %+v: %v", srv, err)
		}
		if sp+srv.ID != string(key) {
			t.Fatalf("decoded id %q from key %q", srv.ID, key)
		}
		if _, err := DialAddress(srv.URL); err != nil {
			t.Fatalf("decoded url %q has no dial address: %v", srv.URL, err)
		}
		// What the registry writes back must decode to the same record.
		again, err := DecodeServer(sp, key, []byte(EncodeServer(srv)))
		if err != nil || !again.Same(srv) {
			t.Fatalf("round trip of %+v: %+v, %v", srv, again, err)
		}
	})
}
