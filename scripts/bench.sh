#!/usr/bin/env bash
# bench.sh (`make bench`): measure `docker hangar load` against the floor
# on a synthetic Hangar archive, and write the results to docs/benchmarks.md.
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
# of 10x the images and entries at the same size. Each archive and each
# registry's storage is deleted as soon as its step is done.
#
# Environment:
#   BENCH_SIZE_MB   total blob size of the archive in MiB (default 300)
#   BENCH_IMAGES    images (default 30); BENCH_PROJECTS projects (default 4)
#   BENCH_REPEAT    repetitions of each measurement (default 5)
#   BENCH_RSS_10X   0: skip the load of the archive 10x the size (default
#                   1; it needs about 21x BENCH_SIZE_MB of free disk space,
#                   6.2 GiB by default, for the archive and the registry)
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
CONC=8 # loader.DefaultOptions().BlobConcurrency

say() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'bench.sh: error: %s\n' "$*" >&2
	exit 1
}
for v in SIZE_MB IMAGES PROJECTS REPEAT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive integer (got '${!v}')"
done
[[ $RSS_10X == [01] ]] || die "BENCH_RSS_10X must be 0 or 1 (got '$RSS_10X')"
[[ -r /proc/self/stat ]] || die "Linux /proc is needed"
command -v "$GO" >/dev/null 2>&1 || die "Go is needed ($GO not found)"

START_TIME=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
SECONDS=0

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/hangar-bench.XXXXXX")
REG_PID=""
cleanup() {
	local status=$?
	if [[ -n $REG_PID ]] && kill -0 "$REG_PID" 2>/dev/null; then
		kill "$REG_PID" 2>/dev/null || true
		wait "$REG_PID" 2>/dev/null || true
	fi
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
CGO_ENABLED=0 "$GO" build -trimpath -o "$TOOLS/" ./internal/cmd/hangar-registry ./internal/cmd/hangar-mkarchive ./internal/cmd/hangar-floor ./internal/cmd/hangar-rusage

CLK_TCK=$(getconf CLK_TCK)

# reg_cpu prints the CPU seconds (user+system) the registry used so far.
reg_cpu() {
	awk -v hz="$CLK_TCK" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$REG_PID/stat"
}

# start_registry NAME [memory]: a fresh registry, on disk unless memory.
start_registry() {
	local name=$1 store=${2:-disk} args=()
	[[ $store == memory ]] || args=(-root "$WORK/registry-$name")
	rm -f "$WORK/registry.addr"
	"$TOOLS/hangar-registry" serve -addr 127.0.0.1:0 -addr-file "$WORK/registry.addr" "${args[@]}" >"$WORK/logs/registry-$name.log" 2>&1 &
	REG_PID=$!
	local i
	for i in $(seq 100); do # up to 10 s
		[[ -s $WORK/registry.addr ]] && break
		kill -0 "$REG_PID" 2>/dev/null || die "the registry did not start: $(cat "$WORK/logs/registry-$name.log")"
		sleep 0.1
	done
	[[ -s $WORK/registry.addr ]] || die "the registry did not listen within 10 s (after $i tries)"
	REGISTRY=$(<"$WORK/registry.addr")
	REG_CPU0=$(reg_cpu)
}

# stop_registry NAME: stop it and remove its storage.
stop_registry() {
	local name=$1
	kill "$REG_PID"
	wait "$REG_PID" 2>/dev/null || true
	REG_PID=""
	rm -rf "$WORK/registry-$name"
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
# binary, temporary DOCKER_CONFIG) into the current registry.
load() {
	local label=$1 archive=$2 report=$3
	shift 3
	measure "$label" "$HANGAR" load -s "$archive" -d "$REGISTRY" --report "$report" -o "$WORK/load-failed.txt" "$@"
}
state() { "$TOOLS/hangar-registry" state "http://$REGISTRY" >"$WORK/$1.state"; }

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
FLOOR_REQ=$(sed -n 's/.* \([0-9]*\) requests.*/\1/p' <<<"$FLOOR_LINE")
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

RAW=$(for l in floor-seq floor-conc cold warm j1 j4 j20 tenth x10-size x10-entries; do
	[[ -e $WORK/$l.m ]] || continue
	printf '%-12s' "$l"
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

| Target | Measured | |
|---|---|---|
| Cold load <= 1.10x the floor of the same run | ${COLD_RATIO}x (median of the runs' $(tr ' ' '\n' <<<"$COLD_RUNS" | awk '{ printf "%s%.2fx", (NR > 1 ? ", " : ""), $1 }')) | $(verdict "$COLD_RATIO" 1.10) |
| Warm re-load <= 5% of the cold load | $(awk -v r="$WARM_RATIO" 'BEGIN { printf "%.1f%%", r * 100 }') (median of the runs' $(tr ' ' '\n' <<<"$WARM_RUNS" | awk '{ printf "%s%.1f%%", (NR > 1 ? ", " : ""), $1 * 100 }')) | $(verdict "$WARM_RATIO" 0.05) |
| Peak RSS <= 64 MiB (every load above but the informative 10x-entries one) | $RSS_MAX MiB | $(verdict "$RSS_MAX" 64) |
| ... and no higher for an archive ten times larger (same images, 10x the size) | $X10S_MEASURED | $X10S_VERDICT |
| ... and not growing from an archive ten times smaller (same images, 1/10 of the size) to the full size | 1/10: $(rss tenth) MiB, full: $(rss cold) MiB | $(verdict "$(rss cold)" "$BYTES_LIMIT") (limit $BYTES_LIMIT MiB: 1/10 + 10%) |
| \`-j 1\`, \`-j 4\`, \`-j 20\` (and the floor, and cold) give the same registry state | $( [[ $CONSISTENT == yes ]] && echo "identical, $TAGS tags" || echo "**different**") | $( [[ $CONSISTENT == yes ]] && echo met || echo "**missed**") |

The floor (\`internal/cmd/hangar-floor\`) is the simplest client that
leaves the same registry state as a cold load: it pushes each distinct blob
once (POST, then one PUT streamed from the archive, read through
\`archive.Reader\`, which verifies each blob's sha256 once), mounts it into
the other repositories that need it (one POST each, no bytes), then PUTs
the manifests and each image's index; no HEAD, no GET, no retry, no
authentication, no per-image ordering. It sent $FLOOR_REQ requests. The
reference is the floor with $CONC requests in flight, the loader's default
blob concurrency (\`-c 1\` is shown for scale).

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
