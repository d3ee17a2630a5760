#!/usr/bin/env bash
# bench.sh (`make bench`): measure `docker hangar load` against the floor
# on synthetic Hangar archives, and write the results to docs/benchmarks.md.
#
# It builds bin/docker-hangar and the tools of internal/cmd, generates a
# realistic archive (30 images over 4 projects, linux/amd64 and linux/arm64,
# shared base layers, attestations, a chart and a file; ~300 MiB), then, on
# loopback, each measured step against a FRESH registry process storing on
# disk (so cold is really cold, and the registry's disk writes are part of
# every figure):
#
#   floor -c 1   the simplest client, sequential (internal/cmd/hangar-floor)
#   floor -c 8   the same with the loader's default blob concurrency: the
#                reference a cold load is compared with
#   cold         bin/docker-hangar load, default flags, into an empty registry
#   warm         the same load again, into the registry cold filled
#
# each BENCH_REPEAT times (median reported; the order alternates between
# repetitions), with wall time, peak RSS and CPU of the client
# (internal/cmd/hangar-rusage) and CPU of the registry. Then: loads with -j 1,
# 4 and 20 into fresh registries, whose states must be identical to each
# other and to the floor's; and the peak RSS of cold loads of the same
# images at a tenth of the size and at ten times the size (the memory
# target: no higher for an archive ten times larger), and, for information,
# of 10x the images and entries at the same size.
#
# Then the rows of issue 13, each beside a floor of the same run:
#
#   latency      floor, cold and warm of the same archive through
#                internal/cmd/hangar-latency, a loopback proxy that delays
#                every request by BENCH_DELAY_MS before forwarding it (and
#                counts requests by method: the requests-per-image table)
#   harbor       where ../shared/harbor is present: a real Harbor (up.sh,
#                fresh instance per cold step), the floor with bearer tokens
#                and project creation (hangar-floor -u admin -harbor), a cold
#                load, warm re-loads of 10 images and of all
#   many images  floor, cold and warm of an archive of BENCH_MANY_IMAGES
#                small images; the same cold and warm once more through the
#                counting proxy (delay 0) for the request counts; and the
#                peak RSS of cold loads of BENCH_MANY_IMAGES and
#                BENCH_RSS_IMAGES images of the same small per-image size
#                (in-memory registries)
#   hangar       with HANGAR_BIN only: the real hangar, -j 1 and -j 4 (main
#                archive), -j 4 (latency, Harbor, many images), one run each
#
# Each archive and each registry's storage is deleted as soon as its step is
# done.
#
# Environment:
#   BENCH_SIZE_MB   total blob size of the archive in MiB (default 300)
#   BENCH_IMAGES    images (default 30); BENCH_PROJECTS projects (default 4)
#   BENCH_REPEAT    repetitions of each measurement (default 5)
#   BENCH_RSS_10X   0: skip the load of the archive 10x the size (default
#                   1; it needs about 21x BENCH_SIZE_MB of free disk space,
#                   6.2 GiB by default, for the archive and the registry)
#   BENCH_DELAY_MS  delay of the latency rows in ms (default 3; 0 skips them)
#   BENCH_LATENCY_REPEAT  repetitions of the latency rows (default
#                   BENCH_REPEAT: their ratio to the floor varied 0.90x-1.24x
#                   from run to run, too much for a median of 3)
#   BENCH_HARBOR    directory of Harbor's up.sh and down.sh (default
#                   ../shared/harbor beside the checkout; 0 skips Harbor)
#   BENCH_HARBOR_REPEAT   repetitions of the Harbor rows (default 1: each
#                   needs two fresh Harbor instances, ~10 s to start each)
#   BENCH_MANY_IMAGES, BENCH_MANY_PROJECTS, BENCH_MANY_SIZE_MB   the
#                   many-image archive (default 400 images, 200 projects,
#                   300 MiB; 0 images skips the many-image rows)
#   BENCH_MANY_REPEAT     repetitions of the many-image rows (default 3)
#   BENCH_RSS_IMAGES      images of the large archive of the RSS-against-
#                   images row (default 4000; 0 skips it, saving ~2 min)
#   BENCH_RSS_SIZE_MB     its blob size in MiB (default 60: the smallest
#                   layers are 1 KiB, so it comes to ~80 MiB); the
#                   BENCH_MANY_IMAGES reference gets the same size per image
#   HANGAR_BIN      the real hangar binary to compare with (never built
#                   here); without it the results quote issue 13's figures
#   BENCH_OUT       results file (default docs/benchmarks.md; - for stdout)
#   BENCH_TMPDIR    where the archives and registries go (default $TMPDIR
#                   or /tmp)
#   GO              go command (default go)
# Linux only (/proc). Everything listens on 127.0.0.1 and is removed on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
GO=${GO:-go}
SIZE_MB=${BENCH_SIZE_MB:-300}
IMAGES=${BENCH_IMAGES:-30}
PROJECTS=${BENCH_PROJECTS:-4}
REPEAT=${BENCH_REPEAT:-5}
RSS_10X=${BENCH_RSS_10X:-1}
OUT=${BENCH_OUT:-docs/benchmarks.md}
DELAY_MS=${BENCH_DELAY_MS:-3}
LAT_REPEAT=${BENCH_LATENCY_REPEAT:-$REPEAT}
HARBOR_SH=${BENCH_HARBOR:-$ROOT/../shared/harbor}
HARBOR_REPEAT=${BENCH_HARBOR_REPEAT:-1}
MANY_IMAGES=${BENCH_MANY_IMAGES:-400}
MANY_PROJECTS=${BENCH_MANY_PROJECTS:-200}
MANY_SIZE_MB=${BENCH_MANY_SIZE_MB:-300}
MANY_REPEAT=${BENCH_MANY_REPEAT:-3}
RSS_IMAGES=${BENCH_RSS_IMAGES:-4000}
RSS_SIZE_MB=${BENCH_RSS_SIZE_MB:-60}
HANGAR_BIN=${HANGAR_BIN:-}
CONC=8 # loader.DefaultOptions().BlobConcurrency
HARBOR_USER=admin HARBOR_PASSWORD=Harbor12345 # up.sh's admin account
WARM_SUBSET=10                                # images of Harbor's small warm re-load

say() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'bench.sh: error: %s\n' "$*" >&2
	exit 1
}
for v in SIZE_MB IMAGES PROJECTS REPEAT LAT_REPEAT HARBOR_REPEAT MANY_PROJECTS MANY_SIZE_MB MANY_REPEAT RSS_SIZE_MB; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive integer (got '${!v}')"
done
for v in DELAY_MS MANY_IMAGES RSS_IMAGES; do
	[[ ${!v} =~ ^(0|[1-9][0-9]*)$ ]] || die "BENCH_$v must be a non-negative integer (got '${!v}')"
done
((RSS_IMAGES == 0 || MANY_IMAGES > 0)) || die "BENCH_RSS_IMAGES needs BENCH_MANY_IMAGES (its reference)"
if [[ -n $HANGAR_BIN ]]; then
	[[ -x $HANGAR_BIN ]] || die "HANGAR_BIN=$HANGAR_BIN is not an executable"
	HANGAR_BIN=$(cd "$(dirname "$HANGAR_BIN")" && pwd)/$(basename "$HANGAR_BIN")
fi
HARBOR_WHY=""
if [[ $HARBOR_SH == 0 ]]; then
	HARBOR_WHY="skipped (BENCH_HARBOR=0)"
elif [[ ! -x $HARBOR_SH/up.sh || ! -x $HARBOR_SH/down.sh ]]; then
	HARBOR_WHY="not run: no Harbor at $HARBOR_SH (up.sh, down.sh)"
else
	HARBOR_SH=$(cd "$HARBOR_SH" && pwd)
	command -v ss >/dev/null 2>&1 || HARBOR_WHY="not run: ss (iproute2) is needed to find free ports"
