#!/usr/bin/env bash
# Builds packaging/Containerfile with buildah, without any registry (FROM scratch, prebuilt
# static binary), and checks the image: its files, its entry point, and that the binary in it
# runs (`goipsec version` through buildah run, which needs no container engine daemon).
# Usage: scripts/image-test.sh   (as root; installs buildah when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
if ! command -v buildah >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi
make -s build
store=$(mktemp -d)
trap 'buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs rm -a >/dev/null 2>&1 || true; rm -rf "$store"' EXIT
b="buildah --root $store/root --runroot $store/run --storage-driver vfs"
# No registry is consulted: the build must not need one, so point it at none.
printf 'unqualified-search-registries = []\n' >"$store/registries.conf"
export CONTAINERS_REGISTRIES_CONF=$store/registries.conf
$b bud --quiet --pull=false -f packaging/Containerfile -t goipsec-test . >/dev/null
files=$($b inspect --format '{{.Docker.Config.Entrypoint}} {{.Docker.Config.Cmd}}' goipsec-test)
[ "$files" = "[/usr/local/bin/goipsec] [run -c /etc/goipsec/goipsec.conf]" ] || { echo "image-test: entry point and command: $files" >&2; exit 1; }
ctr=$($b from --pull=false goipsec-test)
mnt=$($b mount "$ctr")
listing=$(cd "$mnt" && find . -type f | sort | tr '\n' ' ')
[ "$listing" = "./etc/goipsec/goipsec.conf ./usr/local/bin/goipsec " ] || { echo "image-test: unexpected files: $listing" >&2; exit 1; }
cmp "$mnt/usr/local/bin/goipsec" goipsec
$b umount "$ctr" >/dev/null
# The image's own binary validates the image's own configuration (no network, no root needed).
out=$($b run --isolation chroot "$ctr" -- /usr/local/bin/goipsec check --offline -c /etc/goipsec/goipsec.conf 2>&1) || {
  echo "image-test: goipsec check in the image failed: $out" >&2; exit 1; }
echo "image-test: ok ($(du -sh goipsec | cut -f1) binary, FROM scratch, built without a registry)"
