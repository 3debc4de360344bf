package userspace

import (
	"net"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/ts"
)

// TestBypassAndDiscard checks the two non-protect actions inside a protected range: bypass sends
// matching packets in the clear (past the tunnel), discard drops and counts them.
func TestBypassAndDiscard(t *testing.T) {
	sc := scenario{name: "policies", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36}
	a, b := newPair(t)
	install(t, sc, a, b)
	// Without the tunnel, A reaches B's inner subnet through the veth.
	if _, err := a.ns.IP("route", "add", "10.2.0.0/24", "via", "192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	local := []ts.Selector{ts.FromPrefix(a.subnet)}
	for _, p := range []struct {
		remote string
		action dataplane.Action
	}{{"10.2.0.1[udp/9999]", dataplane.Bypass}, {"10.2.0.1[udp/9998]", dataplane.Discard}} {
		sel, err := ts.Parse(p.remote)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.eng.InstallPolicy(dataplane.PolicyParams{Name: p.action.String(), Local: local, Remote: []ts.Selector{sel}, Action: p.action}); err != nil {
			t.Fatal(err)
		}
	}
	var listeners [2]*net.UDPConn
	if err := b.ns.Do(func() error {
		for i, port := range []int{9999, 9998} {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: b.inner.AsSlice(), Port: port})
			if err != nil {
				return err
			}
			listeners[i] = c
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer listeners[0].Close()
	defer listeners[1].Close()
	var c *net.UDPConn
	if err := a.ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: a.inner.AsSlice()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, port := range []int{9999, 9998} {
		if _, err := c.WriteToUDP([]byte("clear"), &net.UDPAddr{IP: b.inner.AsSlice(), Port: port}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	listeners[0].SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, _, err := listeners[0].ReadFromUDP(buf); err != nil || string(buf[:n]) != "clear" {
		t.Fatalf("bypassed datagram did not arrive: %q %v", buf[:n], err)
	}
	waitFor(t, func() bool { return a.eng.Stats().Drops[dataplane.DropDiscard] == 1 })
	if st := a.eng.Stats(); st.Bypassed != 1 {
		t.Errorf("Bypassed = %d, want 1", st.Bypassed)
	}
	if st, _ := b.eng.SAStats(dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x1001, Dst: b.outer}); st.Packets != 0 {
		t.Errorf("the bypassed datagram went through the tunnel (%d packets)", st.Packets)
	}
	listeners[1].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, _, err := listeners[1].ReadFromUDP(buf); err == nil {
		t.Error("a discarded datagram arrived")
	}
}
