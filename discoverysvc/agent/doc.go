// Package agent is the heartbeat sidecar for an unchanged app: it probes
// the app's health URL and heartbeats the server to the discovery API
// while the app is healthy, deregisters it when the app stops answering,
// and drains it before it stops. `discoverysvc agent` runs it; it calls
// the API through package client and imports nothing of the service.
package agent