fi
[[ $RSS_10X == [01] ]] || die "BENCH_RSS_10X must be 0 or 1 (got '$RSS_10X')"
[[ -r /proc/self/stat ]] || die "Linux /proc is needed"
command -v "$GO" >/dev/null 2>&1 || die "Go is needed ($GO not found)"

START_TIME=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
SECONDS=0

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/hangar-bench.XXXXXX")
REG_PID="" PROXY_PID="" HARBOR_RUN=""
cleanup() {
	local status=$? pid
	for pid in "$PROXY_PID" "$REG_PID"; do
		if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	[[ -z $HARBOR_RUN ]] || "$HARBOR_SH/down.sh" "$HARBOR_RUN" >/dev/null 2>&1 || true
	rm -rf "$WORK"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $RSS_10X == 1 ]]; then
	FREE_MB=$(df -Pk "$WORK" | awk 'NR == 2 { print int($4 / 1024) }')
	((FREE_MB >= SIZE_MB * 21)) || die "the archive 10x the size needs about $((SIZE_MB * 21)) MiB of free space in $WORK, $FREE_MB MiB are free (BENCH_RSS_10X=0 skips it, BENCH_TMPDIR moves it)"
fi

TOOLS=$WORK/tools
HANGAR=$ROOT/bin/docker-hangar
export DOCKER_CONFIG=$WORK/docker-config # never the user's ~/.docker
mkdir -p "$DOCKER_CONFIG" "$WORK/logs"

say "building bin/docker-hangar and the bench tools"
make --no-print-directory build GO="$GO" >&2
CGO_ENABLED=0 "$GO" build -trimpath -o "$TOOLS/" ./internal/cmd/hangar-registry ./internal/cmd/hangar-mkarchive ./internal/cmd/hangar-floor ./internal/cmd/hangar-rusage ./internal/cmd/hangar-latency

CLK_TCK=$(getconf CLK_TCK)

# reg_cpu prints the CPU seconds (user+system) the registry (the processes
# of REG_PIDS) used so far.
reg_cpu() {
	local pid stats=()
	for pid in $REG_PIDS; do stats+=("/proc/$pid/stat"); done
	awk -v hz="$CLK_TCK" '{ t += $14 + $15 } END { printf "%.3f\n", t / hz }' "${stats[@]}"
}

# wait_addr FILE PID NAME: wait until the process PID wrote its address to
# FILE (up to 10 s).
wait_addr() {
	local i
	for i in $(seq 100); do
		[[ -s $1 ]] && return 0
		kill -0 "$2" 2>/dev/null || die "$3 did not start: $(cat "$WORK/logs/$3.log")"
		sleep 0.1
	done
	die "$3 did not listen within 10 s"
}

# start_registry NAME [memory]: a fresh registry, on disk unless memory.
start_registry() {
	local name=$1 store=${2:-disk} args=()
	[[ $store == memory ]] || args=(-root "$WORK/registry-$name")
	rm -f "$WORK/registry.addr"
	"$TOOLS/hangar-registry" serve -addr 127.0.0.1:0 -addr-file "$WORK/registry.addr" "${args[@]}" >"$WORK/logs/registry-$name.log" 2>&1 &
	REG_PID=$! REG_PIDS=$!
	wait_addr "$WORK/registry.addr" "$REG_PID" "registry-$name"
	REGISTRY=$(<"$WORK/registry.addr")
	REG_CPU0=$(reg_cpu)
}

# stop_registry NAME: stop it (and the proxy in front of it) and remove its
# storage.
stop_registry() {
	local name=$1
	[[ -z $PROXY_PID ]] || stop_proxy
	kill "$REG_PID"
	wait "$REG_PID" 2>/dev/null || true
	REG_PID=""
	rm -rf "$WORK/registry-$name"
}

# start_proxy DELAY_MS: hangar-latency in front of the current registry;
# PROXY is its host:port.
start_proxy() {
	rm -f "$WORK/proxy.addr"
	"$TOOLS/hangar-latency" -target "http://$REGISTRY" -delay "${1}ms" -addr 127.0.0.1:0 -addr-file "$WORK/proxy.addr" >>"$WORK/logs/proxy.log" 2>&1 &
	PROXY_PID=$!
	wait_addr "$WORK/proxy.addr" "$PROXY_PID" proxy
	PROXY=$(<"$WORK/proxy.addr")
}
stop_proxy() {
	kill "$PROXY_PID"
	wait "$PROXY_PID" 2>/dev/null || true
	PROXY_PID=""
}
# counts LABEL: save the proxy's request counts as LABEL.counts (the first
# time only) and reset them.
counts() {
	local f=$WORK/$1.counts
	[[ -e $f ]] && f=$WORK/$1.counts.more
	"$TOOLS/hangar-latency" counts -reset "$PROXY" >"$f"
}

# mark_registry LABEL: append the registry CPU used since the last mark.
mark_registry() {
	local now
	now=$(reg_cpu)
	awk -v a="$REG_CPU0" -v b="$now" 'BEGIN { printf "%.3f\n", b - a }' >>"$WORK/$1.regcpu"
	REG_CPU0=$now
}

# measure LABEL COMMAND...: run it under hangar-rusage, appending "wall
# maxrss_kib user sys status" to $WORK/LABEL.m; its output goes to a log.
measure() {
	local label=$1 log
	shift
	log=$WORK/logs/$label.0.log
	[[ -e $WORK/$label.m ]] && log=$WORK/logs/$label.$(wc -l <"$WORK/$label.m").log
	# start every step with the disk settled: no writeback of an earlier
	# step (its registry's blobs, a deleted archive) runs during this one
	sync
	if ! "$TOOLS/hangar-rusage" -o "$WORK/$label.m" -- "$@" >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		if [[ ${MEASURE_SOFT:-0} == 1 ]]; then # a failure to report, not to stop for
			echo "    $label failed (exit status $(tail -n 1 "$WORK/$label.m" | cut -d' ' -f5)): $*" >&2
			return 0
		fi
		die "$label failed: $*"
	fi
	printf '    %-12s %s\n' "$label" "$(tail -n 1 "$WORK/$label.m" | awk '{ printf "%6.2fs  %5.1f MiB RSS  %5.2fs CPU", $1, $2 / 1024, $3 + $4 }')" >&2
}

