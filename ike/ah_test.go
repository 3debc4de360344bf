package ike

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

func mustAH(t *testing.T, s string) []proposal.Proposal {
	t.Helper()
	p, err := proposal.ParseAH(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// childProps parses "ah:..." and "esp:..." lists, joined with ";", into one list of alternatives
// in that order (as a child with both ah_proposals and esp_proposals has them).
func childProps(t *testing.T, spec string) []proposal.Proposal {
	t.Helper()
	var out []proposal.Proposal
	for _, part := range strings.Split(spec, ";") {
		proto, list, _ := strings.Cut(part, ":")
		if proto == "ah" {
			out = append(out, mustAH(t, list)...)
		} else {
			out = append(out, mustESP(t, list)...)
		}
	}
	return out
}

// ahPair is defaultPair with the child's proposals replaced.
func ahPair(t *testing.T, specI, specR string) (*PeerConfig, *PeerConfig) {
	ci, cr := defaultPair().build(t)
	ci.Children[0].Proposals = childProps(t, specI)
	cr.Children[0].Proposals = childProps(t, specR)
	return ci, cr
}

// checkAHInstall checks an AH Child SA pair: protocol AH on both sides, no encryption keys, and
// integrity keys of the algorithm's length (RFC 4868 §2.1.1: as long as the hash output) that
// pair up in both directions.
func checkAHInstall(t *testing.T, ic, rc *ChildInstall, integ uint16, keyLen int) {
	t.Helper()
	for _, c := range []*ChildInstall{ic, rc} {
		if c.Protocol() != proposal.ProtoAH {
			t.Fatalf("Child SA %08x is %s, want AH", c.SPIIn, c.Protocol())
		}
		if c.Proposal.Has(proposal.TypeEncryption) || len(c.EncrIn) != 0 || len(c.EncrOut) != 0 {
			t.Fatalf("AH Child SA %08x has encryption: %s, keys %d/%d bytes", c.SPIIn, c.Proposal, len(c.EncrIn), len(c.EncrOut))
		}
		if got := c.Proposal.Of(proposal.TypeIntegrity); len(got) != 1 || got[0].ID != integ {
			t.Fatalf("AH Child SA %08x: integrity %v, want %d", c.SPIIn, got, integ)
		}
		if len(c.IntegIn) != keyLen || len(c.IntegOut) != keyLen {
			t.Fatalf("AH Child SA %08x: integrity keys %d/%d bytes, want %d", c.SPIIn, len(c.IntegIn), len(c.IntegOut), keyLen)
		}
	}
	if ic.SPIIn != rc.SPIOut || ic.SPIOut != rc.SPIIn {
		t.Fatalf("SPIs do not pair up: %08x/%08x vs %08x/%08x", ic.SPIIn, ic.SPIOut, rc.SPIIn, rc.SPIOut)
	}
	if !bytes.Equal(ic.IntegOut, rc.IntegIn) || !bytes.Equal(ic.IntegIn, rc.IntegOut) || bytes.Equal(ic.IntegIn, ic.IntegOut) {
		t.Fatal("AH integrity keys do not pair up (or both directions share one key)")
	}
}

// TestAHChildInIKEAuth: a child with only AH proposals negotiates an AH Child SA in IKE_AUTH,
// for each AH integrity algorithm goipsec implements.
func TestAHChildInIKEAuth(t *testing.T) {
	for _, c := range []struct {
		ah     string
		integ  uint16
		keyLen int
	}{
		{"sha256", proposal.IntegHMACSHA2256128, 32},
		{"sha384", proposal.IntegHMACSHA2384192, 48},
		{"sha512-esn", proposal.IntegHMACSHA2512256, 64},
		{"aesxcbc", proposal.IntegAESXCBC96, 16},
		{"aescmac", proposal.IntegAESCMAC96, 16},
	} {
		t.Run(c.ah, func(t *testing.T) {
			ci, cr := ahPair(t, "ah:"+c.ah, "ah:sha512-sha384-sha256-aesxcbc-aescmac-esn-noesn")
			i, r, ic, rc, err := runHandshake(t, ci, cr)
			if err != nil {
				t.Fatal(err)
			}
			checkAHInstall(t, ic, rc, c.integ, c.keyLen)
			if wantESN := strings.HasSuffix(c.ah, "-esn"); ic.ESN != wantESN || rc.ESN != wantESN {
				t.Fatalf("ESN %v/%v, want %v", ic.ESN, rc.ESN, wantESN)
			}
			if i.Child(ic.SPIIn).Protocol() != proposal.ProtoAH || r.Child(rc.SPIIn).Protocol() != proposal.ProtoAH {
				t.Fatal("the Child SAs do not say AH")
			}
		})
	}
}

// TestAHProposalOnTheWire: the SA payload of an AH child request (the one IKE_AUTH carries, and
// CREATE_CHILD_SA's without KE) is, byte for byte, what RFC 7296 §3.3.1 and §3.3.2 lay out:
// Protocol ID 2 (AH), a 4-byte SPI, and only INTEG and ESN transforms — no ENCR (RFC 7296 §3.3:
// "AH: Integrity Algorithm, optional Diffie-Hellman Group, Extended Sequence Numbers").
func TestAHProposalOnTheWire(t *testing.T) {
	ci, cr := ahPair(t, "ah:sha256-sha512", "ah:sha256")
	i, _, _, _, err := runHandshake(t, ci, cr)
	if err != nil {
		t.Fatal(err)
	}
	req, ps, err := i.newChildRequest(ci.Children[0], false, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := wire.EncodePayloads(ps[:1])
	if err != nil {
		t.Fatal(err)
	}
	spi := binary.BigEndian.AppendUint32(nil, req.spi)
	want := []byte{
		0, 0, 0, 40, // generic payload header: no next payload, length 40
		0, 0, 0, 36, 1, 2, 4, 3, // last proposal, length 36, #1, Protocol ID 2 (AH), SPI size 4, 3 transforms
	}
	want = append(want, spi...)
	want = append(want,
		3, 0, 0, 8, 3, 0, 0, 12, // more follow; INTEG AUTH_HMAC_SHA2_256_128
		3, 0, 0, 8, 3, 0, 0, 14, // more follow; INTEG AUTH_HMAC_SHA2_512_256
		0, 0, 0, 8, 5, 0, 0, 0, // last; ESN No Extended Sequence Numbers
	)
	if !bytes.Equal(got, want) {
		t.Fatalf("AH SA payload\n got %x\nwant %x", got, want)
	}
}

// TestAHOrESP: a child with both ah_proposals and esp_proposals offers them as alternatives in
// one SA payload (RFC 7296 §2.7: one protocol per proposal, the response keeps it); the responder
// takes the first of its own proposals the initiator offered, whatever the protocol.
func TestAHOrESP(t *testing.T) {
	for _, c := range []struct {
		name, specI, specR string
		want               proposal.Protocol
		fail               []string
	}{
		{"responder wants AH", "esp:aes256gcm16;ah:sha256", "ah:sha256", proposal.ProtoAH, nil},
		{"responder wants ESP", "ah:sha256;esp:aes256gcm16", "esp:aes256gcm16", proposal.ProtoESP, nil},
		{"responder prefers AH", "esp:aes256gcm16;ah:sha256", "ah:sha256;esp:aes256gcm16", proposal.ProtoAH, nil},
		{"responder prefers ESP", "ah:sha256;esp:aes256gcm16", "esp:aes256gcm16;ah:sha256", proposal.ProtoESP, nil},
		{"AH only meets ESP only", "ah:sha256", "esp:aes256gcm16", 0,
			[]string{"no AH proposal chosen", "peer offered AH:sha256-noesn", "we accept net: aes256gcm16-noesn"}},
		{"AH algorithms differ", "ah:sha384;esp:aes128gcm16", "ah:sha256;esp:aes256gcm16", 0,
			[]string{"no AH or ESP proposal chosen", "AH:sha384-noesn, aes128gcm16-noesn", "AH:sha256-noesn, aes256gcm16-noesn"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ci, cr := ahPair(t, c.specI, c.specR)
			_, _, ic, rc, err := runHandshake(t, ci, cr)
			if c.fail != nil {
				if err == nil {
					t.Fatal("handshake succeeded")
				}
				for _, w := range c.fail {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ic.Protocol() != c.want || rc.Protocol() != c.want {
				t.Fatalf("negotiated %s/%s, want %s", ic.Protocol(), rc.Protocol(), c.want)
			}
			if c.want == proposal.ProtoAH {
				checkAHInstall(t, ic, rc, proposal.IntegHMACSHA2256128, 32)
			} else if len(ic.EncrOut) != 36 || !bytes.Equal(ic.EncrOut, rc.EncrIn) {
				t.Fatal("ESP keys do not pair up")
			}
		})
	}
}

// TestAHNotThroughNAT: UDP encapsulation carries ESP only (RFC 3948), so an IKE SA whose Child
// SAs are encapsulated (here encap = yes: the peer then sees a NAT) never offers or accepts AH;
// nor does one over TCP (RFC 9329).
func TestAHNotThroughNAT(t *testing.T) {
	t.Run("AH only", func(t *testing.T) {
		ci, cr := ahPair(t, "esp:aes256gcm16", "esp:aes256gcm16")
		ci.ForceEncap = true
		cfgI, _ := ahChild(t, ci, cr, "sha256")
		i, _, _, _, err := runHandshake(t, ci, cr)
		if err != nil {
			t.Fatal(err)
		}
		// IKE_AUTH builds its child request the same way (newChildRequest).
		if !i.QueueCreateChild(cfgI) {
			t.Fatal("QueueCreateChild refused")
		}
		if req, err := i.NextRequest(); req != nil || err != nil {
			t.Fatalf("an AH child was requested through a NAT: %+v, %v", req, err)
		}
		_, err = installs(i)
		if err == nil || !strings.Contains(err.Error(), "child ah: AH is not possible here: encap = yes forces UDP encapsulation") || !strings.Contains(err.Error(), "RFC 3948") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("TCP", func(t *testing.T) {
		// RFC 9329 frames IKE and ESP only: an IKE SA over TCP offers no AH either.
		ci, cr := ahPair(t, "esp:aes256gcm16", "esp:aes256gcm16")
		cfgI, _ := ahChild(t, ci, cr, "sha256")
		i, _, _, _, err := runHandshake(t, ci, cr)
		if err != nil {
			t.Fatal(err)
		}
		i.TCP = true // as the engine marks an IKE SA it runs over TCP
		if !i.QueueCreateChild(cfgI) {
			t.Fatal("QueueCreateChild refused")
		}
		if req, err := i.NextRequest(); req != nil || err != nil {
			t.Fatalf("an AH child was requested over TCP: %+v, %v", req, err)
		}
		if _, err = installs(i); err == nil || !strings.Contains(err.Error(), "AH is not possible here: the IKE SA runs over TCP, which carries only ESP (RFC 9329)") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("AH or ESP falls back to ESP", func(t *testing.T) {
		ci, cr := ahPair(t, "ah:sha256;esp:aes256gcm16", "ah:sha256;esp:aes256gcm16")
		ci.ForceEncap = true
		_, _, ic, rc, err := runHandshake(t, ci, cr)
		if err != nil {
			t.Fatal(err)
		}
		if ic.Protocol() != proposal.ProtoESP || rc.Protocol() != proposal.ProtoESP || !ic.Encap || !rc.Encap {
			t.Fatalf("negotiated %s/%s, encap %v/%v; want ESP in UDP", ic.Protocol(), rc.Protocol(), ic.Encap, rc.Encap)
		}
	})
	t.Run("responder skips AH", func(t *testing.T) {
		ci, cr := ahPair(t, "ah:sha256;esp:aes256gcm16", "ah:sha256")
		ci.ForceEncap = true
		_, _, _, _, err := runHandshake(t, ci, cr)
		if err == nil || !strings.Contains(err.Error(), "net: AH only, but a NAT lies between the peers") {
			t.Fatalf("error %v", err)
		}
	})
}

// ahChild adds a second child, negotiated with AH, to both configurations.
func ahChild(t *testing.T, ci, cr *PeerConfig, ah string) (*ChildConfig, *ChildConfig) {
	t.Helper()
	mk := func(local, remote string) *ChildConfig {
		l, err1 := ts.Parse(local)
		r, err2 := ts.Parse(remote)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		return &ChildConfig{Name: "ah", LocalTS: []ts.Selector{l}, RemoteTS: []ts.Selector{r}, Proposals: mustAH(t, ah), Mode: Transport}
	}
	a, b := mk("10.5.0.0/24", "10.6.0.0/24"), mk("10.6.0.0/24", "10.5.0.0/24")
	ci.Children = append(ci.Children, a)
	cr.Children = append(cr.Children, b)
	return a, b
}

// step runs the initiator's next request through the responder and back.
func step(t *testing.T, from, to *SA, id *uint32) (req, resp *Message) {
	t.Helper()
	req, err := from.NextRequest()
	if err != nil || req == nil {
		t.Fatalf("no request: %v", err)
	}
	*id++
	resp = exchange(t, from, to, req, *id)
	if _, err := from.ProcessResponse(resp); err != nil {
		t.Fatal(err)
	}
	return req, resp
}

// TestAHCreateRekeyDelete: an AH Child SA created with CREATE_CHILD_SA (with PFS), rekeyed with
// a REKEY_SA notify naming protocol AH (RFC 7296 §3.10: "Protocol ID ... the SA to be rekeyed"),
// and deleted with a Delete payload for AH (§3.11). A Delete for ESP that carries the AH SA's SPI
// leaves it alone.
func TestAHCreateRekeyDelete(t *testing.T) {
	ci, cr := defaultPair().build(t)
	cfgI, _ := ahChild(t, ci, cr, "sha384-x25519")
	i, r, _, _, err := runHandshake(t, ci, cr)
	if err != nil {
		t.Fatal(err)
	}
	id := uint32(1)

	if !i.QueueCreateChild(cfgI) {
		t.Fatal("QueueCreateChild refused")
	}
	req, _ := step(t, i, r, &id)
	if ke := find[*wire.KE](req.Payloads); ke == nil || ke.Group != proposal.KECurve25519 {
		t.Fatal("CREATE_CHILD_SA for the AH child carries no X25519 KE (PFS)")
	}
	if sa := find[*wire.SA](req.Payloads); sa == nil || len(sa.Proposals) != 1 || sa.Proposals[0].Protocol != wire.ProtoAH {
		t.Fatalf("CREATE_CHILD_SA request SA payload %+v, want one AH proposal", sa)
	}
	ics, ierr := installs(i)
	rcs, rerr := installs(r)
	if ierr != nil || rerr != nil || len(ics) != 1 || len(rcs) != 1 {
		t.Fatalf("create: %d/%d installs, errors %v %v", len(ics), len(rcs), ierr, rerr)
	}
	checkAHInstall(t, ics[0], rcs[0], proposal.IntegHMACSHA2384192, 48)
	if ics[0].Mode != Transport {
		t.Fatal("the AH child is not in transport mode")
	}
	old := ics[0]

	// Rekey from the responder's side, so that the REKEY_SA names the SPI the initiator knows
	// as outbound.
	if !r.QueueRekeyChild(rcs[0].SPIIn) {
		t.Fatal("QueueRekeyChild refused")
	}
	req, _ = step(t, r, i, &id)
	n := findNotify(req.Payloads, wire.RekeySA)
	if n == nil || n.Protocol != wire.ProtoAH || !bytes.Equal(n.SPI, spiBytes(rcs[0].SPIIn)) {
		t.Fatalf("REKEY_SA notify %+v, want protocol AH and SPI %08x", n, rcs[0].SPIIn)
	}
	rNew, rerr := installs(r)
	iNew, ierr := installs(i)
	if ierr != nil || rerr != nil || len(iNew) != 1 || len(rNew) != 1 {
		t.Fatalf("rekey: %d/%d installs, errors %v %v", len(iNew), len(rNew), ierr, rerr)
	}
	checkAHInstall(t, rNew[0], iNew[0], proposal.IntegHMACSHA2384192, 48)
	if iNew[0].Replaces != old.SPIIn {
		t.Fatalf("the new AH Child SA replaces %08x, want %08x", iNew[0].Replaces, old.SPIIn)
	}
	// The rekeying side deletes the old Child SA: a Delete for AH.
	req, _ = step(t, r, i, &id)
	d := find[*wire.Delete](req.Payloads)
	if d == nil || d.Protocol != wire.ProtoAH || len(d.SPIs) != 1 || !bytes.Equal(d.SPIs[0], spiBytes(rcs[0].SPIIn)) {
		t.Fatalf("Delete %+v, want AH %08x", d, rcs[0].SPIIn)
	}
	if i.Child(old.SPIIn) != nil || r.Child(rcs[0].SPIIn) != nil {
		t.Fatal("the rekeyed AH Child SA is still there")
	}
	i.TakeEffects()
	r.TakeEffects()

	// A Delete for ESP naming the AH SA's SPI is not for it; one for AH is.
	cur := iNew[0]
	for _, proto := range []wire.ProtocolID{wire.ProtoESP, wire.ProtoAH} {
		resp := i.ProcessRequest(&Message{Exchange: wire.ExchangeInformational,
			Payloads: []wire.Payload{&wire.Delete{Protocol: proto, SPIs: [][]byte{spiBytes(cur.SPIOut)}}}})
		gone := i.Child(cur.SPIIn) == nil
		d := find[*wire.Delete](resp.Payloads)
		if proto == wire.ProtoESP {
			if gone || d != nil {
				t.Fatalf("a Delete for ESP removed the AH Child SA (answer %+v)", d)
			}
			continue
		}
		if !gone || d == nil || d.Protocol != wire.ProtoAH || !bytes.Equal(d.SPIs[0], spiBytes(cur.SPIIn)) {
			t.Fatalf("Delete for AH: gone %v, answer %+v", gone, d)
		}
		var down *ChildDown
		for _, e := range i.TakeEffects() {
			if x, ok := e.(ChildDown); ok {
				down = &x
			}
		}
		if down == nil || down.Protocol != proposal.ProtoAH || down.SPIIn != cur.SPIIn {
			t.Fatalf("ChildDown %+v, want AH %08x", down, cur.SPIIn)
		}
	}
	// The ESP child of IKE_AUTH is untouched.
	if len(i.Children) != 1 || i.Children[0].Protocol() != proposal.ProtoESP {
		t.Fatalf("children left: %d", len(i.Children))
	}
}
