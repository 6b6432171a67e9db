// Package discoverysvc is the sessionpin discovery service, the program
// `discoverysvc serve` runs: the registry that registers servers in etcd
// under leases and renews them, the HTTP API over it (heartbeats,
// deregistration, drains and their status), and the fleet view fed by one
// registry watch (metrics, the events stream, the fleet page). New wires
// them all.
//
// Only the service uses this package. What the edges and agents share with
// it lives apart: the etcd schema in discoverysvc/schema, the registry
// watch in discoverysvc/watch, the API's Go client in discoverysvc/client,
// the sidecar in discoverysvc/agent. Nothing here links the etcd server;
// the embedded member is discoverysvc/embedetcd.
package discoverysvc
