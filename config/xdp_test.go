package config

import (
	"strings"
	"testing"
)

// TestRawESPXDPKey: daemon.raw_esp_xdp is off by default, on with "yes", and anything but yes or
// no is an error naming file:line.
func TestRawESPXDPKey(t *testing.T) {
	if d := mustLoad(t, minimalConn("    children { net { } }\n")); d.Daemon.RawESPXDP {
		t.Fatal("raw_esp_xdp is on by default")
	}
	if d := mustLoad(t, "daemon {\n  raw_esp_xdp = yes\n}\n"); !d.Daemon.RawESPXDP {
		t.Fatal("raw_esp_xdp = yes did not turn AF_XDP receive on")
	}
	_, err := load("daemon {\n  raw_esp_xdp = sometimes\n}\n")
	if want := `swanctl.conf:2: daemon.raw_esp_xdp: invalid value "sometimes" (expected yes or no)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %s", err, want)
	}
}
