package engine_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
)

// TestChildless covers RFC 6023 with every combination of the initiator's and the responder's
// childless setting.
func TestChildless(t *testing.T) {
	for _, tc := range []struct {
		a, b        ike.Childless
		wantUp      bool
		childInAuth bool
		failWith    string
	}{
		{ike.ChildlessAllow, ike.ChildlessAllow, true, true, ""},
		{ike.ChildlessPrefer, ike.ChildlessAllow, true, false, ""},
		{ike.ChildlessPrefer, ike.ChildlessNever, true, true, ""},
		{ike.ChildlessForce, ike.ChildlessAllow, true, false, ""},
		{ike.ChildlessForce, ike.ChildlessForce, true, false, ""},
		{ike.ChildlessForce, ike.ChildlessNever, false, false, "does not support RFC 6023"},
		{ike.ChildlessAllow, ike.ChildlessForce, false, false, "INVALID_SYNTAX"},
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.a, tc.b), func(t *testing.T) {
			p := newPair(t, nil)
			p.ca.Childless, p.cb.Childless = tc.a, tc.b
			p.initiate(t)
			p.run(3 * time.Second)
			if !tc.wantUp {
				f := strings.Join(p.a.Failures(false), "; ")
				if len(p.a.IKEUp()) != 0 || !strings.Contains(f, tc.failWith) {
					t.Fatalf("A up %d, failures %q, want one with %q", len(p.a.IKEUp()), f, tc.failWith)
				}
				return
			}
			if len(p.a.IKEUp()) != 1 || len(p.a.Children()) != 1 {
				t.Fatalf("A up %d with %d Child SAs; failures %v %v", len(p.a.IKEUp()), len(p.a.Children()), p.a.Failures(false), p.b.Failures(false))
			}
			checkPaired(t, p)
			// A Child SA made in IKE_AUTH has message ID 1; a childless IKE SA makes it in the
			// next exchange, so A then sent one more request.
			sent := p.net.Sent
			if tc.childInAuth && sent != 4 || !tc.childInAuth && sent != 6 {
				t.Fatalf("%d datagrams for the handshake (child in IKE_AUTH: %v)", sent, tc.childInAuth)
			}
		})
	}
}

// bothResponders gives both hosts each other's configuration, so either may initiate.
func bothResponders(t *testing.T, p *pair) {
	p.a.Engine.Close()
	p.net.Remove(p.a)
	p.a = p.net.AddHost(t, "A", p.addrA.Addr(), enginetest.HostOptions{Configs: func(netip.Addr, netip.Addr) []*ike.PeerConfig { return []*ike.PeerConfig{p.ca} }})
}

func TestUniqueReplace(t *testing.T) {
	p := newPair(t, nil)
	p.cb.Unique = ike.UniqueReplace
	p.up(t)
	// A second IKE SA of the same identities (without INITIAL_CONTACT, since A has one already).
	p.initiate(t)
	p.run(2 * time.Second)
	if n := len(p.b.Engine.SAs()); n != 1 {
		t.Fatalf("B holds %d IKE SAs, want 1", n)
	}
	down := p.b.IKEDown()
	if len(down) != 1 || down[0].Reason != ike.ReasonUniqueReplaced {
		t.Fatalf("B's IKE down events %+v", down)
	}
	if n := len(p.a.Engine.SAs()); n != 1 {
		t.Fatalf("A holds %d IKE SAs, want 1 (the replaced one was deleted with a Delete)", n)
	}
}

func TestUniqueKeep(t *testing.T) {
	p := newPair(t, nil)
	p.cb.Unique = ike.UniqueKeep
	// One identity for two hosts (an FQDN: IP identities would differ).
	id := ike.Identity{Type: 2, Data: []byte("road.example")}
	p.ca.LocalID, p.cb.RemoteID = id, id
	p.up(t)
	third := p.net.AddHost(t, "C", netip.MustParseAddr("192.0.2.3"), enginetest.HostOptions{})
	cc := *p.ca
	if err := third.Engine.Initiate(&cc, cc.Children, netip.MustParseAddrPort("192.0.2.3:500"), p.addrB); err != nil {
		t.Fatal(err)
	}
	p.run(2 * time.Second)
	if f := strings.Join(third.Failures(false), "; "); !strings.Contains(f, "AUTHENTICATION_FAILED") {
		t.Fatalf("the second IKE SA from another address was not refused: %q", f)
	}
	if n := len(p.b.Engine.SAs()); n != 1 {
		t.Fatalf("B holds %d IKE SAs", n)
	}
	if f := strings.Join(p.b.Failures(false), "; "); !strings.Contains(f, "unique = keep") {
		t.Fatalf("B's failures %q", f)
	}
}

// TestUniqueNeverKeepsBoth: with unique = never even INITIAL_CONTACT replaces nothing.
func TestUniqueNeverKeepsBoth(t *testing.T) {
	p := newPair(t, nil)
	bothResponders(t, p)
	p.ca.Unique, p.cb.Unique = ike.UniqueNever, ike.UniqueNever
	p.up(t)
	restartB(t, p)
	if err := p.b.Engine.Initiate(p.cb, p.cb.Children, p.addrB, p.addrA); err != nil {
		t.Fatal(err)
	}
	p.run(2 * time.Second)
	if n := len(p.a.Engine.SAs()); n != 2 {
		t.Fatalf("A holds %d IKE SAs, want both", n)
	}
}
