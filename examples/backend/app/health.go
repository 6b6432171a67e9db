package app

import (
	"math"
	"net/http"
)

// healthResponse is the body of GET /healthz; the discovery agent reads
// load from it.
type healthResponse struct {
	Status string  `json:"status"`
	Server string  `json:"server"`
	Region string  `json:"region"`
	Load   float64 `json:"load"`
}

func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	resp := healthResponse{Status: "ok", Server: a.cfg.ServerID, Region: a.cfg.Region, Load: a.currentLoad(1)}
	status := http.StatusOK
	if a.down.Load() {
		resp.Status = "down"
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, resp)
}

// AdminHandler serves the operator's controls of the demo, meant for a
// loopback-only listener: POST /admin/down makes /healthz fail and refuses
// all other traffic (so the agent stops heartbeating and the server leaves
// the registry, as if it had crashed), POST /admin/up undoes it,
// POST /admin/load {"load":0.9} fixes the reported load ({"load":-1} goes
// back to counting in-flight requests), GET /admin/state shows all three.
func (a *App) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/down", func(w http.ResponseWriter, r *http.Request) {
		a.SetDown(true)
		a.cfg.Logger.Info("marked down")
		a.writeState(w)
	})
	mux.HandleFunc("POST /admin/up", func(w http.ResponseWriter, r *http.Request) {
		a.SetDown(false)
		a.cfg.Logger.Info("marked up")
		a.writeState(w)
	})
	mux.HandleFunc("POST /admin/load", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Load *float64 `json:"load"`
		}
		if err := decodeJSON(r, &req); err != nil {
			a.writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if req.Load == nil || math.IsNaN(*req.Load) || math.IsInf(*req.Load, 0) {
			a.writeError(w, http.StatusBadRequest, "bad_request", "invalid load: must be a finite number (negative: count in-flight requests)")
			return
		}
		a.SetLoad(*req.Load)
		a.writeState(w)
	})
	mux.HandleFunc("GET /admin/state", func(w http.ResponseWriter, r *http.Request) { a.writeState(w) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ServedByHeader, a.cfg.ServerID)
		mux.ServeHTTP(w, r)
	})
}

// SetDown marks the server down (true) or up (false), as the admin
// endpoints do.
func (a *App) SetDown(down bool) { a.down.Store(down) }

// SetLoad fixes the reported load; a negative load counts in-flight
// requests again.
func (a *App) SetLoad(load float64) {
	a.mu.Lock()
	a.load = load
	a.mu.Unlock()
}

type adminState struct {
	Server string  `json:"server"`
	Down   bool    `json:"down"`
	Load   float64 `json:"load"`
}

func (a *App) writeState(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, adminState{Server: a.cfg.ServerID, Down: a.down.Load(), Load: a.currentLoad(0)})
}
