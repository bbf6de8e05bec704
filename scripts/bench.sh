#!/usr/bin/env bash
# Side-by-side timings, in ONE run (this machine is noisy, so read the ratios):
#   runtimes: mocker-runtime (target/release), crun, runc on the same busybox bundle in /tmp
#     - lifecycle: create + start + wait for exit + delete of `true`
#     - run: `run` of `true`
#     - peak RSS of `run` (GNU time %M, the runtime process and what it waited for)
#     - lifecycle and run again with podman's default seccomp profile and a prestart hook
#   puller (when mocker-pull and testenv are built): cold pull into a bundle, and warm re-pull,
#     against skopeo copy + umoci unpack, from a local docker-registry: the busybox image,
#     then a generated 4-layer image of $BENCH_LARGE_MB MB (default 240, like the issue's).
#
# Everything runs under ../shared/conformance/v1view.sh (a private mount namespace without the
# hybrid cgroup2 mount) because crun 1.8 refuses hybrid hosts; all three get the same view.
# Knobs: BENCH_RUNS (default 50), BENCH_WARMUP (5), MOCKER_BIN_DIR (default target/release),
#        BENCH_RUNTIMES (default "mocker crun runc"), BENCH_SKIP_PULL=1, BENCH_SKIP_LARGE=1,
#        BENCH_LARGE_MB (240), BENCH_LARGE_RUNS (3).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MOCKER_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
v1view=$root/../shared/conformance/v1view.sh
runs=${BENCH_RUNS:-50}
warmup=${BENCH_WARMUP:-5}

say() { printf '\033[1;34m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (containers need namespaces, mounts and cgroups)"
command -v hyperfine >/dev/null || die "hyperfine missing: run \`just setup\`"
command -v jq >/dev/null || die "jq missing: run \`just setup\`"

# Re-enter in the v1-only view once; the rest of the script runs there.
if [[ ${MOCKER_V1VIEW:-} != 1 && -x $v1view ]] && mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
    exec "$v1view" "$0" "$@"
fi

work=$(mktemp -d /tmp/mocker-bench.XXXXXX)
registry_pid=
cleanup() {
    set +e
    for r in "${!rt_bin[@]}"; do
        for id in $("${rt_bin[$r]}" --root "$work/state-$r" list -q 2>/dev/null); do
            "${rt_bin[$r]}" --root "$work/state-$r" delete --force "$id" >/dev/null 2>&1
        done
    done
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null
        wait "$registry_pid" 2>/dev/null
    fi
    if [ -x "$bin/mocker-pull" ]; then
        for b in "$work"/pull-*/bundle; do
            [ -e "$b" ] && "$bin/mocker-pull" --cache-dir "$work/pull-cache" rm-bundle "$b" >/dev/null 2>&1
        done
    fi
    if grep -q " $work[/ ]" /proc/self/mountinfo; then
        echo "bench: mounts left under $work" >&2
    else
        rm -rf "$work"
    fi
}
declare -A rt_bin=()
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the bundle: busybox `true`, runc spec defaults without a terminal -------------------
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev" \
    "$bundle/rootfs/tmp" "$bundle/rootfs/etc"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for a in sh true echo; do ln -s busybox "$bundle/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$bundle/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$bundle/rootfs/etc/group"
(cd "$work" && runc spec && jq '.process.terminal = false | .process.args = ["true"]' config.json >"$bundle/config.json" && rm config.json)

# --- the runtimes ----------------------------------------------------------------------
for r in ${BENCH_RUNTIMES:-mocker crun runc}; do
    case $r in
        mocker) p=$bin/mocker-runtime ;;
        *) p=$(command -v "$r" || true) ;;
    esac
    if [ -z "$p" ] || [ ! -x "$p" ]; then
        say "skipping $r: not found${p:+ at $p}"
        continue
    fi
    mkdir -p "$work/state-$r"
    # a runtime that cannot run the bundle is reported and left out, not benchmarked
    if ! err=$("$p" --root "$work/state-$r" run -b "$bundle" "probe-$r" 2>&1 >/dev/null); then
        say "skipping $r: \`run\` of the bundle failed: $(echo "$err" | tail -1)"
        "$p" --root "$work/state-$r" delete --force "probe-$r" >/dev/null 2>&1 || true
        continue
    fi
    rt_bin[$r]=$p
