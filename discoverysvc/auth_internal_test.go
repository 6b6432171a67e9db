package discoverysvc

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAuthorizerAdminOnly: operations that are no single server's own
// record (drains) take the admin token; any agent token gets 403, a wrong
// one 401.
func TestAuthorizerAdminOnly(t *testing.T) {
	a := newAuthorizer("admin-token")
	for _, tt := range []struct {
		token  string
		id     string
		want   access
		status int
	}{
		{"admin-token", "", accessGranted, 200},
		{AgentToken("admin-token", "eu-1"), "", accessOtherServer, 403},
		{AgentToken("admin-token", "eu-1"), "eu-1", accessGranted, 200},
		{AgentToken("admin-token", "eu-1"), "eu-2", accessOtherServer, 403},
		{"wrong", "", accessNone, 401},
		{"", "eu-1", accessNone, 401},
	} {
		r := httptest.NewRequest("PUT", "/", nil)
		if tt.token != "" {
			r.Header.Set("Authorization", "Bearer "+tt.token)
		}
		if got := a.check(r, tt.id); got != tt.want {
			t.Errorf("check(%q, id %q) = %v, want %v", tt.token, tt.id, got, tt.want)
		}
		w := httptest.NewRecorder()
		ok := a.authorize(w, r, tt.id)
		if ok != (tt.status == 200) || (!ok && w.Code != tt.status) {
			t.Errorf("authorize(%q, id %q): ok %v, status %d; want %d", tt.token, tt.id, ok, w.Code, tt.status)
		}
	}
	open := newAuthorizer("")
	if got := open.check(httptest.NewRequest("PUT", "/", nil), ""); got != accessGranted {
		t.Errorf("no admin token: %v, want writes open", got)
	}
}

func FuzzAuthorizerCheck(f *testing.F) {
	a := newAuthorizer("admin-token")
	for _, s := range []string{"Bearer admin-token", "Bearer " + AgentToken("admin-token", "eu-1"), "Bearer eu-1.", "Bearer .", "bearer x.zz", "Basic admin-token"} {
		f.Add(s, "eu-1")
	}
	f.Fuzz(func(t *testing.T, header, id string) {
		r := httptest.NewRequest("PUT", "/", nil)
		r.Header["Authorization"] = []string{header}
		if a.check(r, id) != accessGranted {
			return
		}
		// Only the admin token, or the agent token of id itself, is granted.
		scheme, cred, _ := strings.Cut(header, " ")
		cred = strings.TrimSpace(cred)
		if !strings.EqualFold(scheme, "Bearer") || (cred != "admin-token" && (id == "" || cred != AgentToken("admin-token", id))) {
			t.Fatalf("granted %q for id %q", header, id)
		}
	})
}
