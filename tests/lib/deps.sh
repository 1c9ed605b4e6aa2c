#!/usr/bin/env bash
#
# deps.sh: make sure the Debian 12 packages the project builds, tests and benchmarks with are
# installed (`make deps`, run before check/run/bench/asan). Installs the missing ones with
# apt-get when we are root or have password-less sudo; otherwise names them and the command
# to run, and fails. Prints nothing when everything is present.
set -euo pipefail

DEPS_PACKAGES=(
    build-essential      # gcc, make
    clang
    pkg-config
    libssl-dev
    openssl
    libmicrohttpd-dev
    libgnutls28-dev      # HTTPS listener: GnuTLS certificate callback (libmicrohttpd TLS)
    liblmdb-dev
    lmdb-utils           # mdb_stat, mdb_dump for tests and evidence export
    check                # unit test framework
    libinih-dev
    softhsm2
    opensc               # pkcs11-tool
    libp11-kit-dev       # PKCS#11 header
    chrony
    curl
    libclang-rt-14-dev   # sanitizer runtimes for clang
    iproute2             # ss
    gnuplot-nox          # bench plots
    jq                   # bench report (JSON)
    mandoc               # man page lint (mandoc -Tlint) in test_install.sh
    libjansson-dev       # reading JSON back (audit export verification)
    nginx                # several-node tests: cache in front of ocspd nodes
    haproxy              # several-node tests: balancer in front of tsad nodes
)

deps_missing() {
    local pkg status
    for pkg in "${DEPS_PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) || status=""
        if [[ $status != "install ok installed" ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

main() {
    local -a missing sudo_cmd=()
    mapfile -t missing < <(deps_missing)
    ((${#missing[@]} == 0)) && return 0

    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo_cmd=(sudo -n)
        else
            echo "deps: missing Debian packages: ${missing[*]}" >&2
            echo "deps: install them with:" >&2
            echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
            exit 1
        fi
    fi
    echo "deps: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    mapfile -t missing < <(deps_missing)
    if ((${#missing[@]} > 0)); then
        echo "deps: still missing after apt-get: ${missing[*]}" >&2
        exit 1
    fi
}

main "$@"
