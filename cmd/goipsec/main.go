// Command goipsec is an IPsec implementation (ESP, AH, IKEv2) with its own userspace data plane.
// See README.md and goipsec(8).

// Go's own DNS resolver, never the C library's: the binary is static (static_cgo.go), where
// glibc's resolver would need the build machine's shared libraries.
//
//go:debug netdns=go
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		// check has printed its report already; its exit code is the answer.
		if !errors.Is(err, errCheckFailed) {
			fmt.Fprintln(os.Stderr, "goipsec:", err)
		}
		os.Exit(1)
	}
}
