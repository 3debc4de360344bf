package interop

import (
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
)

// TestNATMappingChangesMidTransfer: the NAT in front of goipsec's initiator forgets its mappings
// during a transfer and gives it a new port; the responder follows the IKE SA and its ESP-in-UDP
// SAs to the new mapping on the next authenticated message, and the transfer goes on.
func TestNATMappingChangesMidTransfer(t *testing.T) {
	testnet.Require(t, "conntrack")
	private, nat, public := natSetup3(t, true, goipsecInner, peerInner)
	resp := startGoipsec(t, public, connConf{local: publicHost, remote: "%any", localID: "pub.example", remoteID: "priv.example",
		ikeProposal: natCase.ike, espProposal: natCase.esp, localTS: rightNet4, remoteTS: leftNet4}.String())
	init := startGoipsec(t, private, connConf{local: privateHost, remote: publicHost, localID: "priv.example", remoteID: "pub.example",
		ikeProposal: natCase.ike, espProposal: natCase.esp, localTS: leftNet4, remoteTS: rightNet4, startAction: "start",
		extra: "    dpd_delay = 2s\n"}.String())
	init.waitLog(t, "Child SA established", 20*time.Second)
	resp.waitLog(t, "Child SA established", 10*time.Second)
	before := assertNATLogged(t, resp, natOutside)

	done := make(chan string, 1)
	go func() {
		srv := public.Start(t, "iperf3", "-s", "-1", "-p", "5298")
		defer srv.Stop()
		time.Sleep(300 * time.Millisecond)
		out, err := private.Output("timeout", "40", "iperf3", "-c", rightInner4, "-p", "5298", "-t", "15", "-i", "1")
		if err != nil {
			out = "FAILED: " + err.Error() + "\n" + out
		}
		done <- out
	}()
	time.Sleep(5 * time.Second)
	// The NAT rebinds: drop its connection tracking, so that the next packet out gets a new port.
	nat.Run(t, "conntrack", "-F")
	out := <-done
	if strings.HasPrefix(out, "FAILED") {
		t.Fatalf("the transfer broke off after the NAT rebinding:\n%s", out)
	}
	moved := resp.logLines("peer's NAT mapping changed")
	if len(moved) == 0 {
		t.Fatalf("the responder did not follow the new mapping (was %s)", before)
	}
	if !strings.Contains(logAttr(moved[0], "to"), natOutside) || logAttr(moved[0], "to") == logAttr(moved[0], "from") {
		t.Fatalf("moved from %q to %q", logAttr(moved[0], "from"), logAttr(moved[0], "to"))
	}
	// The gap lasts until the next authenticated IKE message through the new mapping (dpd_delay
	// 2 s): at most two seconds of the transfer without data.
	stalled := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "sec") && strings.Contains(line, " 0.00 Bytes") && !strings.Contains(line, "sender") {
			stalled++
		}
	}
	if stalled > 2 {
		t.Errorf("%d seconds without data around the rebinding:\n%s", stalled, out)
	}
	if ok, out := private.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping after the rebinding failed:\n%s", out)
	}
	if ok, out := public.Ping(t, leftInner4, 3); !ok {
		t.Fatalf("ping back after the rebinding failed:\n%s", out)
	}
}
