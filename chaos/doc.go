// Package chaos holds the end-to-end reliability and security tests of
// sessionpin. It has no code of its own: its tests drive the real
// binaries (bin/caddy edges and bin/discoverysvc, built once by TestMain), a
// real 3-member embedded etcd cluster and real demo backends, and check the
// promise that a critical multi-step workflow never hops servers and that
// nobody can steer traffic where it should not go.
//
//	go test -race -run TestChaos -v ./chaos/                        # short form (make test)
//	SESSIONPIN_CHAOS=long go test -race -run TestChaos -v ./chaos/  # make chaos
package chaos
