#!/usr/bin/env bash
# Installs the Debian 12 packages the build and the tests need, only when one is missing.
# (libfuse3-dev and fuse3: powercutfs, the power-cut file system of tests/powercut.)
set -euo pipefail

pkgs=(build-essential cmake pkg-config libcurl4-openssl-dev libjson-c-dev libyaml-dev
      libsystemd-dev zlib1g-dev libdeflate-dev libssl-dev libcmocka-dev libpcre2-dev python3
      curl libfuse3-dev fuse3 "$@")
missing=()
for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
                missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        # DEPS_NO_RECOMMENDS=1 (tests/s3/rgw.sh: Ceph's recommends are large and unneeded).
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
                ${DEPS_NO_RECOMMENDS:+--no-install-recommends} "${missing[@]}" >/dev/null
fi
