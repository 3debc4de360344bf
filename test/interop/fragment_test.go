package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestFragmentedIKEAuth: goipsec's IKE_AUTH request carries so many traffic selectors that it is
// larger than a datagram may be, so goipsec sends it as IKEv2 fragments (RFC 7383) and strongSwan
// must reassemble it; the answer comes back fragmented too (charon's fragment_size is lowered).
func TestFragmentedIKEAuth(t *testing.T) {
	_, left, right := setup(t)
	var extra []string
	for i := 0; i < 100; i++ {
		extra = append(extra, fmt.Sprintf("10.3.%d.0/24", i))
	}
	localTS := leftNet4 + "," + strings.Join(extra, ",")
	c := startCharonConf(t, right, swanConn{local: rightOuter, remote: leftOuter, ike: "aes256gcm16-prfsha256-x25519",
		children: []swanChild{{name: "net", localTS: rightNet4, remoteTS: "10.0.0.0/8", esp: "aes256gcm16"}}},
		"  fragment_size = 1000\n")
	cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
		ikeProposal: "aes256gcm16-prfsha256-x25519", espProposal: "aes256gcm16",
		localTS: localTS, remoteTS: rightNet4, startAction: "start"}
	g := startGoipsec(t, left, cc.String())
	c.WaitEstablished(t, "gt", 30*time.Second)
	g.waitLog(t, "Child SA established", 10*time.Second)
	log := c.Log()
	for _, want := range []string{"reassembled fragmented IKE message", "splitting IKE message"} {
		if !strings.Contains(log, want) {
			t.Fatalf("charon's log lacks %q (goipsec's IKE_AUTH must arrive, and the answer leave, in fragments):\n%s", want, grepLines(log, "fragment"))
		}
	}
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping through the tunnel: %s", out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
