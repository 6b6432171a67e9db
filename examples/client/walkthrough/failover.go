package walkthrough

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// failover: the pinned server stops; the edge refuses to send the client
// anywhere else until it refreshes, then the refresh lands on a live server.
func (w *walk) failover(ctx context.Context) error {
	w.title("The pinned server stops: 503, Reconnecting…, refresh, a new server")
	down := w.s.server
	admin, ok := w.cfg.Admins[down]
	if !ok {
		return fmt.Errorf("no admin URL for %s (see --admin)", down)
	}
	if err := w.admin(ctx, admin, "down"); err != nil {
		return err
	}
	defer w.restore(down, admin)
	w.note("POST %s/admin/down: %s stops answering its health check", admin, down)

	r, err := w.waitPinnedUnavailable(ctx)
	if err != nil {
		return err
	}
	w.ok("GET A/whoami → 503 %s for %s, Retry-After: %d", r.str("error"), r.str("server"), r.retryAfter)

	w.countdown(ctx, r.retryAfter)
	closest, _, err := w.closestOf(ctx, w.cfg.EdgeA, "A")
	if err != nil {
		return err
	}
	r, err = w.refresh(ctx, w.cfg.EdgeA, closest, false)
	if err != nil {
		return err
	}
	w.note("POST A/auth/refresh {closestServerId: %s, criticalTaskInProgress: false} → %s", closest, r.describe())
	if r.status != http.StatusOK || w.s.server == down || !r.changed {
		return fmt.Errorf("refresh after failure: want 200 on a new server, got %s, pinned to %s", r.describe(), w.s.server)
	}
	w.ok("moved %s → %s", down, w.s.server)
	w.printf("    💬 %s\n", ServerChangedMessage)

	r, err = w.s.call(ctx, "GET", w.cfg.EdgeA+"/whoami", nil)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK || r.servedBy != w.s.server {
		return fmt.Errorf("after failover: want 200 from %s, got %s", w.s.server, r.describe())
	}
	w.ok("GET A/whoami → 200 from %s: back in business", r.servedBy)
	return nil
}

// waitPinnedUnavailable polls until the edge has seen the server leave the
// registry and answers the edge's own 503 for the pin. Meanwhile the app
// itself may answer 503 server_down through the edge.
func (w *walk) waitPinnedUnavailable(ctx context.Context) (response, error) {
	deadline := time.Now().Add(w.cfg.DownTimeout)
	seenAppDown := false
	for {
		r, err := w.s.call(ctx, "GET", w.cfg.EdgeA+"/whoami", nil)
		if err != nil {
			return r, err
		}
		if r.status == http.StatusServiceUnavailable && r.str("error") == "pinned_server_unavailable" {
			return r, nil
		}
		if r.status >= 500 && !seenAppDown {
			seenAppDown = true
			w.note("GET A/whoami → %s (the server is failing; waiting for it to leave the registry)", r.describe())
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("the edge still answers %s %s after %s; want 503 pinned_server_unavailable", r.describe(), r.raw, w.cfg.DownTimeout)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// countdown shows "Reconnecting…" for the Retry-After seconds, as the seed's
// front end does; Fast shortens it.
func (w *walk) countdown(ctx context.Context, retryAfter int) {
	if retryAfter <= 0 {
		retryAfter = 30
	}
	wait := time.Duration(retryAfter) * time.Second
	if w.cfg.Fast && wait > 2*time.Second {
		wait = 2 * time.Second
		w.note("Reconnecting… (Retry-After %ds; --fast waits %s)", retryAfter, wait)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for left := wait; left > 0; left -= time.Second {
		if !w.cfg.Fast && (left == wait || left%(5*time.Second) == 0 || left <= 3*time.Second) {
			w.note("Reconnecting… %ds", int(left/time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *walk) admin(ctx context.Context, base, action string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(base, "/")+"/admin/"+action, nil)
	if err != nil {
		return err
	}
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s: %w", action, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin %s: %s answered %s", action, base, resp.Status)
	}
	return nil
}

// restore brings the stopped server back even when a step failed, so the
// demo is whole again for the next run.
func (w *walk) restore(id, admin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.admin(ctx, admin, "up"); err != nil {
		w.note("could not restore %s: %v", id, err)
		return
	}
	w.note("POST %s/admin/up: %s is back (its agent registers it again on the next heartbeat)", admin, id)
}
