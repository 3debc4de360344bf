package ike

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

var (
	addrI = netip.MustParseAddrPort("192.0.2.1:500")
	addrR = netip.MustParseAddrPort("192.0.2.2:500")
)

func mustIKE(t *testing.T, s string) []proposal.Proposal {
	t.Helper()
	p, err := proposal.ParseIKE(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustESP(t *testing.T, s string) []proposal.Proposal {
	t.Helper()
	p, err := proposal.ParseESP(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func psk(key string) func(a, b Identity) ([]byte, bool) {
	return func(a, b Identity) ([]byte, bool) { return []byte(key), true }
}

type pairConfig struct {
	ikeI, ikeR string
	espI, espR string
	pskI, pskR string
	idI, idR   Identity // configured local IDs
	expectR    Identity // what the initiator expects of the responder
	expectI    Identity
	tsI, tsR   [2]string // local, remote
	modeI      Mode
	modeR      Mode
}

func defaultPair() pairConfig {
	return pairConfig{
		ikeI: "aes256gcm16-prfsha256-x25519", ikeR: "aes256gcm16-prfsha256-x25519",
		espI: "aes256gcm16", espR: "aes256gcm16", pskI: "secret", pskR: "secret",
		tsI: [2]string{"10.1.0.0/24", "10.2.0.0/24"}, tsR: [2]string{"10.2.0.0/24", "10.1.0.0/24"},
	}
}

func (pc pairConfig) build(t *testing.T) (*PeerConfig, *PeerConfig) {
	child := func(name string, tsp [2]string, esp string, mode Mode) *ChildConfig {
		l, err1 := ts.Parse(tsp[0])
		r, err2 := ts.Parse(tsp[1])
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		return &ChildConfig{Name: name, LocalTS: []ts.Selector{l}, RemoteTS: []ts.Selector{r}, Proposals: mustESP(t, esp), Mode: mode}
	}
	ci := &PeerConfig{Name: "i", Proposals: mustIKE(t, pc.ikeI), LocalID: pc.idI, RemoteID: pc.expectR, PSK: psk(pc.pskI),
		Children: []*ChildConfig{child("net", pc.tsI, pc.espI, pc.modeI)}}
	cr := &PeerConfig{Name: "r", Proposals: mustIKE(t, pc.ikeR), LocalID: pc.idR, RemoteID: pc.expectI, PSK: psk(pc.pskR),
		Children: []*ChildConfig{child("net", pc.tsR, pc.espR, pc.modeR)}}
	return ci, cr
}

// exchange carries one request from one SA to the other and the response back, through the wire
// encoding with message ID id, and returns the response as the initiator of the exchange sees it.
func exchange(t *testing.T, from, to *SA, req *Message, id uint32) *Message {
	t.Helper()
	msgs, err := from.Seal(from.Header(req.Exchange, id, false), req.Payloads, 0)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := to.Open(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	resp := to.ProcessRequest(&Message{Exchange: req.Exchange, Payloads: opened.Inner, IntAuth: intAuthOf(opened)})
	msgs, err = to.Seal(to.Header(req.Exchange, id, true), resp.Payloads, 0)
	if err != nil {
		t.Fatal(err)
	}
	opened, err = from.Open(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	return &Message{Exchange: req.Exchange, Payloads: opened.Inner, IntAuth: intAuthOf(opened)}
}

// intAuthOf gives what the driver passes in Message.IntAuth for a received IKE_INTERMEDIATE
// message (RFC 9242 §3.3.2).
func intAuthOf(o *wire.Opened) []byte {
	h := o.Header
	if h.Exchange != wire.ExchangeIKEIntermediate {
		return nil
	}
	first := wire.PayloadNone
	if sk, ok := o.Payloads[len(o.Payloads)-1].(*wire.Encrypted); ok {
		first = sk.First
	}
	return wire.IntAuthData(h, first, o.Plain)
}

// installs returns the Child SAs an SA asked to install, and its first real failure.
func installs(sa *SA) ([]*ChildInstall, error) {
	var out []*ChildInstall
	var failed error
	for _, e := range sa.TakeEffects() {
		switch e := e.(type) {
		case ChildUp:
			out = append(out, e.Child)
		case Failed:
			if !e.Retry && failed == nil {
				failed = e.Err
			}
		}
	}
	return out, failed
}

// runHandshake runs IKE_SA_INIT and IKE_AUTH between two SAs in memory, through the wire encoding.
func runHandshake(t *testing.T, ci, cr *PeerConfig, candidates ...*PeerConfig) (i, r *SA, ic, rc *ChildInstall, err error) {
	t.Helper()
	if len(candidates) == 0 {
		candidates = []*PeerConfig{cr}
	}
	i, err = NewInitiator(ci, ci.Children[:1], addrI, addrR, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := i.NextRequest()
	if err != nil {
		t.Fatal(err)
	}
	for req.Exchange == wire.ExchangeIKESAInit {
		m, err := wire.Decode(req.Raw)
		if err != nil {
			t.Fatal(err)
		}
		var resp []byte
		var rerr error
		r, resp, rerr = RespondInit(m, req.Raw, addrR, addrI, candidates, nil)
		rm, err := wire.Decode(resp)
		if err != nil {
			t.Fatal(err)
		}
		again, ierr := i.ProcessResponse(&Message{Exchange: wire.ExchangeIKESAInit, Payloads: rm.Payloads, Raw: resp})
		if ierr != nil {
			if rerr != nil {
				return nil, nil, nil, nil, rerr
			}
			return nil, nil, nil, nil, ierr
		}
		if again != nil {
			req = again
			continue
		}
		if req, err = i.NextRequest(); err != nil {
			t.Fatal(err)
		}
	}
	id := uint32(1)
	for req.Exchange == wire.ExchangeIKEIntermediate {
		// Additional key exchanges (RFC 9370) and the PPK of RFC 9867.
		resp := exchange(t, i, r, req, id)
		id++
		_, ierr := i.ProcessResponse(resp)
		if _, rerr := installs(r); rerr != nil {
			return i, r, nil, nil, rerr
		}
		if ierr != nil {
			return i, r, nil, nil, ierr
		}
		if req, err = i.NextRequest(); err != nil {
			return i, r, nil, nil, err
		}
	}
	resp := exchange(t, i, r, req, id)
	_, ierr := i.ProcessResponse(resp)
	rcs, rerr := installs(r)
	ics, icerr := installs(i)
	for _, e := range []error{rerr, ierr, icerr} {
		if e != nil {
			return i, r, nil, nil, e
		}
	}
	if len(ics) != 1 || len(rcs) != 1 {
		t.Fatalf("installed %d and %d Child SAs, want 1 each", len(ics), len(rcs))
	}
	return i, r, ics[0], rcs[0], nil
}

func TestHandshakePSK(t *testing.T) {
	for _, ikeP := range []string{"aes256gcm16-prfsha256-x25519", "aes128gcm16-prfsha256-ecp256", "chacha20poly1305-prfsha256-x25519", "aes256-sha256-modp2048", "aes128-sha384-ecp384", "aes256gcm16-prfsha512-mlkem768"} {
		t.Run(ikeP, func(t *testing.T) {
			pc := defaultPair()
			pc.ikeI, pc.ikeR = ikeP, ikeP
			ci, cr := pc.build(t)
			i, r, ic, rc, err := runHandshake(t, ci, cr)
			if err != nil {
				t.Fatal(err)
			}
			if i.State() != StateEstablished || r.State() != StateEstablished {
				t.Fatalf("states %s %s", i.State(), r.State())
			}
			if ic.SPIIn != rc.SPIOut || ic.SPIOut != rc.SPIIn {
				t.Fatalf("SPIs do not pair up: %x/%x vs %x/%x", ic.SPIIn, ic.SPIOut, rc.SPIIn, rc.SPIOut)
			}
			if !bytes.Equal(ic.EncrOut, rc.EncrIn) || !bytes.Equal(ic.EncrIn, rc.EncrOut) || len(ic.EncrOut) != 36 {
				t.Fatal("child keys do not pair up")
			}
			if ts.FormatList(ic.LocalTS) != "10.1.0.0/24" || ts.FormatList(rc.LocalTS) != "10.2.0.0/24" {
				t.Fatalf("selectors %s / %s", ts.FormatList(ic.LocalTS), ts.FormatList(rc.LocalTS))
			}
		})
	}
}

func TestInvalidKERetry(t *testing.T) {
	pc := defaultPair()
	pc.ikeI = "aes256gcm16-prfsha256-ecp256-x25519"
	pc.ikeR = "aes256gcm16-prfsha256-x25519"
	ci, cr := pc.build(t)
	i, _, _, _, err := runHandshake(t, ci, cr)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := proposalGroup(i.Proposal); g != proposal.KECurve25519 {
		t.Fatalf("group %d", g)
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*pairConfig)
		want []string
	}{
		{"no IKE proposal", func(p *pairConfig) { p.ikeR = "aes128-sha256-modp3072" }, []string{"no IKE proposal chosen", "aes256gcm16", "aes128-sha256"}},
		{"wrong PSK", func(p *pairConfig) { p.pskR = "other" }, []string{"does not verify"}},
		{"identity mismatch", func(p *pairConfig) {
			p.idR = Identity{Type: wire.IDFQDN, Data: []byte("moon.example")}
			p.expectR = Identity{Type: wire.IDFQDN, Data: []byte("sun.example")}
		}, []string{"sun.example"}},
		{"no ESP proposal", func(p *pairConfig) { p.espR = "chacha20poly1305" }, []string{"no ESP proposal chosen", "aes256gcm16", "chacha20poly1305"}},
		{"TS unacceptable", func(p *pairConfig) { p.tsR = [2]string{"10.9.0.0/24", "10.8.0.0/24"} }, []string{"traffic selectors unacceptable", "10.1.0.0/24", "10.9.0.0/24"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := defaultPair()
			tc.mod(&pc)
			ci, cr := pc.build(t)
			_, _, _, _, err := runHandshake(t, ci, cr)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNarrowing(t *testing.T) {
	pc := defaultPair()
	pc.tsI = [2]string{"10.1.0.0/16", "0.0.0.0/0"}
	ci, cr := pc.build(t)
	_, _, ic, rc, err := runHandshake(t, ci, cr)
	if err != nil {
		t.Fatal(err)
	}
	if ts.FormatList(ic.LocalTS) != "10.1.0.0/24" || ts.FormatList(ic.RemoteTS) != "10.2.0.0/24" {
		t.Fatalf("initiator got %s / %s", ts.FormatList(ic.LocalTS), ts.FormatList(ic.RemoteTS))
	}
	if ts.FormatList(rc.RemoteTS) != "10.1.0.0/24" {
		t.Fatalf("responder got %s", ts.FormatList(rc.RemoteTS))
	}
}

func TestTransportMode(t *testing.T) {
	pc := defaultPair()
	pc.modeI, pc.modeR = Transport, Transport
	ci, cr := pc.build(t)
	_, _, ic, rc, err := runHandshake(t, ci, cr)
	if err != nil {
		t.Fatal(err)
	}
	if ic.Mode != Transport || rc.Mode != Transport {
		t.Fatal("not transport")
	}
}

// TestResponderPicksConnectionByTS: two connections with the same identities; the responder takes
// the one whose child accepts the requested selectors.
func TestResponderPicksConnectionByTS(t *testing.T) {
	pc := defaultPair()
	pc.tsI = [2]string{"10.11.0.0/24", "10.12.0.0/24"}
	ci, first := pc.build(t)
	other := defaultPair()
	other.tsR = [2]string{"10.12.0.0/24", "10.11.0.0/24"}
	_, second := other.build(t)
	second.Name = "second"
	_, r, _, rc, err := runHandshake(t, ci, first, first, second)
	if err != nil || rc == nil || r.Config.Name != "second" {
		t.Fatalf("responder chose %s (child %v, error %v)", r.Config.Name, rc != nil, err)
	}
}

// TestSealCountsIVs: an IKE SA builds its cipher for each message; the AEAD IV (a counter, RFC
// 5282 asks only that it never repeat under a key) goes on from message to message.
func TestSealCountsIVs(t *testing.T) {
	ci, cr := defaultPair().build(t)
	i, _, _, _, err := runHandshake(t, ci, cr)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for n := range 3 {
		msgs, err := i.Seal(i.Header(wire.ExchangeInformational, uint32(2+n), false), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Header (28 bytes), SK payload header (4), then the 8-byte IV.
		iv := binary.BigEndian.Uint64(msgs[0][32:40])
		if n > 0 && iv <= last {
			t.Fatalf("message %d has IV %d after %d", n, iv, last)
		}
		last = iv
	}
}
