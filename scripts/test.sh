#!/usr/bin/env bash
# Runs every goipsec test: formatting, vet, unit tests, namespace and strongSwan interop tests
# (race detector on), then each fuzz target briefly. Installs missing dependencies first.
# Must run as root: the integration tests create network namespaces, TUN devices and run charon.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
scripts/deps.sh test

if [ "$(id -u)" -ne 0 ]; then
  echo "test: must run as root (network namespaces, TUN, strongSwan); try: sudo make test" >&2
  exit 1
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed: $bad" >&2; exit 1; fi
echo "== go mod tidy"
# Direct dependencies marked direct, nothing unused: a diff fails the run.
go mod tidy -diff
echo "== go vet"
go vet ./...
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "== go test (race)"
# GOIPSEC_INTEGRATION=require makes namespace/interop tests fail, never skip, when something is missing.
GOIPSEC_INTEGRATION=require go test -race -count=1 -timeout 30m ./...
echo "== container image (buildah, FROM scratch, no registry)"
scripts/image-test.sh
echo "== make install (staged)"
stage=$(mktemp -d)
make -s install DESTDIR="$stage" >/dev/null
for f in usr/local/bin/goipsec usr/local/share/man/man8/goipsec.8 usr/local/share/man/man5/goipsec.conf.5 \
         usr/local/lib/systemd/system/goipsec.service etc/goipsec/goipsec.conf.example; do
  [ -f "$stage/$f" ] || { echo "make install did not install $f" >&2; exit 1; }
done
rm -rf "$stage"
echo "== fuzz (each target briefly)"
# A number of executions rather than a duration: on a loaded machine a time budget can end while a
# worker is still busy, which Go reports as a failure ("context deadline exceeded").
fuzztime=${FUZZTIME:-20000x}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $f"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$fuzztime" "$pkg" >/tmp/goipsec-fuzz.log 2>&1 || { cat /tmp/goipsec-fuzz.log; exit 1; }
  done
done
echo "== all tests passed"
