package discoverysvc

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// The servers' replication progress as discovery's metrics show it: one
// series per server and origin it reports on, read from the registry as
// the hub last saw it, so a server that leaves takes its series along.
// An unknown lag has no lag series, rather than a NaN that every
// comparison in a query would silently drop, and its unknown series is 1.
var (
	serverLagDesc = prometheus.NewDesc("sessionpin_discovery_server_lag_seconds",
		"How far behind the origin the server's copy of its data is, as published (in steps): everything committed there more than this long ago is in the copy. Absent while the lag is unknown.",
		[]string{"server", "origin"}, nil)
	serverProgressUnknownDesc = prometheus.NewDesc("sessionpin_discovery_server_progress_unknown",
		"1 while the server's progress source cannot tell how far behind the origin its copy is (a move to it then waits), 0 while it can.",
		[]string{"server", "origin"}, nil)
)

func describeProgress(ch chan<- *prometheus.Desc) {
	ch <- serverLagDesc
	ch <- serverProgressUnknownDesc
}

// collectProgress reports every server's progress in state.
func collectProgress(ch chan<- prometheus.Metric, state *watch.Snapshot) {
	for _, e := range state.Servers() {
		for origin, p := range e.Progress {
			unknown := 0.0
			if p.Unknown {
				unknown = 1
			} else {
				ch <- prometheus.MustNewConstMetric(serverLagDesc, prometheus.GaugeValue, p.Lag().Seconds(), e.ID, origin)
			}
			ch <- prometheus.MustNewConstMetric(serverProgressUnknownDesc, prometheus.GaugeValue, unknown, e.ID, origin)
		}
	}
}
