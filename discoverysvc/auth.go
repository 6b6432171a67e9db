package discoverysvc

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// AgentToken returns the bearer token that lets the agent of server id
// write that server's record and nothing else: the id, a dot, and the hex
// HMAC-SHA256 of the id under the admin token. Every discovery replica that
// holds the admin token verifies it without any stored state, and the id in
// clear lets a replica tell a token for another server (403) from a wrong
// one (401).
func AgentToken(adminToken, id string) string {
	return id + "." + hex.EncodeToString(agentMAC(adminToken, id))
}

func agentMAC(adminToken, id string) []byte {
	m := hmac.New(sha256.New, []byte(adminToken))
	m.Write([]byte(id))
	return m.Sum(nil)
}

// access is what a request's credential proves about its sender.
type access int

const (
	// accessNone: no credential, or one this service did not issue.
	accessNone access = iota
	// accessOtherServer: a valid agent token, for a server other than the
	// one asked for (or for an operation no agent may do).
	accessOtherServer
	// accessGranted: the admin token, an agent token for the server asked
	// for, or any request when the service has no token (writes are open).
	accessGranted
)

// authorizer checks bearer tokens against the admin token and the agent
// tokens derived from it. With no admin token it grants everything.
type authorizer struct {
	admin    string
	adminSum []byte // sha256 of the admin token; nil when writes are open
}

// newAuthorizer returns the checker for adminToken; "" leaves writes open.
func newAuthorizer(adminToken string) *authorizer {
	a := &authorizer{admin: adminToken}
	if adminToken != "" {
		sum := sha256.Sum256([]byte(adminToken))
		a.adminSum = sum[:]
	}
	return a
}

// check reports what r may do to the record of server id. An empty id
// asks for the admin's rights: only the admin token grants them (drains,
// and anything else that is not one server's own record).
func (a *authorizer) check(r *http.Request, id string) access {
	if a == nil || a.adminSum == nil {
		return accessGranted
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return accessNone
	}
	cred = strings.TrimSpace(cred)
	// Both sides are hashed before the constant-time compare, so that not
	// even the admin token's length leaks.
	sum := sha256.Sum256([]byte(cred))
	if subtle.ConstantTimeCompare(sum[:], a.adminSum) == 1 {
		return accessGranted
	}
	tokenID, mac, ok := cutLast(cred, '.')
	if !ok || !schema.ValidName(tokenID) {
		return accessNone
	}
	got, err := hex.DecodeString(mac)
	if err != nil || !hmac.Equal(got, agentMAC(a.admin, tokenID)) {
		return accessNone
	}
	if id != "" && tokenID == id {
		return accessGranted
	}
	return accessOtherServer
}

// authorize answers 401 or 403 and returns false unless r may write the
// record of server id ("" for operations only the admin may do).
func (a *authorizer) authorize(w http.ResponseWriter, r *http.Request, id string) bool {
	switch a.check(r, id) {
	case accessGranted:
		return true
	case accessOtherServer:
		writeError(w, http.StatusForbidden, "forbidden")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessionpin-discovery"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
	}
	return false
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}