# median: the median of the numbers on stdin.
median() {
	sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
wall() { cut -d' ' -f1 "$WORK/$1.m" | median; }                                  # seconds
rss() { cut -d' ' -f2 "$WORK/$1.m" | median | awk '{ printf "%.1f", $1 / 1024 }'; } # MiB
cpu() { awk '{ print $3 + $4 }' "$WORK/$1.m" | median; }                         # client CPU s
regcpu() { median <"$WORK/$1.regcpu"; }                                           # registry CPU s
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
# report_field FILE FIELD: a top-level number of a --report JSON file.
report_field() { sed -n "s/^  \"$2\": \\([0-9.]*\\).*/\\1/p" "$1"; }
mib() { awk -v n="$1" 'BEGIN { printf "%.1f MiB", n / 1048576 }'; }

# load LABEL ARCHIVE REPORT [FLAGS...]: a measured load (standalone plugin
# binary, temporary DOCKER_CONFIG) into the current registry (DEST, when
# set: a proxy or Harbor).
load() {
	local label=$1 archive=$2 report=$3
	shift 3
	measure "$label" "$HANGAR" load -s "$archive" -d "${DEST:-$REGISTRY}" --report "$report" -o "$WORK/load-failed.txt" "$@"
}
state() { "$TOOLS/hangar-registry" state "http://$REGISTRY" >"$WORK/$1.state"; }
# floor LABEL ARCHIVE [FLAGS...]: a measured floor -c CONC into DEST or the
# current registry.
floor() {
	local label=$1 archive=$2
	shift 2
	measure "$label" "$TOOLS/hangar-floor" -s "$archive" -d "${DEST:-$REGISTRY}" -c "$CONC" "$@"
}
# hangar_load LABEL ARCHIVE JOBS: the real hangar (HANGAR_BIN), as the lab
# runs it, with its HOME, runtime and temporary directories under WORK; a
# failure is reported, not fatal.
hangar_load() {
	local label=$1 archive=$2 jobs=$3 hw=$WORK/hangar-work
	mkdir -p "$hw/home/run" "$hw/tmp"
	(cd "$hw" && HOME=$hw/home XDG_RUNTIME_DIR=$hw/home/run TMPDIR=$hw/tmp MEASURE_SOFT=1 measure "$label" "$HANGAR_BIN" load -s "$archive" -d "${DEST:-$REGISTRY}" -j "$jobs" --tls-verify=false --insecure-policy --skip-login -o "$hw/failed.txt")
	rm -rf "$hw"
}

# --- the archive ---------------------------------------------------------
ARCHIVE=$WORK/bench.zip
say "generating the archive: $IMAGES images, $PROJECTS projects, ~$SIZE_MB MiB"
GEN_START=$SECONDS
ARCHIVE_INFO=$("$TOOLS/hangar-mkarchive" -o "$ARCHIVE" -images "$IMAGES" -projects "$PROJECTS" -size "$SIZE_MB")
echo "    $ARCHIVE_INFO (in $((SECONDS - GEN_START)) s)" >&2
ARCHIVE_INFO=${ARCHIVE_INFO#wrote "$ARCHIVE" (synthetic): }

# --- floor, cold, warm -----------------------------------------------------
floor_seq() {
	start_registry floor-seq
	measure floor-seq "$TOOLS/hangar-floor" -s "$ARCHIVE" -d "$REGISTRY" -c 1
	mark_registry floor-seq
	stop_registry floor-seq
}
floor_conc() {
	start_registry floor-conc
	measure floor-conc "$TOOLS/hangar-floor" -s "$ARCHIVE" -d "$REGISTRY" -c "$CONC"
	mark_registry floor-conc
	[[ -e $WORK/floor.state ]] || state floor
	stop_registry floor-conc
}
cold_warm() {
	local r=$1
	start_registry cold
	load cold "$ARCHIVE" "$WORK/cold-$r.json"
	mark_registry cold
	[[ -e $WORK/cold.state ]] || state cold
	load warm "$ARCHIVE" "$WORK/warm-$r.json"
	mark_registry warm
	stop_registry cold
}
for r in $(seq "$REPEAT"); do
	say "run $r of $REPEAT"
	if ((r % 2)); then
		floor_seq
		floor_conc
		cold_warm "$r"
	else
		cold_warm "$r"
		floor_conc
		floor_seq
	fi
done

# --- -j consistency --------------------------------------------------------
say "consistency: -j 1, 4 and 20 into fresh registries"
for j in 1 4 20; do
	start_registry "j$j"
	load "j$j" "$ARCHIVE" "$WORK/j$j.json" -j "$j"
	mark_registry "j$j"
	state "j$j"
	stop_registry "j$j"
done
TAGS=$(wc -l <"$WORK/j1.state")
CONSISTENT=yes
for s in j4 j20 floor cold; do
	if ! cmp -s "$WORK/j1.state" "$WORK/$s.state"; then
		CONSISTENT=no
		echo "registry state after $s differs from -j 1:" >&2
		diff "$WORK/j1.state" "$WORK/$s.state" >&2 || true
	fi
done
echo "    registry states identical: $CONSISTENT ($TAGS tags)" >&2

# --- latency ---------------------------------------------------------------
# Every request delayed DELAY_MS by hangar-latency in front of a fresh
# registry; the proxy's counts of the first run give the requests per image.
lat_floor() {
	start_registry lat-floor
	start_proxy "$DELAY_MS"
	DEST=$PROXY floor lat-floor "$ARCHIVE"
	mark_registry lat-floor
	counts lat-floor
	stop_registry lat-floor
}
lat_cold_warm() {
	local r=$1
	start_registry lat-cold
	start_proxy "$DELAY_MS"
	DEST=$PROXY load lat-cold "$ARCHIVE" "$WORK/lat-cold-$r.json"
	mark_registry lat-cold
	counts lat-cold
	DEST=$PROXY load lat-warm "$ARCHIVE" "$WORK/lat-warm-$r.json"
	mark_registry lat-warm
	counts lat-warm
	stop_registry lat-cold
}
if ((DELAY_MS > 0)); then
	for r in $(seq "$LAT_REPEAT"); do
		say "latency: every request delayed $DELAY_MS ms, run $r of $LAT_REPEAT"
		if ((r % 2)); then
			lat_floor
			lat_cold_warm "$r"
		else
			lat_cold_warm "$r"
			lat_floor
		fi
	done
	if [[ -n $HANGAR_BIN ]]; then
		say "latency: the real hangar -j 4"
		start_registry lat-hangar
		start_proxy "$DELAY_MS"
		DEST=$PROXY hangar_load lat-hangar-j4 "$ARCHIVE" 4
		mark_registry lat-hangar-j4
		stop_registry lat-hangar
	fi
fi

# --- real Harbor -----------------------------------------------------------
# A fresh Harbor (../shared/harbor/up.sh, new DIR: empty database, storage
# and cache) for every cold step: deleting repositories through Harbor's API
# leaves the blobs in its registry's storage, so a load after it is not
# cold. The floor creates the projects as the load does (both timed), then
# pushes with bearer tokens. Server CPU: harbor-core and its registry
# (postgres and redis not counted).
HARBOR_PORT=""
pick_harbor_port() { # PORT..PORT+4: core, registry, postgres, redis, (jobservice)
	local try p q ok
	for try in $(seq 50); do
		p=$((20000 + RANDOM % 30000)) ok=1
		for q in $p $((p + 1)) $((p + 2)) $((p + 3)) $((p + 4)); do
			if ss -ltnH "sport = :$q" | grep -q .; then ok=0; fi
		done
		if ((ok)); then
			HARBOR_PORT=$p
			return
		fi
	done
	die "no 5 free consecutive ports for Harbor after $try tries"
}
harbor_up() {
	local name=$1 i
	HARBOR_RUN=$WORK/harbor-$name
	for i in 1 2 3; do # the ports may have been taken meanwhile
		if REG_PORT=$((HARBOR_PORT + 1)) PG_PORT=$((HARBOR_PORT + 2)) REDIS_PORT=$((HARBOR_PORT + 3)) JOB_PORT=$((HARBOR_PORT + 4)) \
			"$HARBOR_SH/up.sh" "$HARBOR_RUN" "$HARBOR_PORT" >"$WORK/logs/harbor-$name.log" 2>&1; then
			break
		fi
		"$HARBOR_SH/down.sh" "$HARBOR_RUN" >/dev/null 2>&1 || true
		rm -rf "$HARBOR_RUN"
		((i < 3)) || die "harbor did not start: $(tail -n 5 "$WORK/logs/harbor-$name.log")"
		pick_harbor_port
	done
	DEST=127.0.0.1:$HARBOR_PORT
	printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$DEST" "$(printf '%s:%s' "$HARBOR_USER" "$HARBOR_PASSWORD" | base64)" >"$DOCKER_CONFIG/config.json"
	REG_PIDS=$(awk '$1 == "core" || $1 == "registry" { print $2 }' "$HARBOR_RUN/pids")
	REG_CPU0=$(reg_cpu)
}
harbor_down() {
	"$HARBOR_SH/down.sh" "$HARBOR_RUN" >>"$WORK/logs/harbor-down.log" 2>&1
	rm -rf "$HARBOR_RUN"
	HARBOR_RUN="" DEST=""
	rm -f "$DOCKER_CONFIG/config.json"
}
h_floor() {
	harbor_up floor
	HANGAR_FLOOR_PASSWORD=$HARBOR_PASSWORD floor h-floor "$ARCHIVE" -u "$HARBOR_USER" -harbor
	mark_registry h-floor
	harbor_down
}
h_cold_warm() {
	local r=$1 i
	harbor_up cold
	load h-cold "$ARCHIVE" "$WORK/h-cold-$r.json"
	mark_registry h-cold
	if [[ ! -e $WORK/warm-subset.txt ]]; then
		sed -n 's/^      "source": "\(.*\)",$/\1/p' "$WORK/h-cold-$r.json" | head -n "$WARM_SUBSET" >"$WORK/warm-subset.txt"
	fi
	for i in 1 2 3; do
		load h-warm10 "$ARCHIVE" "$WORK/h-warm10.json" -f "$WORK/warm-subset.txt"
		mark_registry h-warm10
	done
	if ((r == 1)); then
		load h-warm "$ARCHIVE" "$WORK/h-warm.json"
		mark_registry h-warm
	fi
	harbor_down
}
if [[ -z $HARBOR_WHY ]]; then
	pick_harbor_port
	for r in $(seq "$HARBOR_REPEAT"); do
		say "real Harbor ($HARBOR_SH), run $r of $HARBOR_REPEAT: two fresh instances from 127.0.0.1:$HARBOR_PORT"
		if ((r % 2)); then
			h_floor
			h_cold_warm "$r"
		else
			h_cold_warm "$r"
			h_floor
		fi
	done
	if [[ -n $HANGAR_BIN ]]; then
		say "real Harbor: the real hangar -j 4"
		harbor_up hangar
		hangar_load h-hangar-j4 "$ARCHIVE" 4
		mark_registry h-hangar-j4
		harbor_down
	fi
else
	say "real Harbor: $HARBOR_WHY"
fi

# --- the real hangar on the main archive -------------------------------------
if [[ -n $HANGAR_BIN ]]; then
	for j in 1 4; do
		say "the real hangar -j $j ($HANGAR_BIN)"
		start_registry "hangar-j$j"
		hangar_load "hangar-j$j" "$ARCHIVE" "$j"
		mark_registry "hangar-j$j"
		stop_registry "hangar-j$j"
	done
fi
rm -f "$ARCHIVE" # every later step has its own archive

# --- RSS against archive size ----------------------------------------------
say "peak RSS: same images, a tenth of the size"
ARCHIVE_SMALL=$WORK/bench-tenth.zip
"$TOOLS/hangar-mkarchive" -q -o "$ARCHIVE_SMALL" -images "$IMAGES" -projects "$PROJECTS" -size $(((SIZE_MB + 9) / 10))
start_registry tenth
load tenth "$ARCHIVE_SMALL" "$WORK/tenth.json"
mark_registry tenth
stop_registry tenth
rm -f "$ARCHIVE_SMALL"

X10S_INFO="not run: BENCH_RSS_10X=0"
if [[ $RSS_10X == 1 ]]; then
	say "peak RSS: same images, 10x the size (~$((SIZE_MB * 10)) MiB)"
	ARCHIVE10=$WORK/bench-x10-size.zip
	GEN_START=$SECONDS
	X10S_INFO=$("$TOOLS/hangar-mkarchive" -o "$ARCHIVE10" -images "$IMAGES" -projects "$PROJECTS" -size $((SIZE_MB * 10)))
	X10S_INFO=${X10S_INFO#wrote "$ARCHIVE10" (synthetic): }
	echo "    $X10S_INFO (in $((SECONDS - GEN_START)) s)" >&2
	start_registry x10-size
	load x10-size "$ARCHIVE10" "$WORK/x10-size.json"
	mark_registry x10-size
	stop_registry x10-size
	rm -f "$ARCHIVE10"
fi

say "peak RSS (informative): $((IMAGES * 10)) images, same size (10x the index entries, manifests and blobs)"
ARCHIVE10=$WORK/bench-x10-entries.zip
X10E_INFO=$("$TOOLS/hangar-mkarchive" -o "$ARCHIVE10" -images $((IMAGES * 10)) -projects "$PROJECTS" -size "$SIZE_MB")
X10E_INFO=${X10E_INFO#wrote "$ARCHIVE10" (synthetic): }
start_registry x10-entries
load x10-entries "$ARCHIVE10" "$WORK/x10-entries.json"
mark_registry x10-entries
stop_registry x10-entries
rm -f "$ARCHIVE10"

# --- many images -------------------------------------------------------------
many_floor() {
	start_registry many-floor
	floor many-floor "$ARCHIVE_MANY"
	mark_registry many-floor
	[[ -e $WORK/many-floor.state ]] || state many-floor
	stop_registry many-floor
}
many_cold_warm() {
	local r=$1
	start_registry many-cold
	load many-cold "$ARCHIVE_MANY" "$WORK/many-cold-$r.json"
	mark_registry many-cold
	[[ -e $WORK/many-cold.state ]] || state many-cold
	load many-warm "$ARCHIVE_MANY" "$WORK/many-warm-$r.json"
	mark_registry many-warm
	stop_registry many-cold
}
MANY_INFO="not run: BENCH_MANY_IMAGES=0"
MANY_CONSISTENT=""
if ((MANY_IMAGES > 0)); then
	ARCHIVE_MANY=$WORK/bench-many.zip
	say "many images: generating $MANY_IMAGES images over $MANY_PROJECTS projects, ~$MANY_SIZE_MB MiB"
	MANY_INFO=$("$TOOLS/hangar-mkarchive" -o "$ARCHIVE_MANY" -images "$MANY_IMAGES" -projects "$MANY_PROJECTS" -size "$MANY_SIZE_MB")
	MANY_INFO=${MANY_INFO#wrote "$ARCHIVE_MANY" (synthetic): }
	echo "    $MANY_INFO" >&2
	for r in $(seq "$MANY_REPEAT"); do
		say "many images, run $r of $MANY_REPEAT"
		if ((r % 2)); then
			many_floor
			many_cold_warm "$r"
		else
			many_cold_warm "$r"
			many_floor
		fi
	done
	MANY_CONSISTENT=yes
	if ! cmp -s "$WORK/many-floor.state" "$WORK/many-cold.state"; then
		MANY_CONSISTENT=no
		echo "many images: registry state after the cold load differs from the floor's:" >&2
		diff "$WORK/many-floor.state" "$WORK/many-cold.state" | head -n 20 >&2 || true
	fi
	echo "    registry states of floor and cold identical: $MANY_CONSISTENT ($(wc -l <"$WORK/many-floor.state") tags)" >&2
	say "many images: cold and warm through the counting proxy (no delay; counts only)"
	start_registry many-count
	start_proxy 0
	DEST=$PROXY load many-count-cold "$ARCHIVE_MANY" "$WORK/many-count-cold.json"
	counts many-count-cold
	DEST=$PROXY load many-count-warm "$ARCHIVE_MANY" "$WORK/many-count-warm.json"
	counts many-count-warm
	stop_registry many-count
	if [[ -n $HANGAR_BIN ]]; then
		say "many images: the real hangar -j 4"
		start_registry many-hangar
		hangar_load many-hangar-j4 "$ARCHIVE_MANY" 4
		mark_registry many-hangar-j4
		stop_registry many-hangar
	fi
	rm -f "$ARCHIVE_MANY"
fi

# Peak RSS against the number of images: MANY_IMAGES and RSS_IMAGES images
# of the same size per image, into in-memory registries (the client's RSS is
# what is measured; memory keeps the large one's time down).
RSS_A_INFO="" RSS_B_INFO="not run: BENCH_RSS_IMAGES=0"
if ((RSS_IMAGES > 0)); then
	RSS_A_MB=$(((RSS_SIZE_MB * MANY_IMAGES + RSS_IMAGES - 1) / RSS_IMAGES))
	for x in a b; do
		if [[ $x == a ]]; then n=$MANY_IMAGES mb=$RSS_A_MB; else n=$RSS_IMAGES mb=$RSS_SIZE_MB; fi
		say "peak RSS against images: $n small images (~$mb MiB), in-memory registry"
		f=$WORK/bench-rss-$x.zip
		info=$("$TOOLS/hangar-mkarchive" -o "$f" -images "$n" -projects "$MANY_PROJECTS" -size "$mb")
		info=${info#wrote "$f" (synthetic): }
		echo "    $info" >&2
		if [[ $x == a ]]; then RSS_A_INFO=$info; else RSS_B_INFO=$info; fi
		start_registry "rss-$x" memory
		load "rss-$x" "$f" "$WORK/rss-$x.json"
		mark_registry "rss-$x"
		stop_registry "rss-$x"
		# the floor's peak RSS for the same archive, for comparison
		start_registry "rss-$x-floor" memory
		floor "rss-$x-floor" "$f"
		mark_registry "rss-$x-floor"
		stop_registry "rss-$x-floor"
		rm -f "$f"
	done
fi

# --- results ---------------------------------------------------------------
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$SECONDS
FLOOR=$(wall floor-conc)
# Ratios within each run (the steps of a run are adjacent in time, so they
# share the machine's load), and their median: the figures the targets use.
per_run() { # per_run A B: "a1/b1 a2/b2 ..." ratios of run r's lines
	paste -d' ' <(cut -d' ' -f1 "$WORK/$1.m") <(cut -d' ' -f1 "$WORK/$2.m") | awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), ($2 > 0 ? $1 / $2 : 0) }'
}
COLD_RUNS=$(per_run cold floor-conc)
WARM_RUNS=$(per_run warm cold)
COLD_RATIO=$(tr ' ' '\n' <<<"$COLD_RUNS" | median | awk '{ printf "%.2f", $1 }')
WARM_RATIO=$(tr ' ' '\n' <<<"$WARM_RUNS" | median)
# The 64 MiB target covers every load but the informative 10x-entries one.
RSS_MAX=$(for l in cold warm tenth x10-size j1 j4 j20; do [[ -e $WORK/$l.m ]] && cut -d' ' -f2 "$WORK/$l.m"; done | sort -n | tail -n 1 | awk '{ printf "%.1f", $1 / 1024 }')
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "**missed**" }'; }
FLOOR_LINE=$(grep -h '^floor' "$WORK"/logs/floor-conc.0.log)
FLOOR_UP=$(sed -n 's/.*uploaded \([0-9]*\) bytes.*/\1/p' <<<"$FLOOR_LINE")
FLOOR_MOUNT=$(sed -n 's/.*mounted \([0-9]*\) bytes.*/\1/p' <<<"$FLOOR_LINE")
FLOOR_REQ=$(sed -n 's/.* \([0-9]*\) requests (.*/\1/p' <<<"$FLOOR_LINE")
bytes_row() { # bytes_row REPORT
	printf '%s / %s / %s' "$(mib "$(report_field "$1" bytesUploaded)")" "$(mib "$(report_field "$1" bytesMounted)")" "$(mib "$(report_field "$1" bytesPresent)")"
}
row() { # row LABEL NAME NOTE BYTES
	printf '| %s | %.2f | %s | %s | %.2f | %.2f | %s |\n' "$2" "$(wall "$1")" "$3" "$(rss "$1")" "$(cpu "$1")" "$(regcpu "$1")" "$4"
}
TABLE_TMP=$WORK/table.md
{
	echo '| Step | Wall s (median) | vs | Client peak RSS MiB | Client CPU s | Registry CPU s | Uploaded / mounted / present |'
	echo '|---|---:|---|---:|---:|---:|---|'
	row floor-seq "Floor, sequential (\`hangar-floor -c 1\`)" "$(ratio "$(wall floor-seq)" "$FLOOR")x floor" "$(mib "$FLOOR_UP") / $(mib "$FLOOR_MOUNT") / 0 MiB"
	row floor-conc "**Floor**, $CONC in flight (\`hangar-floor -c $CONC\`)" "1.00x floor" "$(mib "$FLOOR_UP") / $(mib "$FLOOR_MOUNT") / 0 MiB"
	row cold "**Cold load**, default flags" "**${COLD_RATIO}x floor**" "$(bytes_row "$WORK/cold-1.json")"
	row warm "**Warm re-load**, default flags" "**$(awk -v r="$WARM_RATIO" 'BEGIN { printf "%.1f%%", r * 100 }') of cold**" "$(bytes_row "$WORK/warm-1.json")"
	for j in 1 4 20; do
		row "j$j" "Cold load, \`-j $j\` (1 run)" "$(ratio "$(wall "j$j")" "$FLOOR")x floor" "$(bytes_row "$WORK/j$j.json")"
	done
	row tenth "Cold load, same images, 1/10 of the size (1 run)" "-" "$(bytes_row "$WORK/tenth.json")"
	if [[ -e $WORK/x10-size.m ]]; then
		row x10-size "**Cold load, same images, 10x the size** (1 run)" "-" "$(bytes_row "$WORK/x10-size.json")"
	fi
	row x10-entries "Cold load, 10x images and entries, same size (1 run, informative)" "-" "$(bytes_row "$WORK/x10-entries.json")"
} >"$TABLE_TMP"

RAW=$(for l in floor-seq floor-conc cold warm j1 j4 j20 tenth x10-size x10-entries lat-floor lat-cold lat-warm h-floor h-cold h-warm10 h-warm many-floor many-cold many-warm many-count-cold many-count-warm rss-a-floor rss-a rss-b-floor rss-b hangar-j1 hangar-j4 lat-hangar-j4 h-hangar-j4 many-hangar-j4; do
	[[ -e $WORK/$l.m ]] || continue
	printf '%-15s' "$l"
	awk '{ printf "  %.2fs/%.1fMiB", $1, $2 / 1024 }' "$WORK/$l.m"
	echo
done)

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
GOVERSION=$("$GO" version | cut -d' ' -f3-)
VERSION=$("$HANGAR" --version 2>/dev/null | awk '{ print $NF }')
X10S_MEASURED="not run (BENCH_RSS_10X=0)"
X10S_VERDICT="not run"
# "No higher": within 10% (and at least 2 MiB) of the reference peak.
limit() { awk -v c="$1" 'BEGIN { l = c * 1.10; if (l < c + 2) l = c + 2; printf "%.1f", l }'; }
X10_LIMIT=$(limit "$(rss cold)")
BYTES_LIMIT=$(limit "$(rss tenth)")
if [[ -e $WORK/x10-size.m ]]; then
	X10S_MEASURED="10x the size: $(rss x10-size) MiB, full size: $(rss cold) MiB"
	X10S_VERDICT="$(verdict "$(rss x10-size)" "$X10_LIMIT") (limit $X10_LIMIT MiB: cold + 10%)"
fi

# --- the rows of issue 13 ----------------------------------------------------
has() { [[ -s $WORK/$1.m ]]; }
pct() { awk -v r="$1" 'BEGIN { printf "%.1f%%", r * 100 }'; }
med2() { tr ' ' '\n' <<<"$1" | median | awk '{ printf "%.2f", $1 }'; } # median of a per_run list
runs_x() { tr ' ' '\n' <<<"$1" | awk '{ printf "%s%.2fx", (NR > 1 ? ", " : ""), $1 }'; }
runs_pct() { tr ' ' '\n' <<<"$1" | awk '{ printf "%s%.1f%%", (NR > 1 ? ", " : ""), $1 * 100 }'; }
lt_verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "met" : "**missed**" }'; }
# exit_note LABEL: "" or a failure note for a single run
exit_note() { awk '$5 != 0 { printf " (**failed**: exit status %d)", $5 }' "$WORK/$1.m"; }
# floor_bytes LABEL: uploaded / mounted / present of a floor run's log.
floor_bytes() {
	local line
	line=$(grep -h '^floor' "$WORK/logs/$1.0.log")
	printf '%s / %s / 0 MiB' "$(mib "$(sed -n 's/.*uploaded \([0-9]*\) bytes.*/\1/p' <<<"$line")")" "$(mib "$(sed -n 's/.*mounted \([0-9]*\) bytes.*/\1/p' <<<"$line")")"
}
floor_field() { grep -h '^floor' "$WORK/logs/$1.0.log" | sed -n "s/.* \\([0-9]*\\) $2.*/\\1/p"; }
images_of() { grep -c '^      "source": ' "$1"; } # images of a --report file
# count_row ARCHIVE STEP COUNTS IMAGES: one line of the requests-per-image table
count_row() {
	awk -v a="$1" -v s="$2" -v n="$4" '
		{ c[$1] = $2; total += $2 }
		END {
			printf "| %s | %s | %d | %d |", a, s, n, total
			split("HEAD GET POST PUT PATCH", m, " ")
			for (i = 1; i <= 5; i++) { printf " %.2f |", c[m[i]] / n; delete c[m[i]] }
			other = ""
			for (k in c) other = other sprintf("%s%s %.2f", (other == "" ? "" : ", "), k, c[k] / n)
			printf " %s |\n", (other == "" ? "-" : other)
		}' "$3"
}
# ours_row LABEL NAME OURS FLOOR: a row of the real hangar's table
ours_row() {
	printf '| %s | %.2f%s | %sx | %sx | %s |\n' "$2" "$(wall "$1")" "$(exit_note "$1")" "$(ratio "$(wall "$1")" "$(wall "$3")")" "$(ratio "$(wall "$1")" "$(wall "$4")")" "$(rss "$1")"
}
TARGETS_TMP=$WORK/targets.md
: >"$TARGETS_TMP"

LAT_TABLE="Not run (BENCH_DELAY_MS=0)."
if has lat-cold; then
	LAT_RUNS=$(per_run lat-cold lat-floor)
	LAT_RATIO=$(med2 "$LAT_RUNS")
	LAT_WARM_RUNS=$(per_run lat-warm lat-cold)
	LAT_WARM=$(tr ' ' '\n' <<<"$LAT_WARM_RUNS" | median)
	LAT_FLOOR_REQ=$(awk '{ t += $2 } END { print t }' "$WORK/lat-floor.counts")
	LAT_FLOOR_OWN=$(sed -n 's/.* \([0-9]*\) requests (.*/\1/p' "$WORK/logs/lat-floor.0.log")
	LAT_TABLE=$(
		echo '| Step | Wall s (median) | vs | Client peak RSS MiB | Client CPU s | Registry CPU s | Uploaded / mounted / present |'
		echo '|---|---:|---|---:|---:|---:|---|'
		row lat-floor "**Floor**, $CONC in flight, through the proxy" "1.00x floor" "$(floor_bytes lat-floor)"
		row lat-cold "**Cold load**, default flags, through the proxy" "**${LAT_RATIO}x floor**" "$(bytes_row "$WORK/lat-cold-1.json")"
		row lat-warm "Warm re-load, through the proxy" "$(pct "$LAT_WARM") of cold" "$(bytes_row "$WORK/lat-warm-1.json")"
		if has lat-hangar-j4; then
			row lat-hangar-j4 "The real hangar, \`-j 4\`, through the proxy (1 run)$(exit_note lat-hangar-j4)" "$(ratio "$(wall lat-hangar-j4)" "$(wall lat-floor)")x floor" "-"
		fi
	)
	echo "| Every request delayed $DELAY_MS ms: cold load <= 1.10x the floor through the same proxy | ${LAT_RATIO}x (median of the runs' $(runs_x "$LAT_RUNS")) | $(verdict "$LAT_RATIO" 1.10) |" >>"$TARGETS_TMP"
fi

HARBOR_TABLE="${HARBOR_WHY:-not run}."
if has h-cold; then
	H_RUNS=$(per_run h-cold h-floor)
	H_RATIO=$(med2 "$H_RUNS")
	H_WARM10=$(wall h-warm10 | awk '{ printf "%.2f", $1 }')
	H_FLOOR_UP=$(sed -n 's/.*uploaded \([0-9]*\) bytes.*/\1/p' "$WORK/logs/h-floor.0.log")
	H_COLD_NOTE=""
	for f in "$WORK"/h-cold-*.json; do
		if [[ $(report_field "$f" bytesUploaded) != "$H_FLOOR_UP" ]]; then
			H_COLD_NOTE=" (**not cold**: a cold load uploaded $(mib "$(report_field "$f" bytesUploaded)"), the floor $(mib "$H_FLOOR_UP"))"
		fi
	done
	HARBOR_TABLE=$(
		echo '| Step | Wall s (median) | vs | Client peak RSS MiB | Client CPU s | Harbor CPU s (core + registry) | Uploaded / mounted / present |'
		echo '|---|---:|---|---:|---:|---:|---|'
		row h-floor "**Floor** with tokens, creating the projects (\`hangar-floor -c $CONC -u admin -harbor\`)" "1.00x floor" "$(floor_bytes h-floor)"
		row h-cold "**Cold load**, default flags$H_COLD_NOTE" "**${H_RATIO}x floor**" "$(bytes_row "$WORK/h-cold-1.json")"
		row h-warm10 "**Warm re-load of $WARM_SUBSET images** (\`-f\`, $(wc -l <"$WORK/h-warm10.m") runs)" "**${H_WARM10} s**" "$(bytes_row "$WORK/h-warm10.json")"
		row h-warm "Warm re-load, all images (1 run)" "$(awk -v a="$(wall h-warm)" -v b="$(cut -d' ' -f1 "$WORK/h-cold.m" | head -n 1)" 'BEGIN { printf "%.1f%%", a / b * 100 }') of cold" "$(bytes_row "$WORK/h-warm.json")"
		if has h-hangar-j4; then
			row h-hangar-j4 "The real hangar, \`-j 4\` (1 run)$(exit_note h-hangar-j4)" "$(ratio "$(wall h-hangar-j4)" "$(wall h-floor)")x floor" "-"
		fi
	)
	H_TOKENS=$(floor_field h-floor "token requests")
	H_API=$(floor_field h-floor "harbor api requests")
	echo "| Real Harbor: cold load <= 1.20x the floor with tokens and project creation | ${H_RATIO}x (median of the runs' $(runs_x "$H_RUNS"))$H_COLD_NOTE | $(verdict "$H_RATIO" 1.20) |" >>"$TARGETS_TMP"
	echo "| Real Harbor: warm re-load of $WARM_SUBSET images < 0.5 s | ${H_WARM10} s (median of $(wc -l <"$WORK/h-warm10.m") runs: $(cut -d' ' -f1 "$WORK/h-warm10.m" | awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 }')) | $(lt_verdict "$H_WARM10" 0.5) |" >>"$TARGETS_TMP"
fi

MANY_TABLE="Not run (BENCH_MANY_IMAGES=0)."
if has many-cold; then
	MANY_RUNS=$(per_run many-cold many-floor)
	MANY_RATIO=$(med2 "$MANY_RUNS")
	MANY_WARM_RUNS=$(per_run many-warm many-cold)
	MANY_WARM=$(tr ' ' '\n' <<<"$MANY_WARM_RUNS" | median)
	MANY_TABLE=$(
		echo '| Step | Wall s (median) | vs | Client peak RSS MiB | Client CPU s | Registry CPU s | Uploaded / mounted / present |'
		echo '|---|---:|---|---:|---:|---:|---|'
		row many-floor "**Floor**, $CONC in flight" "1.00x floor" "$(floor_bytes many-floor)"
		row many-cold "**Cold load**, default flags" "**${MANY_RATIO}x floor**" "$(bytes_row "$WORK/many-cold-1.json")"
		row many-warm "**Warm re-load**, default flags" "**$(pct "$MANY_WARM") of cold**" "$(bytes_row "$WORK/many-warm-1.json")"
		if has many-hangar-j4; then
			row many-hangar-j4 "The real hangar, \`-j 4\` (1 run)$(exit_note many-hangar-j4)" "$(ratio "$(wall many-hangar-j4)" "$(wall many-floor)")x floor" "-"
		fi
		if has rss-b; then
			row rss-a-floor "Floor, $MANY_IMAGES small images, in-memory registry (1 run)" "-" "$(floor_bytes rss-a-floor)"
			row rss-a "Cold load, $MANY_IMAGES small images, in-memory registry (1 run)" "$(ratio "$(wall rss-a)" "$(wall rss-a-floor)")x floor" "$(bytes_row "$WORK/rss-a.json")"
			row rss-b-floor "Floor, $RSS_IMAGES small images, in-memory registry (1 run)" "-" "$(floor_bytes rss-b-floor)"
			row rss-b "**Cold load, $RSS_IMAGES small images**, in-memory registry (1 run)" "$(ratio "$(wall rss-b)" "$(wall rss-b-floor)")x floor" "$(bytes_row "$WORK/rss-b.json")"
		fi
	)
	echo "| Many images ($MANY_IMAGES): cold load <= 1.15x the floor of the same run | ${MANY_RATIO}x (median of the runs' $(runs_x "$MANY_RUNS")) | $(verdict "$MANY_RATIO" 1.15) |" >>"$TARGETS_TMP"
	echo "| Many images: warm re-load <= 3% of the cold load | $(pct "$MANY_WARM") (median of the runs' $(runs_pct "$MANY_WARM_RUNS")) | $(verdict "$MANY_WARM" 0.03) |" >>"$TARGETS_TMP"
	echo "| Many images: the floor and the cold load give the same registry state | $([[ $MANY_CONSISTENT == yes ]] && echo "identical, $(wc -l <"$WORK/many-floor.state") tags" || echo "**different**") | $([[ $MANY_CONSISTENT == yes ]] && echo met || echo "**missed**") |" >>"$TARGETS_TMP"
fi
if has rss-b; then
	RSS_LIMIT=$(limit "$(rss rss-a)")
	echo "| Peak RSS of $RSS_IMAGES images no more than 10% above that of $MANY_IMAGES images (same size per image) | $RSS_IMAGES: $(rss rss-b) MiB, $MANY_IMAGES: $(rss rss-a) MiB (the floor: $(rss rss-b-floor) and $(rss rss-a-floor) MiB) | $(verdict "$(rss rss-b)" "$RSS_LIMIT") (limit $RSS_LIMIT MiB) |" >>"$TARGETS_TMP"
fi

# Requests per image, by method, counted at the registry side by the proxy
# (the many-image floor: its own counts, exact as it never retries).
COUNTS_TABLE="Not run (needs BENCH_DELAY_MS > 0 or BENCH_MANY_IMAGES > 0)."
if has lat-cold || has many-count-cold; then
	COUNTS_TABLE=$(
		echo '| Archive | Step | Images | Requests | HEAD / image | GET / image | POST / image | PUT / image | PATCH / image | Other / image |'
		echo '|---|---|---:|---:|---:|---:|---:|---:|---:|---|'
		if has lat-cold; then
			n=$(images_of "$WORK/lat-cold-1.json")
			count_row "main ($IMAGES images)" "floor" "$WORK/lat-floor.counts" "$n"
			count_row "main ($IMAGES images)" "cold" "$WORK/lat-cold.counts" "$n"
			count_row "main ($IMAGES images)" "warm" "$WORK/lat-warm.counts" "$n"
		fi
		if has many-count-cold; then
			n=$(images_of "$WORK/many-count-cold.json")
			sed -n 's/.*(POST \([0-9]*\), PUT \([0-9]*\)).*/POST \1\nPUT \2/p' "$WORK/logs/many-floor.0.log" >"$WORK/many-floor.counts"
			count_row "many ($MANY_IMAGES images)" "floor (its own count)" "$WORK/many-floor.counts" "$n"
			count_row "many ($MANY_IMAGES images)" "cold" "$WORK/many-count-cold.counts" "$n"
			count_row "many ($MANY_IMAGES images)" "warm" "$WORK/many-count-warm.counts" "$n"
		fi
	)
fi

if [[ -n $HANGAR_BIN ]]; then
	HANGAR_VERSION=$("$HANGAR_BIN" version 2>/dev/null | head -n 1 || true)
	HANGAR_SECTION=$(
		echo "Measured here: \`HANGAR_BIN=$HANGAR_BIN\` (${HANGAR_VERSION:-version unknown}), run with \`--tls-verify=false --insecure-policy --skip-login\`, HOME in a temporary directory; one run each, into a fresh registry (a fresh Harbor for Harbor). \"vs ours\" divides by the median of our cold load of the same section."
		echo
		echo '| Run | Wall s | vs ours (cold) | vs the floor | Peak RSS MiB |'
		echo '|---|---:|---:|---:|---:|'
		has hangar-j1 && ours_row hangar-j1 "hangar \`-j 1\`, main archive ($IMAGES images)" cold floor-conc
		has hangar-j4 && ours_row hangar-j4 "hangar \`-j 4\`, main archive" cold floor-conc
		has many-hangar-j4 && ours_row many-hangar-j4 "hangar \`-j 4\`, $MANY_IMAGES images" many-cold many-floor
		has lat-hangar-j4 && ours_row lat-hangar-j4 "hangar \`-j 4\`, main archive, $DELAY_MS ms per request" lat-cold lat-floor
		has h-hangar-j4 && ours_row h-hangar-j4 "hangar \`-j 4\`, main archive, real Harbor" h-cold h-floor
		true
	)
else
	HANGAR_SECTION="Not measured in this run (set \`HANGAR_BIN=/path/to/hangar\`; the script never builds it). Measured elsewhere, as quoted by issue 13: \`hangar -j 1\` took 5.5x our cold load on 26 images; \`hangar -j 4\` 2.6x ours on 402 images, and 2.7x ours with every request delayed 3 ms; \`hangar -j 4\` took 81 s on a real Harbor for 26 images."
fi

HARBOR_TEXT=$HARBOR_TABLE
if has h-cold; then
	HARBOR_TEXT=$(
		cat <<EOT
Median of $HARBOR_REPEAT run(s): the Harbor rows need a fresh Harbor for
every cold step, ~10 s to start each. A real Harbor v2.16.0 (harbor-core,
its registry, postgres, redis; \`$HARBOR_SH/up.sh DIR PORT\`) on
127.0.0.1, started in a new DIR for the floor and for the cold load: an
empty database, registry storage and cache (deleting repositories through
Harbor's API leaves their blobs in its registry, so a load after that is
not cold). Credentials: a DOCKER_CONFIG \`config.json\` with \`auths\` for
the Harbor host (admin). Neither side gets its projects made for it: the
floor creates them ($H_API POSTs to \`/api/v2.0/projects\`), then asks
Harbor's challenge (GET /v2/) and one bearer token per repository and
mount source ($H_TOKENS token requests, each before the first request that
needs it, cached), then pushes as above; the cold load creates them as it
does for any Harbor. Both are timed in full. The warm re-loads run on the
Harbor the cold load filled: the first $WARM_SUBSET images of the archive
(\`-f\`, three times per run), and once all images.

$HARBOR_TABLE
EOT
	)
fi
MANY_TEXT=$MANY_TABLE
if has many-cold; then
	MANY_TEXT=$(
		cat <<EOT
Archive \`hangar-mkarchive -images $MANY_IMAGES -projects $MANY_PROJECTS -size $MANY_SIZE_MB\`:
$MANY_INFO; each image has its own
repository ($MANY_IMAGES repositories over $MANY_PROJECTS projects). Median of
$MANY_REPEAT runs, each against a fresh registry process on disk, as above.
The last four rows are the memory rows: cold loads of $MANY_IMAGES and of
$RSS_IMAGES images with the same (small) size per image, into in-memory
registries (\`hangar-registry\` without \`-root\`: the client's peak RSS is
measured, and memory keeps the large one's time down), each with the
floor's load of the same archive, run after it into a registry of its own: $MANY_IMAGES images:
$RSS_A_INFO; $RSS_IMAGES images: $RSS_B_INFO.

$MANY_TABLE
EOT
	)
fi

render() {
	cat <<EOF
# Benchmarks

Generated by \`scripts/bench.sh\` (\`make bench\`): do not edit by hand, re-run it.

Run on $START_TIME, docker-hangar $VERSION, in ${ELAPSED} s.

| Machine | |
|---|---|
| CPU | $(nproc) x $CPU_MODEL |
| Memory | $MEM |
| Kernel | $(uname -sr) |
| Go | $GOVERSION |
| Load average (1/5/15 min) before / after | $LOAD_BEFORE / $LOAD_AFTER |

Archive (\`hangar-mkarchive -images $IMAGES -projects $PROJECTS -size $SIZE_MB\`):
$ARCHIVE_INFO; every image linux/amd64 + linux/arm64 on one of four
shared base images (plus a per-project runtime layer for most), four of
five OCI with an attestation per platform, the fifth a Docker manifest
list; a chart and a file.

## Results

Median of $REPEAT runs unless noted (the ratios of cold and warm are the
medians of the ratios within each run); each run against a fresh registry
process (\`hangar-registry -root DIR\`, distribution v3, filesystem storage)
on 127.0.0.1. Wall time and peak RSS are those of the client process
(startup, archive indexing and planning included); CPU is user + system.

$(cat "$TABLE_TMP")

What each row is:

- **Floor**, sequential and $CONC in flight: the simplest client (below)
  pushing the archive into a fresh registry; the $CONC-in-flight one is the
  reference of the cold load.
- **Cold load**: \`docker hangar load\` with default flags into a fresh,
  empty registry.
- **Warm re-load**: the same load again, into the registry the cold load
  filled: everything is there, nothing is moved.
- **\`-j 1\`, \`-j 4\`, \`-j 20\`**: cold loads into fresh registries, for
  the consistency check below (and their times).
- **1/10 of the size**: a cold load of the same images (the same index
  entries, manifests and number of blobs) with blobs a tenth as large.
- **10x the size**: a cold load of the same images with blobs ten times as
  large ($X10S_INFO): the archive "ten times larger" of
  the memory target, whose peak RSS must be no higher than the cold load's.
- **10x images and entries** (informative, not a target): ten times the
  images, manifests and blobs in the same bytes
  ($X10E_INFO); it shows how memory grows with the
  number of entries (the plan holds every manifest).

## Every request delayed $DELAY_MS ms

Median of $LAT_REPEAT run(s); each against a fresh registry process as
above, behind \`hangar-latency -delay ${DELAY_MS}ms\`: a loopback reverse
proxy that waits $DELAY_MS ms before forwarding each request (bodies stream
both ways, connections to the registry are kept alive), so every request
costs a round trip to a distant registry. Floor and load go through the
same proxy; the proxy's counts give the main archive's requests per image
below.

$LAT_TABLE

## Real Harbor

$HARBOR_TEXT

## Many images

$MANY_TEXT

## Requests per image

Requests by method divided by the images of the archive (index entries:
images, the chart and the file), counted at the registry side by
\`hangar-latency\`: for the main archive in the first latency run, for the
many-image archive in one more cold and warm load through the proxy with no
delay (untimed). The many-image floor's row is its own count (it never
retries, so it is exact)$(if has lat-cold; then echo "; the main floor's own count, $LAT_FLOOR_OWN requests, $([[ $LAT_FLOOR_OWN == "$LAT_FLOOR_REQ" ]] && echo "matches the proxy's" || echo "**differs from the proxy's $LAT_FLOOR_REQ**")"; fi). Harbor's API requests and token requests are not in these counts.

$COUNTS_TABLE

## The real hangar

$HANGAR_SECTION

## Targets

| Target | Measured | |
|---|---|---|
| Cold load <= 1.10x the floor of the same run | ${COLD_RATIO}x (median of the runs' $(tr ' ' '\n' <<<"$COLD_RUNS" | awk '{ printf "%s%.2fx", (NR > 1 ? ", " : ""), $1 }')) | $(verdict "$COLD_RATIO" 1.10) |
| Warm re-load <= 2% of the cold load | $(awk -v r="$WARM_RATIO" 'BEGIN { printf "%.1f%%", r * 100 }') (median of the runs' $(tr ' ' '\n' <<<"$WARM_RUNS" | awk '{ printf "%s%.1f%%", (NR > 1 ? ", " : ""), $1 * 100 }')) | $(verdict "$WARM_RATIO" 0.02) |
| Peak RSS <= 64 MiB (every load above but the informative 10x-entries one) | $RSS_MAX MiB | $(verdict "$RSS_MAX" 64) |
| ... and no higher for an archive ten times larger (same images, 10x the size) | $X10S_MEASURED | $X10S_VERDICT |
| ... and not growing from an archive ten times smaller (same images, 1/10 of the size) to the full size | 1/10: $(rss tenth) MiB, full: $(rss cold) MiB | $(verdict "$(rss cold)" "$BYTES_LIMIT") (limit $BYTES_LIMIT MiB: 1/10 + 10%) |
| \`-j 1\`, \`-j 4\`, \`-j 20\` (and the floor, and cold) give the same registry state | $( [[ $CONSISTENT == yes ]] && echo "identical, $TAGS tags" || echo "**different**") | $( [[ $CONSISTENT == yes ]] && echo met || echo "**missed**") |
$(cat "$TARGETS_TMP")

The floor (\`internal/cmd/hangar-floor\`) is the simplest client that
leaves the same registry state as a cold load: it pushes each distinct blob
once (POST, then one PUT streamed from the archive, read through
\`archive.Reader\`, which verifies each blob's sha256 once), mounts it into
the other repositories that need it (one POST each, no bytes), then PUTs
the manifests and each image's index; no HEAD, no GET, no retry, no
authentication (but on Harbor, above), no per-image ordering. It sent
$FLOOR_REQ requests. The reference is the floor with $CONC requests in
flight in each phase, the loader's default blob concurrency (\`-c 1\` is
shown for scale).

The machine is shared: compare figures of the same run only, and read the
load average above before trusting small differences. Every run
(wall/peak RSS):

\`\`\`
$RAW
\`\`\`

## Re-running

    make bench                                  # defaults: ~${SIZE_MB} MiB, $IMAGES images, $REPEAT runs each
    BENCH_SIZE_MB=1000 BENCH_REPEAT=5 make bench
    BENCH_RSS_10X=0 make bench                  # without the archive 10x the size (~6 GiB of disk)
    BENCH_OUT=- scripts/bench.sh                # print instead of writing this file
    HANGAR_BIN=/path/to/hangar make bench       # with the real hangar's rows
    BENCH_HARBOR=0 BENCH_RSS_IMAGES=0 make bench  # without Harbor and the $RSS_IMAGES-image load
    BENCH_HARBOR_REPEAT=3 BENCH_MANY_REPEAT=3 make bench

In-repo benchmark and profiling harness (client-only CPU profile with a
registry process):

    HANGAR_BENCH_REGISTRY=process HANGAR_BENCH_SIZE_MB=300 \\
      go test ./loader -run '^\$' -bench 'Load/(cold|floor-c8)\$' -benchtime 4x -cpuprofile cpu.out -o loader.test
    go tool pprof -top loader.test cpu.out
EOF
}
if [[ $OUT == - ]]; then
	render
else
	mkdir -p "$(dirname "$OUT")"
	render >"$OUT.tmp"
	mv "$OUT.tmp" "$OUT"
	say "wrote $OUT"
fi
cat "$TABLE_TMP"
[[ $CONSISTENT == yes ]] || die "registry states differ between -j values"
