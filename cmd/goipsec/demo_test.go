package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the README's main job end to end and checks that it reports an IKEv2-keyed tunnel
// that carried pings and TCP, and that it removed its namespaces.
func TestDemo(t *testing.T) {
	requireRoot(t)
	var out bytes.Buffer
	if err := runDemo(context.Background(), &out, time.Second); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"IKEv2 (PSK) established", "aes256gcm16-prfsha256-x25519", "5 sent, 5 received", "Gbit/s", "demo/net  out", "cleaned up"} {
		if !strings.Contains(text, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, text)
		}
	}
	list, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	// Only this process's demo: other test runs on the machine may run one at the same time.
	if strings.Contains(string(list), fmt.Sprintf("goipsec-demo%d-", os.Getpid())) {
		t.Fatalf("demo left namespaces behind:\n%s", list)
	}
}
