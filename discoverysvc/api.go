package discoverysvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// apiTimeout bounds the etcd work of one API request, so a request against an
// unreachable etcd answers 503 instead of hanging the caller's heartbeat loop.
const apiTimeout = 5 * time.Second

// healthTimeout bounds the etcd probe of /healthz; a load balancer's health
// check must get an answer well within its own timeout.
const healthTimeout = 2 * time.Second

// APIConfig configures the discovery API.
type APIConfig struct {
	// Token is the admin token: every write. Agent tokens derived from it
	// (AgentToken) write one server's record each. Empty leaves writes
	// open to anyone who reaches the API.
	Token string
	// AllowLoopback lets servers register loopback URLs, for a demo or a
	// test on one host. Off, a record naming 127.0.0.1 or localhost would
	// send the edge's traffic to whatever listens on the edge's own host.
	AllowLoopback bool
	// Logger receives registrations and etcd errors. Default: no logging.
	Logger *zap.Logger
}

// api serves the discovery HTTP API over a Registry.
type api struct {
	reg           *Registry
	auth          *authorizer
	allowLoopback bool
	logger        *zap.Logger
}

// NewAPI returns the HTTP handler of the discovery API:
//
//	PUT    /v1/servers/{id}   register or heartbeat (body: HeartbeatRequest); 200 with the stored record
//	DELETE /v1/servers/{id}   deregister; 204, or 404 when unknown
//	GET    /v1/servers        {"revision":N,"servers":[...]} by id, optionally ?region=R
//	PUT    /v1/servers/{id}/drain   start an operator drain (body {"reason"} optional); 200 with the drain status
//	DELETE /v1/servers/{id}/drain   end it; 204, or 404 when there is none
//	GET    /v1/servers/{id}/drain   the drain status, ?quiet=60s; 404 when not draining
//	GET    /healthz           200 when etcd answers, else 503
//
// Every response is JSON; errors are {"error":"..."} naming the bad field,
// and a bad request writes nothing. With a token, PUT and DELETE need
// "Authorization: Bearer <token>" with the admin token or the agent token
// of that id (401 without a valid token, 403 with another server's),
// because a registry anyone can write is a way to hijack traffic. When
// etcd fails the answer is 503 {"error":"registry_unavailable"} and the
// cause goes to the log only; a write that etcd refuses because its
// database is full (its NOSPACE alarm) answers 503
// {"error":"registry_full"}, while heartbeats that only renew the lease
// still succeed.
func NewAPI(reg *Registry, cfg APIConfig) http.Handler {
	a := &api{reg: reg, auth: newAuthorizer(cfg.Token), allowLoopback: cfg.AllowLoopback, logger: cfg.Logger}
	if a.logger == nil {
		a.logger = zap.NewNop()
	}
	// The patterns carry no method so that a wrong method gets our JSON 405
	// rather than the mux's plain-text one. {id...} also catches ids with
	// slashes and the empty id, which then fail validation with a 400 that
	// names the id instead of a bare 404.
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/servers/{id...}", a.serveServer)
	mux.HandleFunc("/v1/servers/{id}/drain", a.serveDrain)
	mux.HandleFunc("/v1/servers", a.serveList)
	mux.HandleFunc("/healthz", a.serveHealth)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found: "+r.URL.Path)
	})
	return &apiHandler{Handler: mux, token: cfg.Token}
}

// apiHandler is the API with its admin token, which reads the fleet too
// (see Fleet.Handler).
type apiHandler struct {
	http.Handler
	token string
}

func (a *api) serveServer(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPut, http.MethodDelete:
	default:
		methodNotAllowed(w, r, http.MethodPut, http.MethodDelete)
		return
	}
	id := r.PathValue("id")
	if !a.auth.authorize(w, r, id) {
		return
	}
	if r.Method == http.MethodDelete {
		a.deregister(w, r, id)
		return
	}
	a.heartbeat(w, r, id)
}

