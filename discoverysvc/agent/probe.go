package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"

	"go.uber.org/zap"
)

// maxHealthBody bounds how much of the app's health response is read for the
// load; a health body is small, and the agent must not be made to buffer an
// arbitrary one.
const maxHealthBody = 64 << 10

// slowProbe reports whether a probe failed by running out of time rather
// than by an answer or a refused connection.
func slowProbe(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// probe asks the app for its health. It returns the load to report, or an
// error when the app is not healthy.
func (r *agentRun) probe(ctx context.Context) (float64, error) {
	// The probe must end before the next round is due.
	ctx, cancel := context.WithTimeout(ctx, r.interval*3/4)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.agent.HealthURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, fmt.Errorf("health status %d", resp.StatusCode)
	}
	if r.agent.Load != nil {
		return *r.agent.Load, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	if err != nil {
		return 0, fmt.Errorf("read health body: %w", err)
	}
	load, ok := LoadFromHealth(body)
	if !ok {
		// Load 0 would be the most attractive value in the registry: a
		// broken or hostile health page must not draw every new client.
		if !r.badLoad {
			r.badLoad = true
			r.log.Warn("health body has an invalid load; keeping the last valid one",
				zap.Float64("load", r.load), zap.ByteString("body", body[:min(len(body), 256)]))
		}
		return r.load, nil
	}
	r.badLoad = false
	r.load = load
	return load, nil
}

// LoadFromHealth reads the top-level "load" of a health body. A body that
// is not a JSON object, or has no "load", reports 0 with ok true: a health
// page is the app's business, and a plain one must not keep an otherwise
// healthy server out of the registry. A "load" that is not a finite number
// >= 0 (negative, out of range, a string, null) gives ok false.
func LoadFromHealth(body []byte) (load float64, ok bool) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return 0, true
	}
	raw, present := doc["load"]
	if !present {
		return 0, true
	}
	// A number out of float64 range fails to decode: not finite.
	if err := json.Unmarshal(raw, &load); err != nil || string(raw) == "null" || math.IsNaN(load) || math.IsInf(load, 0) || load < 0 {
		return 0, false
	}
	return load, true
}
