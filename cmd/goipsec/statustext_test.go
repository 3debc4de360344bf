package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/status"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("%s differs (go test -run %s -update rewrites it):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func defaultIKE() []string {
	ps, _ := proposal.ParseIKE("default")
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// sampleStatus has one connection of each state: up (behind NAT, initiator), degraded (IKE SA
// without Child SA), down with the default proposals and a failure, and a manual SA.
func sampleStatus() *status.Status {
	st := &status.Status{SchemaVersion: status.SchemaVersion, Connections: []status.Connection{
		{Name: "site", File: "/etc/goipsec/goipsec.conf", Line: 2, State: status.StateUp, LocalAddrs: []string{"192.0.2.1"}, RemoteAddrs: []string{"192.0.2.2"},
			LocalID: "gw1.example.org", RemoteID: "gw2.example.org", Proposals: []string{"aes256gcm16-prfsha256-x25519"}, DPDDelay: 30,
			Children: []status.ChildConfig{{Name: "net", Mode: "tunnel", StartAction: "start", LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"}}},
			IKESAs: []status.IKESA{{SPIInitiator: "1122334455667788", SPIResponder: "99aabbccddeeff00", Initiator: true, State: "established",
				Local: "192.0.2.1:4500", Remote: "192.0.2.2:4500", LocalID: "gw1.example.org", RemoteID: "gw2.example.org",
				Proposal: "aes256gcm16-prfsha256-x25519", NATLocal: true, EstablishedAt: now.Add(-5*time.Minute - 3*time.Second),
				RekeyAt: now.Add(3*time.Hour + 54*time.Minute), LastReceivedAt: now.Add(-2 * time.Second),
				Children: []status.ChildSA{{Name: "net", SPIIn: "c1a2b3c4", SPIOut: "0d0e0f01", Mode: "tunnel", UDPEncap: true, Proposal: "aes256gcm16",
					LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"}, InstalledAt: now.Add(-5 * time.Minute),
					RekeyAt: now.Add(50 * time.Minute), ExpireAt: now.Add(58 * time.Minute),
					In: status.Traffic{Bytes: 1258291, Packets: 1000, Drops: 2}, Out: status.Traffic{Bytes: 3565158, Packets: 2000}}}}}},
		{Name: "branch", File: "/etc/goipsec/goipsec.conf", Line: 30, State: status.StateDegraded,
			StateReason: "the IKE SA is established but has no Child SA: no traffic is protected (see last_failure)",
			LocalAddrs:  []string{"192.0.2.1"}, RemoteAddrs: []string{"198.51.100.7"}, Proposals: []string{"aes128gcm16-prfsha256-ecp256"},
			Children: []status.ChildConfig{{Name: "lan", Mode: "tunnel", StartAction: "none", LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.7.0.0/16"}}},
			IKESAs: []status.IKESA{{SPIInitiator: "0102030405060708", SPIResponder: "a1a2a3a4a5a6a7a8", State: "established", Local: "192.0.2.1:500",
				Remote: "198.51.100.7:500", LocalID: "192.0.2.1", RemoteID: "198.51.100.7", Proposal: "aes128gcm16-prfsha256-ecp256",
				EstablishedAt: now.Add(-time.Minute)}},
			LastFailure: &status.Failure{At: now.Add(-time.Minute), Message: "child lan: peer accepted none of our ESP proposals: we offered aes128gcm16"}},
		{Name: "office", File: "/etc/goipsec/goipsec.conf", Line: 50, State: status.StateDown, LocalAddrs: []string{"%any"}, RemoteAddrs: []string{"office.example.org"},
			Proposals:   defaultIKE(),
			Children:    []status.ChildConfig{{Name: "lan", Mode: "tunnel", StartAction: "trap", LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.3.0.0/24"}}},
			LastFailure: &status.Failure{At: now.Add(-2 * time.Hour), Message: "peer 203.0.113.5:500 did not answer 5 retransmissions"}},
	}, Manual: []status.ManualSA{{Name: "legacy", Mode: "tunnel", Proposal: "aes256gcm16", Local: "192.0.2.1", Remote: "192.0.2.9",
		LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.9.0.0/24"}, SPIIn: "00002001", SPIOut: "00001001", In: status.Traffic{Bytes: 100, Packets: 1}}}}
	st.Normalize()
	return st
}

// TestStatusText: the human status stays narrow (no expanded default proposal list), puts each
// fact on its own labelled line and says why a connection is degraded.
func TestStatusText(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, sampleStatus(), now)
	out := b.String()
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 110 {
			t.Errorf("line of %d columns: %q", len(l), l)
		}
	}
	golden(t, "status.txt", out)
}

func TestCompactProposals(t *testing.T) {
	if got := compactProposals(defaultIKE(), "default", proposal.ParseIKE); got != "default" {
		t.Errorf("default set printed as %q", got)
	}
	if got := compactProposals([]string{"a", "b", "c", "d"}, "default", proposal.ParseIKE); got != "a, b (and 2 more)" {
		t.Errorf("long list printed as %q", got)
	}
}

func TestDoctorReport(t *testing.T) {
	st := sampleStatus()
	var b bytes.Buffer
	probes := []probeLine{{"198.51.100.7:500", "answered", "an IKEv2 responder answered and accepts one of our IKE proposals"},
		{"198.51.100.7:4500", "silent", "no answer within 2s"}}
	if err := doctorReport(&b, st, "branch", probes, now); err != nil {
		t.Fatal(err)
	}
	golden(t, "doctor-branch.txt", b.String())
	if err := doctorReport(&b, st, "nosuch", nil, now); err == nil || err.Error() != `no such connection "nosuch" (configured: site, branch, office)` {
		t.Fatalf("doctor nosuch: %v", err)
	}
}

func TestRoundDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{42 * time.Second: "42s", 5*time.Minute + 3*time.Second: "5m3s", 50 * time.Minute: "50m",
		2 * time.Hour: "2h", 59*time.Minute + 20*time.Second: "59m20s", 10 * time.Minute: "10m", 20 * time.Second: "20s", time.Hour + 10*time.Minute: "1h10m", 3*time.Hour + 54*time.Minute + 10*time.Second: "3h54m", -time.Second: "0s"} {
		if got := roundDuration(d); got != want {
			t.Errorf("roundDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
