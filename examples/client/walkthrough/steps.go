package walkthrough

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// login: the edge places the new client and pins it; the app issues its own
// tokens and knows nothing about it.
func (w *walk) login(ctx context.Context) error {
	w.title("Login through edge A")
	r, err := w.s.call(ctx, "POST", w.cfg.EdgeA+"/auth/login", map[string]any{"user": w.cfg.User})
	if err != nil {
		return err
	}
	w.note("POST A/auth/login → %s", r.describe())
	if r.status != http.StatusOK {
		return fmt.Errorf("login: want 200, got %s", r.describe())
	}
	if r.pin == "" || r.server == "" {
		return errors.New("login: the edge issued no pin (X-Session-Pin / X-Session-Server missing)")
	}
	if r.servedBy != r.server {
		return fmt.Errorf("login: pinned to %s but answered by %s", r.server, r.servedBy)
	}
	w.s.access, w.s.refresh = r.str("accessToken"), r.str("refreshToken")
	w.regionOf[r.server] = r.str("region")
	w.ok("pinned to %s (%s): X-Session-Server: %s, X-Session-Pin: %s", r.server, r.str("region"), r.server, abbrev(r.pin))
	w.ok("the app issued its own tokens (access %s)", abbrev(w.s.access))
	return nil
}

// closestOf asks an edge which server it would place a client on.
func (w *walk) closestOf(ctx context.Context, edge, name string) (id, region string, err error) {
	r, err := w.s.call(ctx, "GET", edge+"/closestToMe", nil)
	if err != nil {
		return "", "", err
	}
	if r.status != http.StatusOK || r.str("closestServerId") == "" {
		return "", "", fmt.Errorf("GET %s/closestToMe: want 200 with closestServerId, got %d %s", name, r.status, r.raw)
	}
	id, region = r.str("closestServerId"), r.str("region")
	w.regionOf[id] = region
	w.note("GET %s/closestToMe → %s (%s, load %.2f)", name, id, region, r.num("load"))
	return id, region, nil
}

func (w *walk) closest(ctx context.Context) error {
	w.title("Each edge names the closest server of its own region")
	_, ra, err := w.closestOf(ctx, w.cfg.EdgeA, "A")
	if err != nil {
		return err
	}
	_, rb, err := w.closestOf(ctx, w.cfg.EdgeB, "B")
	if err != nil {
		return err
	}
	if ra == rb {
		return fmt.Errorf("both edges answer for region %s; want two regions", ra)
	}
	w.ok("edge A answers for %s, edge B for %s", ra, rb)
	return nil
}

// pinAcrossEdges: the pin is verified by any edge sharing the key, and names
// a server id that every edge resolves through the shared registry.
func (w *walk) pinAcrossEdges(ctx context.Context) error {
	w.title("A pin issued by edge A is honoured by edge B")
	r, err := w.s.call(ctx, "GET", w.cfg.EdgeB+"/whoami", nil)
	if err != nil {
		return err
	}
	w.note("GET B/whoami with the pin → %s", r.describe())
	if r.status != http.StatusOK || r.servedBy != w.s.server {
		return fmt.Errorf("edge B sent the pinned client to %q, want %s", r.servedBy, w.s.server)
	}
	if r.pin != "" {
		return errors.New("edge B issued a new pin for a valid one")
	}
	w.ok("edge B (another region) proxied to %s, the pinned server", w.s.server)
	return nil
}

// otherRegionClosest is the closest server of the edge whose region is not
// the pinned server's, so that a refresh has a reason to move.
func (w *walk) otherRegionClosest(ctx context.Context) (string, error) {
	for _, e := range []edge{{w.cfg.EdgeB, "B"}, {w.cfg.EdgeA, "A"}} {
		id, region, err := w.closestOf(ctx, e.url, e.name)
		if err != nil {
			return "", err
		}
		if region != w.regionOf[w.s.server] {
			return id, nil
		}
	}
	return "", fmt.Errorf("no edge names a server outside %s's region", w.s.server)
}

