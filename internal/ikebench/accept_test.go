package ikebench

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
)

// pair is an initiator SA that sent its IKE_AUTH request, with the responses a responder (package
// ike, in process, no network) gave it.
type pair struct {
	ini      *ike.SA
	initResp []byte // the IKE_SA_INIT response
	authResp []byte // the IKE_AUTH response, not yet processed by ini
}

func newPair(t testing.TB) pair {
	t.Helper()
	peer, child, err := Spec{Proposal: testProposal, ESP: testESP, PSK: testPSK, LocalTS: "10.1.0.0/24", RemoteTS: "10.2.0.0/24"}.Build()
	if err != nil {
		t.Fatal(err)
	}
	iAddr, rAddr := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500")
	ini, err := ike.NewInitiator(peer, []*ike.ChildConfig{child}, iAddr, rAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ini.NextRequest()
	if err != nil {
		t.Fatal(err)
	}
	reqMsg, err := wire.Decode(req.Raw)
	if err != nil {
		t.Fatal(err)
	}
	resp, initResp, err := ike.RespondInit(reqMsg, req.Raw, rAddr, iAddr, []*ike.PeerConfig{responderConfig(t, testProposal)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hd, err := wire.DecodeHeader(initResp)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := acceptInit(initResp, hd)
	if !ok {
		t.Fatal("acceptInit refused the IKE_SA_INIT response")
	}
	if next, err := ini.ProcessResponse(&ike.Message{Exchange: wire.ExchangeIKESAInit, Payloads: m.Payloads, Raw: initResp}); err != nil || next != nil {
		t.Fatalf("IKE_SA_INIT: %v, %v", next, err)
	}
	auth, err := ini.NextRequest()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := ini.Seal(ini.Header(wire.ExchangeIKEAuth, msgIDAuth, false), auth.Payloads, 0)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := resp.Open(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	rps := resp.ProcessRequest(&ike.Message{Exchange: wire.ExchangeIKEAuth, Payloads: opened.Inner}).Payloads
	for _, e := range resp.TakeEffects() {
		if f, ok := e.(ike.Failed); ok {
			t.Fatalf("responder: %v", f.Err)
		}
	}
	out, err := resp.Seal(resp.Header(wire.ExchangeIKEAuth, msgIDAuth, true), rps, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pair{ini: ini, initResp: initResp, authResp: out[0]}
}

func header(t testing.TB, b []byte) wire.Header {
	t.Helper()
	hd, err := wire.DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return hd
}

func TestAcceptProtected(t *testing.T) {
	p := newPair(t)
	hd := header(t, p.authResp)

	// Not the response asked for: ignored, whatever the content.
	for _, c := range []struct {
		ex wire.ExchangeType
		id uint32
	}{{wire.ExchangeIKEAuth, msgIDDelete}, {wire.ExchangeInformational, msgIDAuth}} {
		if inner, done, err := acceptProtected(p.ini, c.ex, c.id, p.authResp, hd); done || err != nil || inner != nil {
			t.Errorf("%s/%d: took the IKE_AUTH response (%v, %v)", c.ex, c.id, done, err)
		}
	}
	// A flipped bit in the ICV: does not authenticate, dropped silently.
	tampered := bytes.Clone(p.authResp)
	tampered[len(tampered)-1] ^= 1
	if _, done, err := acceptProtected(p.ini, wire.ExchangeIKEAuth, msgIDAuth, tampered, header(t, tampered)); done || err != nil {
		t.Errorf("tampered response: done %v, %v", done, err)
	}
	// Another responder SPI: not this SA's answer.
	other := bytes.Clone(p.authResp)
	binary.BigEndian.PutUint64(other[8:], hd.SPIr+1)
	if _, done, err := acceptProtected(p.ini, wire.ExchangeIKEAuth, msgIDAuth, other, header(t, other)); done || err != nil {
		t.Errorf("other SPIr: done %v, %v", done, err)
	}

	inner, done, err := acceptProtected(p.ini, wire.ExchangeIKEAuth, msgIDAuth, p.authResp, hd)
	if !done || err != nil {
		t.Fatalf("genuine response: done %v, %v", done, err)
	}
	if _, err := p.ini.ProcessResponse(&ike.Message{Exchange: wire.ExchangeIKEAuth, Payloads: inner}); err != nil {
		t.Fatalf("IKE_AUTH response: %v", err)
	}
	child := false
	for _, e := range p.ini.TakeEffects() {
		if _, ok := e.(ike.ChildUp); ok {
			child = true
		}
	}
	if !child || p.ini.State() != ike.StateEstablished {
		t.Fatalf("IKE_AUTH response: state %s, child %v", p.ini.State(), child)
	}
}

func TestAcceptInit(t *testing.T) {
	p := newPair(t)
	hd := header(t, p.initResp)
	if _, ok := acceptInit(p.initResp, hd); !ok {
		t.Fatal("genuine IKE_SA_INIT response refused")
	}
	// A request (no Response flag) or another message ID is not the answer.
	asRequest := hd
	asRequest.Flags &^= wire.FlagResponse
	notZero := hd
	notZero.MessageID = 1
	fromInitiator := hd
	fromInitiator.Flags |= wire.FlagInitiator
	for _, h := range []wire.Header{asRequest, notZero, fromInitiator} {
		if _, ok := acceptInit(p.initResp, h); ok {
			t.Errorf("took %+v", h)
		}
	}
	// Broken payloads behind a valid header: ignored, not a failure.
	broken := bytes.Clone(p.initResp)
	broken[wire.HeaderLen+2] = 0xff // the first payload's length runs past the end
	if _, ok := acceptInit(broken, header(t, broken)); ok {
		t.Error("took a response whose payloads do not decode")
	}
}

func TestIKEMessage(t *testing.T) {
	hdr := make([]byte, wire.HeaderLen)
	binary.BigEndian.PutUint64(hdr, 0x0102030405060708)
	marked := append(make([]byte, nonESPMarkerLen), hdr...)
	esp := append([]byte{0, 0, 0, 1}, hdr...)
	for _, c := range []struct {
		name     string
		datagram []byte
		natt     bool
		want     []byte
		spi      uint64
	}{
		{"IKE port", hdr, false, hdr, 0x0102030405060708},
		{"NAT-T port, marker", marked, true, hdr, 0x0102030405060708},
		{"NAT-T port, ESP", esp, true, nil, 0},
		{"NAT-T port, keepalive", []byte{0xff}, true, nil, 0},
		{"NAT-T port, marker only", make([]byte, nonESPMarkerLen), true, nil, 0},
		{"IKE port, runt", hdr[:wire.HeaderLen-1], false, nil, 0},
		{"IKE port, zero SPI", make([]byte, wire.HeaderLen), false, make([]byte, wire.HeaderLen), 0},
	} {
		msg, ok := ikeMessage(c.datagram, c.natt)
		if ok != (c.want != nil) || !bytes.Equal(msg, c.want) {
			t.Errorf("%s: message %x, %v; want %x", c.name, msg, ok, c.want)
			continue
		}
		if !ok {
			continue
		}
		spi, ok := initiatorSPI(msg)
		if spi != c.spi || ok != (c.spi != 0) {
			t.Errorf("%s: SPI %x, %v; want %x", c.name, spi, ok, c.spi)
		}
	}
}

func FuzzIKEMessage(f *testing.F) {
	hdr := make([]byte, wire.HeaderLen)
	binary.BigEndian.PutUint64(hdr, 1)
	f.Add(hdr, false)
	f.Add(append(make([]byte, nonESPMarkerLen), hdr...), true)
	f.Add([]byte{0xff}, true)
	f.Add([]byte{0, 0, 0, 1, 2, 3}, true)
	f.Fuzz(func(t *testing.T, datagram []byte, natt bool) {
		msg, ok := ikeMessage(datagram, natt)
		if !ok {
			return
		}
		if len(msg) < wire.HeaderLen || !bytes.HasSuffix(datagram, msg) {
			t.Fatalf("message %x from datagram %x", msg, datagram)
		}
		if spi, ok := initiatorSPI(msg); ok != (spi != 0) || spi != binary.BigEndian.Uint64(msg) {
			t.Fatalf("SPI %x, %v of %x", spi, ok, msg)
		}
	})
}

// FuzzInitResponse feeds arbitrary datagrams to a fresh initiator as its IKE_SA_INIT response:
// whatever acceptInit takes goes to HandleInitResponse, and nothing may panic.
func FuzzInitResponse(f *testing.F) {
	p := newPair(f)
	f.Add(p.initResp)
	for _, n := range []*wire.Notify{
		{NotifyType: wire.Cookie, Data: []byte{0, 0, 0, 1, 2, 3, 4, 5}},
		{NotifyType: wire.InvalidKEPayload, Data: []byte{0, 19}},
		{NotifyType: wire.NoProposalChosen},
	} {
		m := &wire.Message{Header: wire.Header{SPIi: 1, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagResponse}, Payloads: []wire.Payload{n}}
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	peer, _, err := Spec{Proposal: testProposal, ESP: testESP, PSK: testPSK, LocalTS: "dynamic", RemoteTS: "dynamic"}.Build()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		hd, err := wire.DecodeHeader(b)
		if err != nil {
			return
		}
		m, ok := acceptInit(b, hd)
		if !ok {
			return
		}
		sa, err := ike.NewInitiator(peer, nil, netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sa.NextRequest(); err != nil {
			t.Fatal(err)
		}
		sa.ProcessResponse(&ike.Message{Exchange: wire.ExchangeIKESAInit, Payloads: m.Payloads, Raw: b})
	})
}

// FuzzProtectedResponse feeds arbitrary datagrams to an initiator waiting for its IKE_AUTH
// response; acceptProtected must ignore or refuse them without panicking.
func FuzzProtectedResponse(f *testing.F) {
	p := newPair(f)
	f.Add(p.authResp)
	tampered := bytes.Clone(p.authResp)
	tampered[len(tampered)-1] ^= 1
	f.Add(tampered)
	f.Add(p.initResp)
	f.Fuzz(func(t *testing.T, b []byte) {
		hd, err := wire.DecodeHeader(b)
		if err != nil {
			return
		}
		inner, done, err := acceptProtected(p.ini, wire.ExchangeIKEAuth, msgIDAuth, b, hd)
		if !done && (inner != nil || err != nil) {
			t.Fatalf("not done, but inner %v, err %v", inner, err)
		}
	})
}
