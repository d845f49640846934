#!/usr/bin/env bash
# Installs what a peer and the test suite need: Debian packages through apt (root only) and the
# npm dependencies, which bring Node 24. Idempotent and quiet: a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(runc fuse3 e2fsprogs util-linux busybox-static iproute2 curl fio openssl nginx wrk nftables conntrack debootstrap perl-base)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # nginx is only the benchmark's reference, started by the benchmark with its own config: keep
  # apt from starting the packaged service on :80. A policy-rc.d that answers 101 forbids
  # maintainer scripts to start services (invoke-rc.d and deb-systemd-invoke both ask it); one the
  # host already has is left alone.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by sprites-mesh scripts/setup.sh during apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  # Not at boot either, and stopped in case a host policy let it start.
  if [[ " ${missing[*]} " == *" nginx "* ]]; then
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now nginx >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null; then
      service nginx stop >/dev/null 2>&1 || true
      update-rc.d nginx disable >/dev/null 2>&1 || true
    fi
  fi
fi

# npm 11 runs dependency install scripts only for packages listed in package.json's allowScripts.
if [ ! -x node_modules/.bin/node ] || [ package.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  # `npm install` rather than `npm ci`: the lock omits the optional native packages of other platforms.
  npm install --no-audit --no-fund --loglevel=error
fi

version=$(node_modules/.bin/node -p 'process.versions.node.split(".")[0]')
if [ "$version" -lt 24 ]; then
  echo "setup: node_modules/.bin/node is Node $version; Node 24 is required" >&2
  exit 1
fi
# The directory where sandboxes stage their mounts (in their own mount namespaces).
mkdir -p /run/sprites
