package app

import (
	"net/http"
)

// loginRequest is the body of POST /auth/login. The demo has no user
// database: any valid user name logs in.
type loginRequest struct {
	User string `json:"user"`
}

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		a.writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !validName(req.User) {
		a.writeError(w, http.StatusBadRequest, "bad_request", "invalid user: must be 1-64 characters of [A-Za-z0-9._-]")
		return
	}
	if a.writePair(w, req.User) {
		a.cfg.Logger.Info("login", "user", req.User)
	}
}

// writePair answers with a new token pair for user; it reports whether it
// could issue one.
func (a *App) writePair(w http.ResponseWriter, user string) bool {
	pair, err := a.issuePair(user)
	if err != nil {
		a.writeError(w, http.StatusInternalServerError, "internal", "issue tokens: "+err.Error())
		return false
	}
	writeJSON(w, http.StatusOK, pair)
	return true
}

// refreshRequest is the body of POST /auth/refresh. ClosestServerID and
// CriticalTaskInProgress are read by the edge to decide where the client
// goes; the app accepts them and does nothing with them — it does not know
// about pins.
type refreshRequest struct {
	RefreshToken           string `json:"refreshToken"`
	ClosestServerID        string `json:"closestServerId"`
	CriticalTaskInProgress bool   `json:"criticalTaskInProgress"`
}

func (a *App) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if err := decodeJSON(r, &req); err != nil {
		a.writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	user, err := a.tokens.verify(req.RefreshToken, tokenUseRefresh)
	if err != nil {
		a.writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}
	if a.writePair(w, user) {
		a.cfg.Logger.Info("refresh", "user", user, "critical", req.CriticalTaskInProgress)
	}
}

// whoamiResponse tells which server answered and, with a valid access token,
// for whom.
type whoamiResponse struct {
	Server string `json:"server"`
	Region string `json:"region"`
	User   string `json:"user,omitempty"`
}

func (a *App) whoami(w http.ResponseWriter, r *http.Request) {
	resp := whoamiResponse{Server: a.cfg.ServerID, Region: a.cfg.Region}
	if tok := bearer(r); tok != "" {
		user, err := a.tokens.verify(tok, tokenUseAccess)
		if err != nil {
			a.writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
			return
		}
		resp.User = user
	}
	writeJSON(w, http.StatusOK, resp)
}

// authenticate returns the user of the request's access token, or answers
// 401 and returns "".
func (a *App) authenticate(w http.ResponseWriter, r *http.Request) string {
	user, err := a.tokens.verify(bearer(r), tokenUseAccess)
	if err != nil {
		a.writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return ""
	}
	return user
}
