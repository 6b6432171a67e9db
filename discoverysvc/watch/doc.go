// Package watch keeps an immutable snapshot of the registry up to date:
// the Watcher lists the servers and the operator drains in etcd, then
// follows the prefix with one watch, and publishes each update as a new
// Snapshot that readers take without a lock.
//
// The Caddy edge routes every request from such a snapshot, and the
// discovery service feeds its fleet state, events stream and registry
// copy from the same watcher (WatcherConfig.OnWatch and Raw). It depends
// on the etcd client and on package schema only.
package watch
