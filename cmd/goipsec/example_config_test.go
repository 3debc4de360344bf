package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/config"
)

// The files in packaging/ are what operators install; these tests keep them loadable and in
// agreement with the defaults the command assumes.
const (
	exampleConfigPath = "../../packaging/goipsec.conf.example"
	serviceUnitPath   = "../../packaging/goipsec.service"
)

// optionalSetting matches the example's commented-out settings ("#   key = value"); prose comments
// have a single blank after the "#".
var optionalSetting = regexp.MustCompile(`(?m)^(\s*)#   ([a-z_]+ = .*)$`)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := config.Load(exampleConfigPath)
	if err != nil {
		t.Fatalf("the example configuration does not load:\n%v", err)
	}
	if len(cfg.Connections) != 1 {
		t.Fatalf("%d connections, want the one site-to-site connection", len(cfg.Connections))
	}
	c := cfg.Connections[0]
	if c.Name != "site" || c.Local.Method != config.AuthPSK || c.Remote.Method != config.AuthPSK {
		t.Fatalf("connection %q with auth %q/%q, want site with psk/psk", c.Name, c.Local.Method, c.Remote.Method)
	}
	if c.Local.ID.Text != "gw1.example.com" || c.Remote.ID.Text != "gw2.example.com" {
		t.Fatalf("identities %q/%q, want gw1.example.com/gw2.example.com", c.Local.ID.Text, c.Remote.ID.Text)
	}
	if len(c.Children) != 1 || c.Children[0].StartAction != config.ActionStart || c.Children[0].Mode != config.ModeTunnel {
		t.Fatalf("children %+v, want one tunnel-mode child started at load", c.Children)
	}
	if len(cfg.Secrets.IKE) != 1 || len(cfg.Secrets.IKE[0].IDs) != 2 {
		t.Fatalf("secrets %+v, want one PSK for both identities", cfg.Secrets.IKE)
	}
	// The daemon section spells out the defaults; the CLI and the systemd unit rely on them.
	if cfg.Daemon.VICISocket != defaultSocket {
		t.Fatalf("vici_socket %q, but the CLI dials %q", cfg.Daemon.VICISocket, defaultSocket)
	}
	if cfg.Daemon.TunName != "goipsec0" || cfg.Daemon.MTU != 1400 || cfg.Daemon.IKEPort != 500 || cfg.Daemon.NATTPort != 4500 {
		t.Fatalf("daemon section %+v does not show the defaults", cfg.Daemon)
	}
	if cfg.Daemon.MetricsListen != "" || cfg.Daemon.Log.KeylogFile != "" {
		t.Fatalf("metrics %q, key log %q: both must be off unless uncommented", cfg.Daemon.MetricsListen, cfg.Daemon.Log.KeylogFile)
	}
}

// TestExampleConfigOptionalSettingsLoad switches on every commented-out setting, so that an
// operator who uncomments one gets a working file.
func TestExampleConfigOptionalSettingsLoad(t *testing.T) {
	data, err := os.ReadFile(exampleConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	n := len(optionalSetting.FindAll(data, -1))
	if n != 7 {
		t.Fatalf("found %d optional settings, want 7 (rekey_time twice, encap, mode, metrics_listen, ike, keylog_file)", n)
	}
	enabled := optionalSetting.ReplaceAll(data, []byte("$1$2"))
	tree, err := config.Parse(exampleConfigPath, enabled)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromTree(tree)
	if err != nil {
		t.Fatalf("the example with its optional settings switched on does not load:\n%v\n%s", err, enabled)
	}
	c := cfg.Connections[0]
	if !c.Encap || c.Children[0].Mode != config.ModeTransport {
		t.Fatalf("encap %v, mode %q: the optional settings were not applied", c.Encap, c.Children[0].Mode)
	}
	if cfg.Daemon.MetricsListen != "127.0.0.1:9100" || cfg.Daemon.Log.KeylogFile != "/var/log/goipsec/keys.log" || cfg.Daemon.Log.Subsystems["ike"] != "debug" {
		t.Fatalf("daemon settings %+v: the optional settings were not applied", cfg.Daemon)
	}
}

// TestServiceUnitMatchesDefaults: the unit starts goipsec with the configuration path `run` uses by
// default, and its RuntimeDirectory is the directory of the default control socket, so that
// `goipsec status` works without --socket.
func TestServiceUnitMatchesDefaults(t *testing.T) {
	data, err := os.ReadFile(serviceUnitPath)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = append(settings[k], v)
		}
	}
	defConfig := (&cli{}).runCommand().Flags().Lookup("config").DefValue
	if got, want := settings["ExecStart"], []string{"/usr/local/bin/goipsec run -c " + defConfig}; !slices.Equal(got, want) {
		t.Fatalf("ExecStart %q, want %q", got, want)
	}
	if got, want := settings["ExecStartPre"], []string{"/usr/local/bin/goipsec check --offline -c " + defConfig}; !slices.Equal(got, want) {
		t.Fatalf("ExecStartPre %q, want %q", got, want)
	}
	// Type=notify: readiness comes from the daemon (internal/systemd), with a watchdog.
	if got := settings["Type"]; !slices.Equal(got, []string{"notify"}) || len(settings["WatchdogSec"]) != 1 {
		t.Fatalf("Type %q, WatchdogSec %q: want notify with a watchdog", got, settings["WatchdogSec"])
	}
	if got, want := settings["RuntimeDirectory"], []string{strings.TrimPrefix(filepath.Dir(defaultSocket), "/run/")}; !slices.Equal(got, want) {
		t.Fatalf("RuntimeDirectory %q, but the default control socket is %s", got, defaultSocket)
	}
	var keyDefault string
	for _, k := range config.Keys() {
		if k.Path == "daemon.vici_socket" {
			keyDefault = k.Default
		}
	}
	if keyDefault != defaultSocket {
		t.Fatalf("daemon.vici_socket defaults to %q, but the CLI dials %q", keyDefault, defaultSocket)
	}
	if got := settings["DeviceAllow"]; !slices.Equal(got, []string{"/dev/net/tun rw"}) {
		t.Fatalf("DeviceAllow %q: the TUN device must stay reachable", got)
	}
	// The three capabilities the data plane and the IKE port need (docs/operations.md).
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if got := settings[key]; !slices.Equal(got, []string{"CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE"}) {
			t.Fatalf("%s %q", key, got)
		}
	}
}
