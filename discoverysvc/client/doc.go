// Package client is the discovery API as a Go program sees it: the
// request and response bodies of /v1/servers, and one Client that makes
// the calls a server or an operator needs (heartbeat, deregister, drain,
// undrain, drain status).
//
// The agent heartbeats through it, `discoverysvc drain` and `undrain`
// drive drains through it, and so does the demo walkthrough. It depends
// on package schema only, never on the service.
package client
