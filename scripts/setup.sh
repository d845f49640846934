#!/usr/bin/env bash
# Installs what a peer and the test suite need: Debian packages through apt (root only) and the
# npm dependencies, which bring Node 24. Idempotent and quiet: a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(runc fuse3 e2fsprogs util-linux busybox-static iproute2 curl fio openssl nginx wrk nftables debootstrap)
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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
