package client

// The refresh as the protocol has it: /closestToMe, then the refresh with
// the critical flag, 503 catching_up waited out; and the read back after a
// refresh that moved the client.

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Bounds on waiting out 503 catching_up at a refresh: each wait is the
// answer's Retry-After within [minCatchUpWait, maxCatchUpWait], and a
// client stops waiting (and counts the 503 as an error) once it has waited
// MaxCatchUpWait in all, longer than the edge's default bound after which
// it moves a client anyway.
const (
	minCatchUpWait = 250 * time.Millisecond
	maxCatchUpWait = 10 * time.Second
	MaxCatchUpWait = 40 * time.Second
)

// catchUpWait is how long to wait before a refresh answered 503
// catching_up is sent again, from the answer's Retry-After (seconds; 1 s
// when missing or not a number of seconds).
func catchUpWait(retryAfter string) time.Duration {
	n, err := strconv.ParseFloat(strings.TrimSpace(retryAfter), 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return time.Second
	}
	if n*float64(time.Second) > float64(maxCatchUpWait) {
		return maxCatchUpWait
	}
	return max(minCatchUpWait, time.Duration(n*float64(time.Second)))
}

func catchingUp(a answer) bool {
	return a.status == http.StatusServiceUnavailable && a.body["error"] == "catching_up"
}

// refresh asks /closestToMe, then refreshes with the critical flag; a
// refresh answered 503 catching_up is waited out and sent again, within
// MaxCatchUpWait. A refresh that kept the client for catch-up is counted.
func (c *Client) refresh(ctx context.Context, critical bool) (answer, error) {
	var waited time.Duration
	for {
		a, err := c.refreshOnce(ctx, critical)
		if err == nil && a.held {
			c.count(func(k *Counts) { k.HeldMoves++ })
		}
		if err != nil || !catchingUp(a) || waited >= c.catchUpBudget {
			return a, err
		}
		d := min(catchUpWait(a.retryAfter), c.catchUpBudget-waited)
		c.record(false) // not served, for the recovery time
		c.count(func(k *Counts) { k.CatchUpWaits++; k.CatchUpWait += d })
		select {
		case <-ctx.Done():
			return a, ctx.Err()
		case <-time.After(d):
		}
		waited += d
	}
}

func (c *Client) refreshOnce(ctx context.Context, critical bool) (answer, error) {
	a, err := c.do(ctx, http.MethodGet, "/closestToMe", nil)
	closest, _ := a.body["closestServerId"].(string)
	if err != nil || a.status != 200 {
		closest = ""
	}
	body := map[string]any{"criticalTaskInProgress": critical}
	if closest != "" {
		body["closestServerId"] = closest
	}
	return c.do(ctx, http.MethodPost, "/auth/refresh", body)
}

// countAnnounced counts a stale read that the edge had announced, when
// the client's last move was an unsafe one.
func (c *Client) countAnnounced() {
	if c.unsafeMove {
		c.count(func(k *Counts) { k.StaleAnnounced++ })
	}
}

// refreshAfter refreshes without the critical flag; when the refresh moved
// the client, it reads its last workflow back from the new server.
func (c *Client) refreshAfter(ctx context.Context, lastID, lastServer *string, lastStep int) {
	a, err := c.refresh(ctx, false)
	if ctx.Err() != nil {
		return
	}
	if err != nil || a.status >= 500 {
		c.fail(a, err)
		return
	}
	c.record(true)
	moved := a.changed || (*lastServer != "" && a.server != "" && a.server != *lastServer)
	if !moved {
		return
	}
	c.countMove(*lastServer, a.server)
	c.unsafeMove = a.unsafe
	if *lastID == "" || lastStep < 0 {
		return
	}
	b, err := c.do(ctx, http.MethodGet, "/workflows/"+*lastID, nil)
	if ctx.Err() != nil {
		return
	}
	switch {
	case err == nil && b.status == 200:
		c.record(true)
		if step, _ := b.body["step"].(float64); int(step) < lastStep {
			c.count(func(k *Counts) { k.StaleAfterMove++ })
			c.countAnnounced()
		}
	case err == nil && b.status == 409:
		c.record(true)
		c.count(func(k *Counts) { k.StaleAfterMove++ })
		c.countAnnounced()
	default:
		c.fail(b, err)
	}
	*lastServer = b.server
}
