package schema

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"eu-1", true},
		{"eu_west.2", true},
		{"127.0.0.1", true}, // a plain name; the edge never dials ids
		{"a", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{".", false},
		{"..", false},
		{"...", false},
		{"eu/1", false},
		{"eu 1", false},
		{"127.0.0.1:9001", false},
		{"é", false},
		{"a\x00", false},
	} {
		if got := ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestServerValidateNamesTheField(t *testing.T) {
	good := Server{ID: "eu-1", Region: "eu-west", URL: "http://127.0.0.1:9001", Load: 0.25}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid server: %v", err)
	}
	for _, tc := range []struct {
		field  string
		mutate func(*Server)
	}{
		{"id", func(s *Server) { s.ID = "" }},
		{"id", func(s *Server) { s.ID = ".." }},
		{"region", func(s *Server) { s.Region = "eu west" }},
		{"url", func(s *Server) { s.URL = "" }},
		{"url", func(s *Server) { s.URL = "ftp://x" }},
		{"url", func(s *Server) { s.URL = "/relative" }},
		{"url", func(s *Server) { s.URL = "http://user:pw@host" }},
		{"url", func(s *Server) { s.URL = "http://host/?q=1" }},
		{"url", func(s *Server) { s.URL = "http://host/#f" }},
		{"url", func(s *Server) { s.URL = "http://:9001" }},
		{"url", func(s *Server) { s.URL = "http://host:port" }},
		{"load", func(s *Server) { s.Load = -0.1 }},
		{"load", func(s *Server) { s.Load = math.NaN() }},
		{"load", func(s *Server) { s.Load = math.Inf(1) }},
	} {
		s := good
		tc.mutate(&s)
		err := s.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: got %v, want an error naming %q", s, err, tc.field)
		}
	}
}

func TestDialAddress(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:9001", "127.0.0.1:9001"},
		{"http://example.com", "example.com:80"},
		{"https://example.com/api", "example.com:443"},
		{"http://[::1]:9001", "[::1]:9001"},
		{"https://[2001:db8::1]", "[2001:db8::1]:443"},
	} {
		got, err := DialAddress(tc.url)
		if err != nil || got != tc.want {
			t.Errorf("DialAddress(%q) = %q, %v; want %q", tc.url, got, err, tc.want)
		}
	}
}
