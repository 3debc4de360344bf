//go:build cgo && !race

package main

// `go install ./cmd/goipsec` on a machine with a C compiler builds with cgo, which only the
// standard library's C resolver (package net) would use — and links dynamically. Asking the
// external linker for a static binary keeps the one-file, runs-anywhere binary that
// CGO_ENABLED=0 gives. The linker warns that getaddrinfo in a static binary needs the build
// machine's glibc at run time; goipsec never calls it: main.go selects Go's own resolver
// (//go:debug netdns=go). Race-detector builds (tests) stay dynamic: the race runtime needs it.

// #cgo LDFLAGS: -static
import "C"
