#!/usr/bin/env bash
# Builds the Debian package from this checkout and prints the path of the .deb:
#
#     scripts/package.sh            -> build-pkg/connect-job-archiver_<version>_<arch>.deb
#
# Installs the build dependencies first (scripts/deps.sh). The version is CMakeLists.txt's
# project(VERSION). The build runs on a copy of the tracked and untracked-but-not-ignored
# files in a temporary folder, so the build*/ folders of a development checkout and
# debhelper's own files never mix with the tree. lintian checks the result; its findings
# are printed, and an error fails the build. DEB_BUILD_OPTIONS=nocheck skips the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/deps.sh debhelper dpkg-dev lintian fakeroot git

version=$(sed -n 's/^project([^)]*VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "package.sh: no project(VERSION) in CMakeLists.txt" >&2; exit 1; }

work=$(mktemp -d /var/tmp/cja-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/connect-job-archiver-$version
mkdir "$src"
git ls-files -z --cached --others --exclude-standard |
        (while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) |
        tar -cf - --null -T - | tar -xf - -C "$src"
# The changelog's first entry carries the version the package gets.
sed -i "1s/^connect-job-archiver ([^)]*)/connect-job-archiver ($version)/" "$src/debian/changelog"

log=$work/build.log
if ! (cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)") >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "package.sh: dpkg-buildpackage failed (the log's end is above)" >&2
        exit 1
fi
deb=$(ls "$work"/connect-job-archiver_"$version"_*.deb)
lintian --fail-on error --info "$work"/*.changes >&2 || {
        echo "package.sh: lintian found errors" >&2
        exit 1
}
mkdir -p build-pkg
rm -f build-pkg/connect-job-archiver_*.deb
cp "$deb" build-pkg/
echo "$root/build-pkg/$(basename "$deb")"
