# hotstandby: the two commands that matter are `make demo` and `make test`.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.7.0
# Every benchmark takes the benchmarks' lock, so that two never run at once
# (run the targets as they are; an outer flock on the same file would wait
# for ever).
LOCK         = flock /tmp/hotstandby-bench.lock
BENCH        = $(LOCK) env HOTSTANDBY_BENCH=1 $(GO) test ./bench -v -count=1 -timeout 60m

.PHONY: build test test-short test-repeat lint bench bench-ingest bench-semisync bench-apply bench-serve bench-waitpoint bench-keepup bench-clone bench-failover soak-failover demo demo-down clean deb

build:
	$(GO) build -o bin/hotstandby ./cmd/hotstandby

# The Debian package (packaging/mkdeb.sh, dpkg-deb): dist/hotstandby_*.deb
# with the static binary, the systemd unit, /etc/hotstandby/hotstandby.toml,
# hotstandby(8) and the maintainer scripts.
deb:
	GO=$(GO) bash packaging/mkdeb.sh dist

# Unit and integration tests (real MariaDB servers on 127.0.0.1), with the
# race detector.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 60m ./...

# The whole suite as CI runs it, N times in a row (default 10), each with a
# CPU-bound process beside it, as on a shared 2-core CI machine. Stops at the
# first failure; logs in $(REPEAT_DIR)/run-K.log.
N          ?= 10
REPEAT_DIR ?= /tmp/hotstandby-repeat
test-repeat:
	bash scripts/test-repeat.sh $(N) $(REPEAT_DIR)

# Unit tests only: no MariaDB needed.
test-short:
	$(GO) test -short -count=1 ./...

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt: files above need formatting" && exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: bench-ingest bench-semisync bench-apply

# Ingest of a 512 MiB binlog: hotstandby vs mariadb-binlog --raw vs a native
# replica's IO thread (HOTSTANDBY_BENCH_MB to change the size).
bench-ingest:
	$(BENCH) -run TestBenchIngest ./bench

# Master commits/s and latency with the agent, a native replica and a native
# replica with sync_relay_log=1 as the only semi-sync replica.
bench-semisync:
	$(BENCH) -run TestBenchSemiSync ./bench

# bench-semisync plus the agent with the master at
# rpl_semi_sync_master_wait_point=AFTER_COMMIT: what AFTER_SYNC costs.
bench-waitpoint:
	$(LOCK) env HOTSTANDBY_BENCH=1 HOTSTANDBY_BENCH_WAITPOINT=1 $(GO) test ./bench -v -count=1 -timeout 60m -run TestBenchSemiSync ./bench

# From nothing to a caught-up standby: hotstandby clone vs mariadb-dump | mariadb
# vs mydumper/myloader (Debian's mydumper package, installed here if missing),
# with the master's commit latency during each copy. HOTSTANDBY_BENCH_CLONE_MB
# (default 2048) and HOTSTANDBY_BENCH_CLONE_THREADS (default 4).
bench-clone:
	command -v mydumper >/dev/null || apt-get install -y mydumper
	$(BENCH) -run TestBenchClone ./bench

# Apply throughput of one recorded binlog: the agent in direct mode and in
# replica mode (4 optimistic threads behind its binlog server) vs a native
# serial and a native 4-thread optimistic replica of the master.
bench-apply:
	$(BENCH) -run TestBenchApply ./bench

# A native replica's IO thread reading the same binlog from the agent's
# binlog server and from the master (HOTSTANDBY_BENCH_MB, default 512).
bench-serve:
	$(BENCH) -run "TestBenchServe$$|TestBenchServeFanout" ./bench

# 16 OLTP clients at the master's full semi-sync rate for
# HOTSTANDBY_BENCH_KEEPUP_SECS (default 60): the standby's lag at the end
# (transactions, seconds of commits), the lag each second, and the drain
# until it has everything, for the agent in replica mode (4 optimistic
# threads), in direct mode, and a native 4-thread optimistic replica as the
# master's semi-sync replica; fresh servers for each.
bench-keepup:
	$(BENCH) -run TestBenchKeepUp ./bench

# Failover in the seeds' own setup (master, standby + agent, client in three
# network namespaces, keepalived moving a VIP; needs root, keepalived,
# iptables, iproute2): 30 kill -9s of everything on the master's host under 16
# clients writing through the VIP. Prints kill -> promotion, -> first write on
# the new master, -> VIP moved, the client-observed outage (p50, p99, max), the
# applier lag at each kill, OK'd commits lost (the test fails unless 0), and
# keepalived alone (no agent) measured in the same run, with the ratio.
bench-failover:
	$(LOCK) env HOTSTANDBY_FAILOVER_KILLS=30 $(GO) test ./agent -run '^TestKeepalivedFailover$$' -v -count=1 -timeout 60m

# The same with 100 kills: every commit OK'd through the VIP must be on the
# promoted standby every time.
soak-failover:
	$(LOCK) env HOTSTANDBY_FAILOVER_KILLS=100 $(GO) test ./agent -run '^TestKeepalivedFailover$$' -v -count=1 -timeout 180m

demo:
	bash scripts/demo.sh

demo-down:
	-bin/hotstandby sandbox down --dir demo

clean:
	rm -rf bin demo dist