// refresh sends the refresh the seed describes: the app's refresh token,
// the closest server and whether a critical task runs.
func (w *walk) refresh(ctx context.Context, edge, closest string, critical bool) (response, error) {
	r, err := w.s.call(ctx, "POST", edge+"/auth/refresh", map[string]any{
		"refreshToken":           w.s.refresh,
		"closestServerId":        closest,
		"criticalTaskInProgress": critical,
	})
	if err != nil {
		return r, err
	}
	if r.status == http.StatusOK {
		w.s.access, w.s.refresh = r.str("accessToken"), r.str("refreshToken")
	}
	return r, nil
}

func (w *walk) orderStep(ctx context.Context, what, path string, body any) (response, error) {
	r, err := w.s.call(ctx, "POST", w.cfg.EdgeA+path, body)
	if err != nil {
		return r, err
	}
	w.note("%s: POST A%s → %s", what, path, r.describe())
	if r.status/100 != 2 {
		return r, fmt.Errorf("%s failed: %s", what, r.describe())
	}
	if r.servedBy != w.s.server {
		return r, fmt.Errorf("%s ran on %s, not on the pinned server %s", what, r.servedBy, w.s.server)
	}
	return r, nil
}

// criticalWorkflow: a refresh in the middle of a multi-step workflow keeps
// the client where its state is, even when another region is closer.
func (w *walk) criticalWorkflow(ctx context.Context) error {
	w.title("A critical workflow stays on its server through a refresh")
	pinned := w.s.server
	r, err := w.orderStep(ctx, "create order", "/orders", nil)
	if err != nil {
		return err
	}
	id := r.str("id")
	closest, err := w.otherRegionClosest(ctx)
	if err != nil {
		return err
	}
	r, err = w.refresh(ctx, w.cfg.EdgeA, closest, true)
	if err != nil {
		return err
	}
	w.note("POST A/auth/refresh {closestServerId: %s, criticalTaskInProgress: true} → %s", closest, r.describe())
	if r.status != http.StatusOK {
		return fmt.Errorf("critical refresh: want 200, got %s", r.describe())
	}
	if r.servedBy != pinned || w.s.server != pinned || r.changed {
		return fmt.Errorf("critical refresh moved the client from %s to %s", pinned, w.s.server)
	}
	w.ok("stayed on %s although %s is closer: a critical task is in progress", pinned, closest)
	if err := w.finishOrder(ctx, id, "espresso-beans", 2); err != nil {
		return err
	}
	w.ok("order %s created, filled and submitted on %s: the workflow never hopped", id, pinned)
	return nil
}

// nonCriticalRefresh: with no critical task, a refresh moves the client to
// the closest server of another region, and the front end says so.
func (w *walk) nonCriticalRefresh(ctx context.Context) error {
	w.title("A refresh with no critical task moves the client")
	from := w.s.server
	closest, err := w.otherRegionClosest(ctx)
	if err != nil {
		return err
	}
	r, err := w.refresh(ctx, w.cfg.EdgeB, closest, false)
	if err != nil {
		return err
	}
	w.note("POST B/auth/refresh {closestServerId: %s, criticalTaskInProgress: false} → %s", closest, r.describe())
	if r.status != http.StatusOK {
		return fmt.Errorf("refresh: want 200, got %s", r.describe())
	}
	if w.s.server == from || !r.changed {
		return fmt.Errorf("refresh kept the client on %s (X-Session-Server-Changed %v)", w.s.server, r.changed)
	}
	if r.servedBy != w.s.server {
		return fmt.Errorf("refresh answered by %s but the new pin names %s", r.servedBy, w.s.server)
	}
	w.ok("moved %s → %s (X-Session-Server-Changed: 1, X-Session-Server-URL: %s)", from, w.s.server, r.serverURL)
	w.printf("    💬 %s\n", ServerChangedMessage)
	return nil
}

// finishOrder adds an item to order id and submits it: the workflow steps
// that must land on the server the order was created on.
func (w *walk) finishOrder(ctx context.Context, id, sku string, qty int) error {
	if _, err := w.orderStep(ctx, "add item", "/orders/"+id+"/items", map[string]any{"sku": sku, "qty": qty}); err != nil {
		return err
	}
	r, err := w.orderStep(ctx, "submit", "/orders/"+id+"/submit", nil)
	if err != nil {
		return err
	}
	if r.str("status") != "submitted" {
		return fmt.Errorf("submit: order status %q, want submitted", r.str("status"))
	}
	return nil
}
