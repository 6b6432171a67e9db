package walkthrough

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/client"
)

// drain: an operator drains the pinned server. It takes no new clients, a
// critical workflow still finishes on it, the next refresh without a
// critical task moves the client, and discovery then reports the server
// drained, as `discoverysvc drain --wait` waits for. The drain is ended
// afterwards, so the demo is whole again.
func (w *walk) drain(ctx context.Context) error {
	w.title("An operator drains the pinned server: the workflow finishes, the client moves")
	drained := w.s.server
	if _, err := w.discovery().Drain(ctx, drained, "", w.cfg.DrainQuiet); err != nil {
		return explain(err, drained)
	}
	defer w.undrain(drained)
	w.note("PUT %s/v1/servers/%s/drain (admin token): %s takes no new clients", w.cfg.Discovery, drained, drained)
	e, err := w.waitEdgeSkips(ctx, drained)
	if err != nil {
		return err
	}

	r, err := w.orderStep(ctx, "create order", "/orders", nil)
	if err != nil {
		return err
	}
	id := r.str("id")
	r, err = w.refresh(ctx, e.url, drained, true)
	if err != nil {
		return err
	}
	w.note("POST %s/auth/refresh {closestServerId: %s, criticalTaskInProgress: true} → %s", e.name, drained, r.describe())
	if r.status != http.StatusOK || r.servedBy != drained || w.s.server != drained || r.changed {
		return fmt.Errorf("critical refresh on a draining server: want 200 from %s, got %s, pinned to %s", drained, r.describe(), w.s.server)
	}
	w.ok("stayed on %s although it is draining: a critical task is in progress", drained)
	if err := w.finishOrder(ctx, id, "oat-milk", 1); err != nil {
		return err
	}
	w.ok("order %s submitted on %s: the drain did not cut the workflow", id, drained)

	r, err = w.refresh(ctx, e.url, drained, false)
	if err != nil {
		return err
	}
	w.note("POST %s/auth/refresh {closestServerId: %s, criticalTaskInProgress: false} → %s", e.name, drained, r.describe())
	if r.status != http.StatusOK || w.s.server == drained || !r.changed || r.servedBy != w.s.server {
		return fmt.Errorf("refresh off a draining server: want 200 from a new server, got %s, pinned to %s", r.describe(), w.s.server)
	}
	w.ok("moved %s → %s: a draining server keeps a client only while its task is critical", drained, w.s.server)
	w.printf("    💬 %s\n", ServerChangedMessage)

	st, err := w.waitDrained(ctx, drained)
	if err != nil {
		return err
	}
	w.ok("GET %s/v1/servers/%s/drain?quiet=%s → drained: true (%d edges reporting): safe to restart it",
		w.cfg.Discovery, drained, w.cfg.DrainQuiet, st.EdgesReporting)
	w.note("this is where `discoverysvc drain %s --wait --quiet %s` returns, with exit status 0", drained, w.cfg.DrainQuiet)
	return nil
}

// skipsInARow is how many answers in a row must skip a drained server
// before an edge counts as having seen the drain.
const skipsInARow = 20

// waitEdgeSkips polls until the edge of the drained server's region places
// new clients elsewhere: the drain has reached that edge's registry watch.
// The refreshes that follow go through that edge, since the other edge's
// watch may see the drain a moment later.
func (w *walk) waitEdgeSkips(ctx context.Context, id string) (edge, error) {
	deadline := time.Now().Add(w.cfg.DownTimeout)
	for {
		for _, e := range []edge{{w.cfg.EdgeA, "A"}, {w.cfg.EdgeB, "B"}} {
			// Placement picks at random among servers of equal load, so
			// one answer that skips id may be luck from an edge that has
			// not seen the drain yet: only a run of them says it has.
			closest := ""
			for range skipsInARow {
				r, err := w.s.call(ctx, "GET", e.url+"/closestToMe", nil)
				if err != nil {
					return edge{}, err
				}
				if c := r.str("closestServerId"); r.status == http.StatusOK && r.str("region") == w.regionOf[id] && c != "" && c != id {
					closest = c
					continue
				}
				closest = ""
				break
			}
			if closest != "" {
				w.note("GET %s/closestToMe → %s: edge %s places new clients off %s", e.name, closest, e.name, id)
				return e, nil
			}
		}
		if time.Now().After(deadline) {
			return edge{}, fmt.Errorf("no edge of %s's region placed new clients elsewhere within %s of the drain", id, w.cfg.DownTimeout)
		}
		select {
		case <-ctx.Done():
			return edge{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitDrained polls the drain status until no edge has seen a pinned
// request to id for DrainQuiet. The edges report their pinned traffic every
// few seconds, so this takes the quiet period and up to two reports.
func (w *walk) waitDrained(ctx context.Context, id string) (client.DrainStatus, error) {
	deadline := time.Now().Add(w.cfg.DrainTimeout)
	var shown string
	for {
		st, err := w.discovery().DrainStatus(ctx, id, w.cfg.DrainQuiet)
		err = explain(err, id)
		if err != nil {
			return st, err
		}
		if st.Drained {
			return st, nil
		}
		line := fmt.Sprintf("drain status: %d pinned requests to %s in the last minute, %d edges reporting; waiting for %s of quiet",
			st.PinnedLastMinute, id, st.EdgesReporting, w.cfg.DrainQuiet)
		if line != shown {
			w.note("%s", line)
			shown = line
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%s not drained after %s: %d pinned requests in the last minute, %d edges reporting",
				id, w.cfg.DrainTimeout, st.PinnedLastMinute, st.EdgesReporting)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// discovery is the client of discovery's API, with the admin token that
// drains take.
func (w *walk) discovery() *client.Client {
	return &client.Client{Base: w.cfg.Discovery, Token: w.cfg.Token, HTTP: w.cfg.Client}
}

// errNotDrained is discovery's 404 to an undrain: no drain to end.
var errNotDrained = errors.New("not drained by an operator")

// explain says what to do about a wrong admin token, and which server a
// failed drain call was about.
func explain(err error, id string) error {
	if se, ok := errors.AsType[*client.StatusError](err); ok && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden) {
		return fmt.Errorf("drain %s: %w: the admin token is missing or wrong (see --token)", id, err)
	}
	if err != nil {
		return fmt.Errorf("drain %s: %w", id, err)
	}
	return nil
}

// undrain ends the drain even when a step failed, so that the server takes
// new clients again on the next run.
func (w *walk) undrain(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found, err := w.discovery().Undrain(ctx, id)
	if err != nil || !found {
		w.note("could not undrain %s: %v", id, cmp.Or(explain(err, id), error(errNotDrained)))
		return
	}
	w.note("DELETE %s/v1/servers/%s/drain: %s takes new clients again", w.cfg.Discovery, id, id)
}
