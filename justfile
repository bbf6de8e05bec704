# Mocker: container toolchain. `just setup` once on a fresh machine, then `just demo` / `just test`.

set shell := ["bash", "-euo", "pipefail", "-c"]

shared := justfile_directory() / ".." / "shared"

# Debian packages the project needs: tests, demo, bench and conformance.
apt_packages := "busybox-static docker-registry skopeo umoci golang-github-containers-common podman conmon docker.io containerd protobuf-compiler runc crun hyperfine jq iproute2 psmisc apache2-utils libseccomp-dev pkg-config golang-go util-linux time golang-github-opencontainers-runtime-tools-dev golang-github-google-uuid-dev xz-utils curl"

default:
    @just --list

# Install every system package the project needs, then build.
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=$(for p in {{apt_packages}}; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"; done)
    if [ -n "$missing" ]; then
        apt-get update -q
        # Debian's docker.io and containerd start their daemons on install (default
        # networking: a bridge and NAT rules on the host). The tests start their own, so
        # forbid service starts for the install only.
        guard=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            guard=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
        if [ -n "$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi
    fi
    just build

# Build all binaries (debug for tests, release for demo and bench).
# The release mocker-runtime is linked static and non-PIE with the `lean` profile: it execs
# twice per container (the CVE-2019-5736 re-exec), so no dynamic loader and no relocations
# saves ~1.5 ms a container and 0.8 MB of RSS. It is copied next to the other release binaries.
build:
    cargo build --workspace --all-targets
    cargo build --release --workspace --exclude mocker-runtime
    cargo rustc --profile lean -p mocker-runtime --bin mocker-runtime -- -C target-feature=+crt-static -C relocation-model=static
    install -m 0755 "${CARGO_TARGET_DIR:-target}/lean/mocker-runtime" "${CARGO_TARGET_DIR:-target}/release/mocker-runtime"

# Unit tests, then the end-to-end tests (root: real containers, a real registry).
test: build
    cargo test --workspace --exclude integration
    cargo test -p integration --no-fail-fast -- --test-threads=2
    # The shipped (static, lean) runtime passes the runtime suites too.
    MOCKER_RUNTIME="$(realpath "${CARGO_TARGET_DIR:-target}/release/mocker-runtime")" cargo test -p integration --test lifecycle --test security --test breakouts --test hooks --test seccomp --test userns --test process_settings --test propagation --test features --test engines --test exec --test running --test crashes --test kubernetes --test bad_input --test console -- --test-threads=2

# The cgroup tests inside a pure cgroup v2 guest (build here, run there).
test-cgroup-v2: build
    cargo test -p integration --no-run
    {{shared}}/vm/vm-run.sh --timeout 1500 --merge -- cargo test -p integration --test cgroups -- --test-threads=1

# The main job: pull an image from a local registry and run it.
demo: build
    ./scripts/demo.sh

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

fmt:
    cargo fmt --all

# Side-by-side timings with runc/crun and skopeo+umoci (hyperfine, as ratios).
bench: build
    ./scripts/bench.sh

# The OCI runtime-tools validation suite against mocker-runtime.
conformance: build
    {{shared}}/conformance/run.sh target/release/mocker-runtime

# Longer runs of the generated hostile-input tests (CI runs a bounded number of cases).
fuzz cases="50000":
    PROPTEST_CASES={{cases}} cargo test --release -p bundle-tools --test layer_fuzz --test generated_configs
    PROPTEST_CASES={{cases}} cargo test --release -p mocker-runtime --test generated_specs
    PROPTEST_CASES={{cases}} cargo test --release -p mocker-pull reference::
