// Command goipsec is an IPsec implementation (ESP, AH, IKEv2) with its own
// userspace data plane. See README.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "goipsec:", err)
		os.Exit(1)
	}
}
