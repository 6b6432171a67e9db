package schema

import (
	"strings"
	"testing"
)

func TestDecodeDrain(t *testing.T) {
	const dp = "/sessionpin/drain/"
	cases := []struct {
		name, key, value string
		wantErr          string // substring; "" means valid
	}{
		{"valid", dp + "eu-1", `{"id":"eu-1","since":"2026-11-29T05:00:00Z"}`, ""},
		{"with reason and more fields", dp + "eu-1", `{"id":"eu-1","since":"2026-11-29T05:00:00.123+01:00","reason":"kernel update","by":"ops"}`, ""},
		{"not a drain key", "/sessionpin/servers/eu-1", `{}`, "not a drain key"},
		{"nested key", dp + "eu-1/x", `{}`, "not a drain key"},
		{"bad json", dp + "eu-1", `{"id":`, "decode value"},
		{"empty value", dp + "eu-1", ``, "decode value"},
		{"no since", dp + "eu-1", `{"id":"eu-1"}`, "invalid since"},
		{"since not RFC 3339", dp + "eu-1", `{"id":"eu-1","since":"yesterday"}`, "decode value"},
		{"id mismatch", dp + "eu-1", `{"id":"eu-2","since":"2026-11-29T05:00:00Z"}`, `names id "eu-2"`},
		{"bad id", dp + "eu-1", `{"id":"..","since":"2026-11-29T05:00:00Z"}`, "invalid id"},
		{"control character in reason", dp + "eu-1", `{"id":"eu-1","since":"2026-11-29T05:00:00Z","reason":"a\nb"}`, "invalid reason"},
		{"long reason", dp + "eu-1", `{"id":"eu-1","since":"2026-11-29T05:00:00Z","reason":"` + strings.Repeat("x", maxReasonLen+1) + `"}`, "invalid reason"},
		{"huge value", dp + "eu-1", `{"id":"eu-1","pad":"` + strings.Repeat("x", maxValueLen) + `"}`, "over"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := DecodeDrain(dp, []byte(tc.key), []byte(tc.value))
			if tc.wantErr == "" {
				if err != nil || d.ID != "eu-1" || d.Since.IsZero() {
					t.Fatalf("got %+v, %v", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzDecodeDrain(f *testing.F) {
	const dp = "/sessionpin/drain/"
	f.Add([]byte(dp+"eu-1"), []byte(`{"id":"eu-1","since":"2026-11-29T05:00:00Z","reason":"roll"}`))
	f.Add([]byte(dp+"eu-1"), []byte(`{"id":"eu-1","since":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(dp+"a/b"), []byte(`{}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		d, err := DecodeDrain(dp, key, value)
		if err != nil {
			return
		}
		if d.Validate() != nil || dp+d.ID != string(key) {
			t.Fatalf("accepted %+v for key %q", d, key)
		}
		// What was accepted survives the registry's own encoding.
		again, err := DecodeDrain(dp, key, []byte(EncodeDrain(d)))
		if err != nil || again.ID != d.ID || again.Reason != d.Reason {
			t.Fatalf("re-encoding %+v: %+v, %v", d, again, err)
		}
	})
}
