package userspace

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
)

// innerUDP builds an IPv4/UDP packet from src to dst (checksums are not needed for the engine).
func innerUDP(src, dst [4]byte, payload string) []byte {
	p := make([]byte, 28+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8], p[9] = 64, 17
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	binary.BigEndian.PutUint16(p[20:], 1000)
	binary.BigEndian.PutUint16(p[22:], 2000)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

// TestDropsCounted injects crafted ESP-in-UDP packets into a running engine and checks that each
// kind of bad packet is dropped and counted under its reason, and a good one is delivered.
func TestDropsCounted(t *testing.T) { testDrops(t, true) }

// TestDropsCountedRawESP does the same with raw ESP (IP protocol 50), received on the raw socket
// while the engines send through their AF_PACKET rings.
func TestDropsCountedRawESP(t *testing.T) { testDrops(t, false) }

func testDrops(t *testing.T, encap bool) {
	sc := scenario{name: "drops", proto: dataplane.ESP, encap: encap, enc: esp.EncrAESGCM16, encKeyLen: 36}
	a, b := newPair(t)
	inst := install(t, sc, a, b)
	// Our own sender for SPI 0x1001 (A to B) with A's key, using sequence numbers far above A's.
	forger, err := esp.NewSA(esp.Params{SPI: 0x1001, Encryption: esp.EncrAESGCM16, EncKey: inst.keys[0x1001][0]})
	if err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	if err := a.ns.Do(func() error {
		var err error
		if encap {
			conn, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: inst.outerB.AsSlice(), Port: 4500})
		} else {
			conn, err = net.DialIP("ip4:50", nil, &net.IPAddr{IP: inst.outerB.AsSlice()})
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	seal := func(seq uint64, inner []byte) []byte {
		pkt, err := forger.Seal(nil, seq, 4, inner, 0)
		if err != nil {
			t.Fatal(err)
		}
		return pkt
	}
	good := innerUDP([4]byte{10, 1, 0, 1}, [4]byte{10, 2, 0, 1}, "good")
	wrongSelector := innerUDP([4]byte{10, 9, 0, 1}, [4]byte{10, 2, 0, 1}, "outside the SA's selectors")
	valid := seal(100000, good)
	tamperedCT := append([]byte(nil), seal(100001, good)...)
	tamperedCT[20] ^= 0x01
	tamperedICV := append([]byte(nil), seal(100002, good)...)
	tamperedICV[len(tamperedICV)-1] ^= 0x80
	unknownSPI := append([]byte(nil), valid...)
	binary.BigEndian.PutUint32(unknownSPI, 0xdeadbeef)
	// The valid packet goes first and alone: batches are decrypted in parallel, so a stale packet
	// racing it could otherwise arrive while the window is still empty and be accepted.
	if _, err := conn.Write(valid); err != nil {
		t.Fatal(err)
	}
	key := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x1001, Dst: inst.outerB}
	waitFor(t, func() bool { st, _ := b.eng.SAStats(key); return st.Packets == 1 })
	send := [][]byte{
		valid,                   // replay
		seal(100000-5000, good), // left of the 1024-packet window
		tamperedCT,
		tamperedICV,
		unknownSPI,
		{0xff}, // NAT-keepalive: ignored, not a drop (in raw ESP: too short)
		seal(100003, wrongSelector),
		{1, 2, 3}, // too short to be ESP
		// A flow that passes, then one that does not, back to back (likely one batch): the
		// check remembered for the first must not let the second through.
		seal(100004, good),
		seal(100005, wrongSelector),
	}
	keepAlives, malformed := uint64(1), uint64(1)
	if !encap {
		keepAlives, malformed = 0, 2
	}
	for _, p := range send {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := b.eng.SAStats(key)
		es := b.eng.Stats()
		if st.Packets == 2 && st.Drops.Total() == 6 && es.Drops[dataplane.DropNoSA] == 1 && es.KeepAlives == keepAlives && es.Drops[dataplane.DropMalformed] == malformed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters after 5s: SA %+v, engine %+v", st, es)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, _ := b.eng.SAStats(key)
	want := map[dataplane.DropReason]uint64{dataplane.DropReplay: 2, dataplane.DropAuth: 2, dataplane.DropPolicy: 2}
	for r, n := range want {
		if st.Drops[r] != n {
			t.Errorf("drops[%s] = %d, want %d (all: %v)", r, st.Drops[r], n, st.Drops)
		}
	}
}