done
[ ${#rt_bin[@]} -gt 0 ] || die "no runtime could run the bundle"
order=()
for r in mocker crun runc; do [ -n "${rt_bin[$r]:-}" ] && order+=("$r"); done
say "runtimes: $(for r in "${order[@]}"; do printf '%s=%s ' "$r" "${rt_bin[$r]}"; done)"

# The lifecycle as one shell command: create, start, wait until the init is gone or a
# zombie (builtins only, so the wait costs next to nothing), delete.
lifecycle_cmd() {
    local p=$1 st=$2 id=$3
    printf '%s' "$p --root $st create -b $bundle --pid-file $st/$id.pid $id && $p --root $st start $id && pid=\$(<$st/$id.pid) && while read -r s <\"/proc/\$pid/stat\" 2>/dev/null && [[ \$s != *') Z '* ]]; do :; done; $p --root $st delete $id"
}

ratio_table() { # $1 = hyperfine JSON export: mean, median and their ratios against crun
    jq -r '
      (.results | map(select(.command | startswith("crun"))) | .[0]) as $crun
      | .results[]
      | "  \(.command | .[0:24] | . + " " * (24 - length)) \(.mean * 1000 | . * 100 | round / 100) ms ± \(.stddev * 1000 | . * 100 | round / 100) ms, median \(.median * 1000 | . * 100 | round / 100) ms"
        + (if $crun then "   \(.mean / $crun.mean | . * 100 | round / 100)x crun (median \(.median / $crun.median | . * 100 | round / 100)x)" else "" end)' "$1"
}

say "lifecycle: create + start + wait + delete of \`true\` ($runs runs each)"
cmds=()
for r in "${order[@]}"; do
    cmds+=(-n "$r lifecycle" "$(lifecycle_cmd "${rt_bin[$r]}" "$work/state-$r" "lc-$r")")
done
hyperfine --shell=bash --runs "$runs" --warmup "$warmup" --style basic \
    --export-json "$work/lifecycle.json" "${cmds[@]}"

say "run of \`true\` ($runs runs each)"
cmds=()
for r in "${order[@]}"; do
    cmds+=(-n "$r run" "${rt_bin[$r]} --root $work/state-$r run -b $bundle run-$r")
done
# -N: no intermediate shell, so the run timings are the runtime's alone
hyperfine -N --runs "$runs" --warmup "$warmup" --style basic \
    --export-json "$work/run.json" "${cmds[@]}"

# --- the same with podman's default seccomp profile and a prestart hook -------------------
# The profile as podman writes it into a bundle: moby's format filtered for the bundle's
# capabilities and amd64 (integration::seccomp does the same in Rust for the tests).
seccomp_summary=""
profile=/usr/share/containers/seccomp.json
if [ -r "$profile" ]; then
    secure=$work/bundle-secure
    mkdir -p "$secure"
    jq --slurpfile moby "$profile" --arg rootfs "$bundle/rootfs" '
      (.process.capabilities.bounding) as $caps
      | .root.path = $rootfs
      | .hooks = {"prestart": [{"path": "/bin/true", "args": ["true"]}]}
      | .linux.seccomp = ($moby[0] as $m | {
          defaultAction: $m.defaultAction,
          defaultErrnoRet: $m.defaultErrnoRet,
          architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
          syscalls: [ $m.syscalls[]
            | select((.includes.caps // []) | all(. as $c | $caps | index($c)))
            | select((.includes.arches // ["amd64"]) | index("amd64"))
            | select((.excludes.caps // []) | any(. as $c | $caps | index($c)) | not)
            | select((.excludes.arches // []) | index("amd64") | not)
            | {names, action} + (if (.args // []) == [] then {} else {args} end)
              + (if .errnoRet then {errnoRet} else {} end) ] })' \
        "$bundle/config.json" >"$secure/config.json"
    say "with podman's seccomp profile and a prestart hook: lifecycle and run ($runs runs each)"
    cmds=()
    for r in "${order[@]}"; do
        cmds+=(-n "$r lifecycle+seccomp" "$(bundle=$secure lifecycle_cmd "${rt_bin[$r]}" "$work/state-$r" "lcs-$r")")
    done
    hyperfine --shell=bash --runs "$runs" --warmup "$warmup" --style basic \
        --export-json "$work/lifecycle-secure.json" "${cmds[@]}"
    cmds=()
    for r in "${order[@]}"; do
        cmds+=(-n "$r run+seccomp" "${rt_bin[$r]} --root $work/state-$r run -b $secure runs-$r")
    done
    hyperfine -N --runs "$runs" --warmup "$warmup" --style basic \
        --export-json "$work/run-secure.json" "${cmds[@]}"
    seccomp_summary="$(ratio_table "$work/lifecycle-secure.json")"$'\n'"$(ratio_table "$work/run-secure.json")"
else
    seccomp_summary="  (skipped: $profile missing, run \`just setup\`)"
fi

rss_line=""
if [ -x /usr/bin/time ]; then
    for r in "${order[@]}"; do
        max=0
        for _ in $(seq 10); do
            /usr/bin/time -f '%M' -o "$work/rss" "${rt_bin[$r]}" --root "$work/state-$r" \
                run -b "$bundle" "rss-$r" >/dev/null 2>&1 || true
            kb=$(tail -1 "$work/rss")
            [[ $kb =~ ^[0-9]+$ ]] && ((kb > max)) && max=$kb
        done
        rss_line+="  $r: peak RSS of run $((max / 1024)).$(((max % 1024) * 10 / 1024)) MB ($max kB)"$'\n'
    done
else
    rss_line="  (peak RSS skipped: /usr/bin/time missing, apt-get install time)"$'\n'
fi

# --- the puller: cold and warm pull against skopeo copy + umoci unpack ---------------------
pull_summary=""
bench_pull() {
    local pull=$bin/mocker-pull testenv=$bin/testenv
    if [[ ${BENCH_SKIP_PULL:-} == 1 ]]; then pull_summary="  (skipped: BENCH_SKIP_PULL=1)"; return; fi
    for b in "$pull" "$testenv"; do
        [ -x "$b" ] || { pull_summary="  (skipped: $b not built)"; return; }
    done
    command -v docker-registry >/dev/null || { pull_summary="  (skipped: docker-registry missing)"; return; }
    "$testenv" registry "$work/registry" --addr-file "$work/addr" >/dev/null 2>&1 &
    registry_pid=$!
    for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
    [ -s "$work/addr" ] || { pull_summary="  (skipped: the registry did not start)"; return; }
    local addr image
    addr=$(cat "$work/addr")
    image=$addr/bench/busybox:latest
    "$testenv" push-busybox "$addr" bench/busybox:latest >/dev/null
    local c="$work/pull-cache" m="$work/pull-m" s="$work/pull-s"
    mkdir -p "$m" "$s"
    local mp="$pull -q --cache-dir $c $image $m/bundle"
    local mrm="if [ -e $m/bundle ]; then $pull --cache-dir $c rm-bundle $m/bundle >/dev/null; fi"
    local sk="skopeo copy -q --src-tls-verify=false docker://$image oci:$s/layout:latest && umoci unpack --image $s/layout:latest $s/bundle >/dev/null"
    local srm="rm -rf $s/layout $s/bundle"
    say "pull: cold (empty cache) and warm (cached blobs), mocker-pull vs skopeo copy + umoci unpack"
    hyperfine --shell=bash --runs "$((runs / 5 > 5 ? runs / 5 : 5))" --warmup 1 --style basic \
        --export-json "$work/pull.json" \
        -n "mocker-pull cold" --prepare "$mrm; rm -rf $c" "$mp" \
        -n "mocker-pull warm" --prepare "$mrm" "$mp" \
        -n "skopeo+umoci cold" --prepare "$srm" "$sk" ||
        { pull_summary="  (pull benchmark failed)"; return; }
    pull_summary="  busybox, 1 layer:"$'\n'$(pull_table "$work/pull.json")
    [[ ${BENCH_SKIP_LARGE:-} == 1 ]] && return
    # The issue's reference shape: 4 layers, 240 MB, 12k files (~110 MB gzip).
    local mb=${BENCH_LARGE_MB:-240}
    image=$addr/bench/large:latest
    say "pull: building and pushing a ${mb} MB 4-layer image"
    "$testenv" push-large "$addr" bench/large:latest --mb "$mb" >/dev/null
    mp="$pull -q --cache-dir $c $image $m/bundle"
    sk="skopeo copy -q --src-tls-verify=false docker://$image oci:$s/layout:latest && umoci unpack --image $s/layout:latest $s/bundle >/dev/null"
    say "pull of the ${mb} MB image: cold and warm, mocker-pull vs skopeo copy + umoci unpack"
    hyperfine --shell=bash --runs "${BENCH_LARGE_RUNS:-3}" --style basic \
        --export-json "$work/pull-large.json" \
        -n "mocker-pull cold" --prepare "$mrm; rm -rf $c; sync" "$mp" \
        -n "mocker-pull warm" --prepare "$mrm; sync" "$mp" \
        -n "skopeo+umoci cold" --prepare "$srm; sync" "$sk" ||
        { pull_summary+=$'\n'"  (large pull benchmark failed)"; return; }
    pull_summary+=$'\n'"  ${mb} MB, 4 layers:"$'\n'$(pull_table "$work/pull-large.json")
}

pull_table() { # $1 = hyperfine JSON export: mean and ratio against skopeo+umoci
    jq -r '
      (.results | map(select(.command == "skopeo+umoci cold")) | .[0].mean) as $sk
      | .results[] | "  \(.command | . + " " * (24 - length)) \(.mean * 1000 | . * 10 | round / 10) ms   \(.mean / $sk | . * 100 | round / 100)x skopeo+umoci"' "$1"
}
bench_pull

say "summary (means; ratio < 1 means faster than crun)"
echo "lifecycle (create+start+wait+delete of true):"
ratio_table "$work/lifecycle.json"
echo "run of true:"
ratio_table "$work/run.json"
echo "with podman's default seccomp profile and a prestart hook:"
echo "$seccomp_summary"
echo "peak RSS:"
printf '%s' "$rss_line"
echo "pull (cold: empty cache; warm: cached blobs, bundle re-assembled):"
echo "$pull_summary"
