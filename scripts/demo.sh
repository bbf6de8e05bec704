#!/usr/bin/env bash
# The main job, end to end, on this machine and with no internet:
#   1. start a private docker-registry on 127.0.0.1 (integration's `testenv registry`),
#   2. build a busybox image from /bin/busybox and push it (`testenv push-busybox`),
#   3. `mocker-pull` it into an OCI bundle, overriding the command,
#   4. `mocker-runtime run` the bundle,
#   5. clean up everything: container, bundle (and whatever the pull mounted), cache, registry.
#
# Binaries come from $MOCKER_BIN_DIR, else target/release (`just demo` builds them first).
# $MOCKER_DEMO_RUNTIME runs the bundle with another runtime (e.g. `runc`) for comparison.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MOCKER_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
pull=$bin/mocker-pull
runtime=${MOCKER_DEMO_RUNTIME:-$bin/mocker-runtime}
testenv=$bin/testenv

say() { printf '\033[1;34m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (containers need namespaces, mounts and cgroups)"
for b in "$pull" "$testenv"; do
    [ -x "$b" ] || die "$b missing: run \`just build\` (or cargo build --release --workspace)"
done
command -v "$runtime" >/dev/null || die "runtime $runtime missing: run \`just build\`"
command -v docker-registry >/dev/null || die "docker-registry missing: run \`just setup\`"

work=$(mktemp -d /tmp/mocker-demo.XXXXXX)
bundle=$work/bundle
cache=$work/cache
state=$work/runtime-state
id=demo-$$
registry_pid=

cleanup() {
    local rc=$?
    set +e
    if [ -d "$state/$id" ]; then
        "$runtime" --root "$state" delete --force "$id" >/dev/null 2>&1
    fi
    if [ -e "$bundle" ]; then
        # The puller's own removal undoes what the pull mounted; a plain directory needs none.
        "$pull" --cache-dir "$cache" rm-bundle "$bundle" >/dev/null 2>&1
        if mountpoint -q "$bundle/rootfs" 2>/dev/null; then
            umount "$bundle/rootfs"
        fi
    fi
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null
        wait "$registry_pid" 2>/dev/null
    fi
    if grep -q " $work[/ ]" /proc/self/mountinfo; then
        echo "demo: mounts left under $work:" >&2
        grep " $work[/ ]" /proc/self/mountinfo >&2
        rc=1
    else
        rm -rf "$work"
    fi
    [ $rc = 0 ] && say "cleaned up (registry stopped, bundle, cache and state removed)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting a local registry (docker-registry, storage in $work/registry)"
"$testenv" registry "$work/registry" --addr-file "$work/addr" >/dev/null &
registry_pid=$!
for _ in $(seq 100); do
    [ -s "$work/addr" ] && break
    kill -0 "$registry_pid" 2>/dev/null || die "the registry did not start"
    sleep 0.1
done
[ -s "$work/addr" ] || die "the registry did not start within 10 s"
addr=$(cat "$work/addr")
image=$addr/demo/busybox:latest

say "pushing a busybox image built from /bin/busybox to $image"
"$testenv" push-busybox "$addr" demo/busybox:latest

say "mocker-pull $image $bundle"
start=$(date +%s%N)
"$pull" --cache-dir "$cache" --hostname mocker-demo "$image" "$bundle" -- \
    sh -c 'echo "hello from $(hostname), pid $$, as $(id -un)"; grep PRETTY_NAME /etc/os-release; echo "/:" $(ls /)'
end=$(date +%s%N)
echo "pulled in $(((end - start) / 1000000)) ms; bundle: $(ls "$bundle" | tr '\n' ' ')"
jq -c '.process | {args, env, cwd, user}' "$bundle/config.json" 2>/dev/null || true

say "$(basename "$runtime") run -b $bundle $id"
"$runtime" --root "$state" run -b "$bundle" "$id"
