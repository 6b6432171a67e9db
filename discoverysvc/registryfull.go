package discoverysvc

import (
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// errRegistryFull is the error of a 503 for a write etcd refused because
// its database reached its quota (the NOSPACE alarm). It differs from
// registry_unavailable because nothing is down: reads, routing and lease
// renewals go on, and writes come back once an operator (or the embedded
// member's upkeep) frees space and disarms the alarm.
const errRegistryFull = "registry_full"

// registryFull reports whether err is etcd refusing a write for NOSPACE.
func registryFull(err error) bool {
	return errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrGRPCNoSpace)
}
