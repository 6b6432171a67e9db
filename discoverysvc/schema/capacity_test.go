package schema

import (
	"math"
	"strings"
	"testing"
)

// A declared capacity or limit that is negative, not finite or absurd makes
// the record bad, as any bad field does: refused by the API, skipped (and
// logged once) by readers of etcd, so the server keeps its last good record
// in a snapshot or stays out of it.
func TestDecodeServerCapacityAndLimit(t *testing.T) {
	const sp = "/sessionpin/servers/"
	rec := func(extra string) string {
		return `{"id":"eu-1","region":"eu","url":"http://h","load":0.3` + extra + `}`
	}
	cases := []struct {
		name     string
		value    string
		capacity float64
		limit    float64
		wantErr  string
	}{
		{"neither", rec(""), 0, 0, ""},
		{"both", rec(`,"capacity":2000,"limit":0.9`), 2000, 0.9, ""},
		{"zero is not declared", rec(`,"capacity":0,"limit":0`), 0, 0, ""},
		{"at the bounds", rec(`,"capacity":1e9,"limit":1e6`), 1e9, 1e6, ""},
		{"fractional capacity", rec(`,"capacity":0.5`), 0.5, 0, ""},
		{"negative capacity", rec(`,"capacity":-1`), 0, 0, "invalid capacity"},
		{"absurd capacity", rec(`,"capacity":1e12`), 0, 0, "invalid capacity"},
		{"overflowing capacity", rec(`,"capacity":1e400`), 0, 0, "decode value"},
		{"capacity as a string", rec(`,"capacity":"NaN"`), 0, 0, "decode value"},
		{"negative limit", rec(`,"limit":-0.5`), 0, 0, "invalid limit"},
		{"absurd limit", rec(`,"limit":1e7`), 0, 0, "invalid limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := DecodeServer(sp, []byte(sp+"eu-1"), []byte(tc.value))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if srv.Capacity != tc.capacity || srv.Limit != tc.limit {
				t.Fatalf("capacity %v limit %v, want %v and %v", srv.Capacity, srv.Limit, tc.capacity, tc.limit)
			}
		})
	}
}

// Values JSON cannot carry (NaN, infinities) are refused when a record is
// built in Go, as the agent builds it.
func TestValidateCapacityAndLimit(t *testing.T) {
	base := Server{ID: "eu-1", Region: "eu", URL: "http://h", Load: 0.3}
	for _, tc := range []struct {
		name  string
		edit  func(*Server)
		field string
	}{
		{"NaN capacity", func(s *Server) { s.Capacity = math.NaN() }, "capacity"},
		{"infinite capacity", func(s *Server) { s.Capacity = math.Inf(1) }, "capacity"},
		{"negative infinite capacity", func(s *Server) { s.Capacity = math.Inf(-1) }, "capacity"},
		{"capacity just above the bound", func(s *Server) { s.Capacity = MaxCapacity * 1.0000001 }, "capacity"},
		{"NaN limit", func(s *Server) { s.Limit = math.NaN() }, "limit"},
		{"infinite limit", func(s *Server) { s.Limit = math.Inf(1) }, "limit"},
		{"limit just above the bound", func(s *Server) { s.Limit = MaxLimit * 1.0000001 }, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.edit(&s)
			err := s.Validate()
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != tc.field {
				t.Fatalf("Validate = %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
	if err := base.Validate(); err != nil {
		t.Fatalf("base record: %v", err)
	}
}
