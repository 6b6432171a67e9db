// Package schema is what sessionpin keeps in etcd: the keys below the
// registry's prefix, the values stored under them (a server's record, an
// operator's drain, an edge's pinned activity) with their decoding and
// validation, the rules for names and server URLs, and the lease TTL
// limits of a registration.
//
// Every program of sessionpin uses it: the Caddy edge (to read the
// registry and publish its activity), the discovery service (to write
// records), and the agent (to check its own record before sending it). It
// holds no I/O and imports nothing of etcd, so that nothing a reader of
// the registry needs pulls in the service.
package schema
