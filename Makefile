# sessionpin — see README.md.
GO      ?= go
BIN     := bin
GOFLAGS_BUILD := -trimpath

.PHONY: all build test vet run demo-client bench bench-go bench-registry bench-fleet bench-placement bench-history xcaddy chaos fuzz mutation lab lab-data-aware doclinks clean

all: build

## build: bin/caddy, bin/discoverysvc and the demo binaries
build:
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/caddy ./cmd/caddy
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/discoverysvc ./cmd/discoverysvc
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/demo-backend ./examples/backend
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/demo-client ./examples/client

## vet: gofmt and go vet
vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test: every test, under the race detector, with real etcd and real Caddy;
## then, without it, the allocation tests (the race detector allocates) and
## the gRPC transport test (the race detector flags a race inside Caddy's
## HTTP/2 upstream path that sessionpin code takes no part in)
test: vet doclinks
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run 'Alloc|TestPinnedGRPC' ./caddymodule/...

## run: the local multi-region demo (Ctrl-C stops everything)
run: build
	./examples/run.sh

## demo-client: walk the client flows against a running `make run`
## (ARGS=--fast shortens the Retry-After waits)
demo-client:
	$(GO) run ./examples/client $(ARGS)

## bench: Go micro-benchmarks, then the end-to-end comparison (writes BENCHMARKS.md)
bench: bench-go
	$(GO) run ./bench/e2e -out BENCHMARKS.md

## bench-go: the Go micro-benchmarks, written into BENCHMARKS.md's table
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./caddymodule/... ./discoverysvc/... | $(GO) run ./bench/gobench -out BENCHMARKS.md

## bench-registry: 10,000 heartbeating servers against discoverysvc and an edge watcher
bench-registry:
	$(GO) run ./bench/registry

## bench-placement: the placement simulation (bursts, a join, failover, a
## restart) against the classic rules; writes its BENCHMARKS.md section and
## docs/placement-bursts.png
bench-placement:
	$(GO) run ./bench/placement -out BENCHMARKS.md -png docs/placement-bursts.png

## bench-fleet: 1,000 /v1/events subscribers at 10,000 servers (memory per subscriber, write-to-event time)
bench-fleet:
	$(GO) run ./bench/fleet

## bench-history: 20 minutes (ARGS="-duration 60m" for longer) of accelerated registry writes (over 200,000 revisions) against
## discoverysvc's embedded etcd at default settings: etcd's size and discovery's memory level off
bench-history:
	$(GO) run ./bench/history $(ARGS)

## xcaddy: prove the checkout build line of docs/xcaddy.md works
xcaddy:
	./scripts/xcaddy-build.sh

## chaos: the long chaos run (a short form runs in make test)
chaos:
	SESSIONPIN_CHAOS=long $(GO) test -race -count=1 -timeout 30m -run TestChaos -v ./chaos/

## lab: the three-region lab (root; iproute2 and postgresql): every scenario
## but the soak and slow-start in rr, cookie and sessionpin, or SCENARIO=name[,name] and
## MODES=rr,cookie,sessionpin,sessionpin-blind (sessionpin with data-aware moves off);
## CARELESS=0.2 makes that share of the clients never set the critical flag;
## ROAM=0.3 makes that share travel between their region's edge and the next's;
## LAB_ARGS passes more flags (go run ./lab/cmd/lab -h lists them)
lab:
	$(GO) run ./lab/cmd/lab $(if $(SCENARIO),-scenario $(SCENARIO)) $(if $(MODES),-modes $(MODES)) $(if $(CARELESS),-careless $(CARELESS)) $(if $(ROAM),-roam $(ROAM)) $(LAB_ARGS)

## lab-data-aware: sessionpin beside sessionpin-blind in the scenarios that move
## clients, a fifth of the clients careless and half of them roaming (ROAM,
## so that moves cross regions, where the data is another copy); rewrites its section of BENCHMARKS.md
## and docs/lab-data-aware.png (about 10 minutes)
lab-data-aware:
	$(GO) run ./lab/cmd/lab -scenario rolling-restart,kill,cut-region,lag-step -modes sessionpin,sessionpin-blind \
	  -careless $(or $(CARELESS),0.2) -roam $(or $(ROAM),0.5) -compare-chart docs/lab-data-aware.png -benchmarks BENCHMARKS.md $(LAB_ARGS)

## fuzz: every fuzz target for a bounded time each
fuzz:
	./scripts/fuzz.sh $(or $(FUZZTIME),30s)

## mutation: mutation testing of the pure packages, efficacy per package (slow; not in make test)
mutation:
	./scripts/mutation.sh $(MUTATION_PKGS)

## doclinks: every relative link and #anchor in the Markdown files resolves
doclinks:
	./scripts/doclinks.sh

clean:
	rm -rf $(BIN) data
