package caddymodule

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// The edge's metrics. The collectors are process-wide (the registry watch is
// too); each config's Caddy registry gets them registered once.
var (
	pinsIssuedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessionpin_pins_issued_total",
		Help: "Pins issued by the edge, by reason (placement, refresh_keep, refresh_move, failover, and write: a pin re-signed to record a write).",
	}, []string{"reason"})

	pinnedUnavailableTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sessionpin_pinned_unavailable_total",
		Help: "Requests answered 503 because their pinned server is not in the registry or this edge cannot reach it.",
	})

	unreachableTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessionpin_unreachable_total",
		Help: "Times this edge failed to connect to a server it had been reaching and marked it unreachable, by server.",
	}, []string{"server"})

	movesHeldTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessionpin_moves_held_total",
		Help: "Refreshes whose move was held back because no target held the client's last write yet, by outcome (kept: the client stayed on its server; wait: its server is gone and it was told to come back).",
	}, []string{"outcome"})

	unsafeMovesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sessionpin_unsafe_moves_total",
		Help: "Moves made to a server that may not hold the client's last write, because the write was older than catch_up_limit.",
	})

	registryServers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sessionpin_registry_servers",
		Help: "Servers in the edge's registry snapshot, by region and state (active, draining).",
	}, []string{"region", "state"})

	registryLastUpdate = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sessionpin_registry_last_update_seconds",
		Help: "Seconds since the edge's registry snapshot last changed or was confirmed by a list.",
	}, func() float64 {
		if rc := currentRegistry.Load(); rc != nil {
			return rc.secondsSinceUpdate()
		}
		return 0
	})

	// Counters per reason, resolved once: WithLabelValues hashes per call.
	pinsIssuedByReason = map[string]prometheus.Counter{}
	pinsIssuedOnce     sync.Once
)

func countPinIssued(reason string) {
	pinsIssuedOnce.Do(func() {
		for _, r := range []string{placement.ReasonPlacement, placement.ReasonRefreshKeep, placement.ReasonRefreshMove, placement.ReasonFailover} {
			pinsIssuedByReason[r] = pinsIssuedTotal.WithLabelValues(r)
		}
	})
	if c, ok := pinsIssuedByReason[reason]; ok {
		c.Inc()
		return
	}
	pinsIssuedTotal.WithLabelValues(reason).Inc()
}

func registerAppMetrics(reg *prometheus.Registry) error {
	return register(reg, registryServers, registryLastUpdate)
}

func registerHandlerMetrics(reg *prometheus.Registry) error {
	return register(reg, pinsIssuedTotal, pinnedUnavailableTotal, unreachableTotal, edgeResourceErrorsTotal,
		movesHeldTotal, unsafeMovesTotal)
}

// Outcomes of sessionpin_moves_held_total.
const (
	heldKept = "kept"
	heldWait = "wait"
)

// countMove counts a refresh's data-aware outcome.
func countMove(out placement.Outcome) {
	if out.Held {
		movesHeldTotal.WithLabelValues(heldKept).Inc()
	}
	if out.Unsafe {
		unsafeMovesTotal.Inc()
	}
}

// register adds collectors to a config's registry; several handlers in one
// config register the same collectors, which is not an error.
func register(reg *prometheus.Registry, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			return err
		}
	}
	return nil
}

// registryRegions remembers which regions the gauge reports, so a region
// that empties is removed without a Reset that would let a scrape see no
// servers at all in between.
var (
	registryRegionsMu sync.Mutex
	registryRegions   = map[string]bool{}
)

// updateRegistryMetrics is the watcher's OnUpdate hook.
func updateRegistryMetrics(snap *watch.Snapshot) {
	registryRegionsMu.Lock()
	defer registryRegionsMu.Unlock()
	seen := make(map[string]bool, len(registryRegions))
	for _, name := range snap.RegionNames() {
		r := snap.Region(name)
		registryServers.WithLabelValues(name, "active").Set(float64(len(r.Active)))
		registryServers.WithLabelValues(name, "draining").Set(float64(len(r.Draining)))
		seen[name] = true
	}
	for name := range registryRegions {
		if !seen[name] {
			registryServers.DeleteLabelValues(name, "active")
			registryServers.DeleteLabelValues(name, "draining")
		}
	}
	registryRegions = seen
}
