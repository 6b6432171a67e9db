package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// replicator copies changed orders to the peers after the replication delay,
// standing in for asynchronous cross-region database replication.
type replicator struct {
	cfg    Config
	tokens tokenIssuer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	timers map[*time.Timer]struct{}
}

func newReplicator(cfg Config, tokens tokenIssuer) *replicator {
	ctx, cancel := context.WithCancel(context.Background())
	return &replicator{cfg: cfg, tokens: tokens, ctx: ctx, cancel: cancel, timers: map[*time.Timer]struct{}{}}
}

// schedule sends o to every peer once the delay has passed.
func (rp *replicator) schedule(o Order) {
	if len(rp.cfg.Peers) == 0 {
		return
	}
	o = o.clone()
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.ctx.Err() != nil {
		return
	}
	rp.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(rp.cfg.ReplicationDelay, func() {
		defer rp.wg.Done()
		rp.mu.Lock()
		delete(rp.timers, t)
		rp.mu.Unlock()
		for _, peer := range rp.cfg.Peers {
			if err := rp.send(peer, o); err != nil {
				rp.cfg.Logger.Warn("replication failed", "order", o.ID, "peer", peer, "err", err)
			}
		}
	})
	rp.timers[t] = struct{}{}
}

func (rp *replicator) send(peer string, o Order) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	tok, err := rp.tokens.issue(tokenUseReplicate, rp.cfg.ServerID, "peers", time.Minute)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(rp.ctx, http.MethodPost, strings.TrimRight(peer, "/")+"/internal/replicate", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := rp.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("peer answered %s", resp.Status)
	}
	return nil
}

// close cancels pending replication and waits for sends in progress.
func (rp *replicator) close() {
	rp.mu.Lock()
	rp.cancel()
	for t := range rp.timers {
		if t.Stop() {
			rp.wg.Done()
		}
	}
	clear(rp.timers)
	rp.mu.Unlock()
	rp.wg.Wait()
}

// receiveReplica applies an order copied from a peer. Only holders of the
// shared token key may write here, since it bypasses the workflow's checks.
func (a *App) receiveReplica(w http.ResponseWriter, r *http.Request) {
	from, err := a.tokens.verify(bearer(r), tokenUseReplicate)
	if err != nil {
		a.writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}
	var o Order
	if err := decodeJSON(r, &o); err != nil {
		a.writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if o.ID == "" || !validName(o.User) || o.Version < 1 {
		a.writeError(w, http.StatusBadRequest, "bad_request", "invalid replica: needs id, user and version")
		return
	}
	applied := a.orders.merge(o)
	a.cfg.Logger.Info("replica received", "order", o.ID, "from", from, "version", o.Version, "applied", applied)
	w.WriteHeader(http.StatusNoContent)
}
