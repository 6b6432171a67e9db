// Package agent is the heartbeat sidecar for an unchanged app: it probes
// the app's health URL and heartbeats the server to the discovery API
// while the app is healthy, deregisters it when the app stops answering,
// and drains it before it stops. With progress sources (PostgreSQL, a URL
// or a command) it also reports how far the server's copy of the data has
// caught up with each origin, for data-aware moves. `discoverysvc agent`
// runs it; it calls the API through package client and imports nothing of
// the service.
package agent