func (a *api) heartbeat(w http.ResponseWriter, r *http.Request, id string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusBadRequest, errBodyTooLarge.Error())
			return
		}
		writeError(w, http.StatusBadRequest, "invalid body: "+err.Error())
		return
	}
	srv, ttl, err := DecodeHeartbeat(id, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !a.allowLoopback && schema.IsLoopbackURL(srv.URL) {
		writeError(w, http.StatusBadRequest, (&schema.FieldError{Field: "url", Reason: "host is a loopback address (serve --allow-loopback permits it)"}).Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	res, err := a.reg.Heartbeat(ctx, srv, ttl)
	if err != nil {
		if fe, ok := errors.AsType[*schema.FieldError](err); ok {
			writeError(w, http.StatusBadRequest, fe.Error())
			return
		}
		a.unavailable(w, "heartbeat failed", srv.ID, err)
		return
	}
	switch {
	case res.Created:
		a.logger.Info("server registered",
			zap.String("id", res.Server.ID), zap.String("region", res.Server.Region),
			zap.String("url", res.Server.URL), zap.Float64("load", res.Server.Load),
			zap.Bool("draining", res.Server.Draining), zap.Duration("ttl", ttl))
	case res.Written:
		if ce := a.logger.Check(zapcore.DebugLevel, "server updated"); ce != nil {
			ce.Write(zap.String("id", res.Server.ID), zap.Float64("load", res.Server.Load),
				zap.Bool("draining", res.Server.Draining))
		}
	}
	writeJSON(w, http.StatusOK, res.Server)
}

func (a *api) deregister(w http.ResponseWriter, r *http.Request, id string) {
	if !schema.ValidName(id) {
		writeError(w, http.StatusBadRequest, errInvalidID.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	found, err := a.reg.Deregister(ctx, id)
	a.answerRemoval(w, id, found, err, "deregister failed", "not found", "server deregistered")
}

// answerRemoval answers a DELETE about server id from the registry's answer
// (found, err): 503 with failed logged when etcd failed, 404 saying
// notFound when there was nothing to remove, else 204 with done logged.
func (a *api) answerRemoval(w http.ResponseWriter, id string, found bool, err error, failed, notFound, done string) {
	switch {
	case err != nil:
		a.unavailable(w, failed, id, err)
	case !found:
		writeError(w, http.StatusNotFound, fmt.Sprintf("server %q %s", id, notFound))
	default:
		a.logger.Info(done, zap.String("id", id))
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *api) serveList(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, http.MethodGet, http.MethodHead)
		return
	}
	q := r.URL.Query()
	region := q.Get("region")
	if q.Has("region") && (len(q["region"]) > 1 || !schema.ValidName(region)) {
		writeError(w, http.StatusBadRequest, (&schema.FieldError{Field: "region", Reason: "must be one value of " + strings.TrimPrefix(schema.NameRule, "must be ")}).Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	rev, servers, err := a.reg.List(ctx, region)
	if err != nil {
		a.logger.Warn("list failed", zap.Error(err))
		writeUnavailable(w)
		return
	}
	if servers == nil {
		servers = []schema.Server{} // "servers": [] rather than null
	}
	writeJSON(w, http.StatusOK, client.ListResponse{Revision: rev, Servers: servers})
}

func (a *api) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, http.MethodGet, http.MethodHead)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := a.reg.Ping(ctx); err != nil {
		a.logger.Warn("health check: etcd not answering", zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": errRegistryUnavailable})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, strings.Join(allowed, " or ")))
}

// errRegistryUnavailable is the whole error of a 503: etcd's own message
// would tell any caller the cluster's addresses and state.
const errRegistryUnavailable = "registry_unavailable"

func writeUnavailable(w http.ResponseWriter) {
	writeError(w, http.StatusServiceUnavailable, errRegistryUnavailable)
}

// unavailable logs why a request about server id failed and answers 503:
// registry_full when etcd refused a write because its database is full,
// else registry_unavailable.
func (a *api) unavailable(w http.ResponseWriter, msg, id string, err error) {
	if registryFull(err) {
		a.logger.Warn(msg+": the registry is full (etcd NOSPACE)", zap.String("id", id), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, errRegistryFull)
		return
	}
	a.logger.Warn(msg, zap.String("id", id), zap.Error(err))
	writeUnavailable(w)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client hung up; nothing to do
}
