package engine_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
)

// Redirect in IKE_SA_INIT (RFC 5685 §4): B sends A to another gateway; A reports it and keeps no
// SA; B keeps no state.
func TestRedirectInInit(t *testing.T) {
	p := newPair(t, nil)
	p.cb.RedirectTo = "192.0.2.9"
	var got []ike.Redirected
	p.initiate(t)
	p.run(time.Second)
	for _, f := range p.a.Failures(false) {
		if !strings.Contains(f, "redirects us to 192.0.2.9") {
			t.Fatalf("A's failure %q", f)
		}
	}
	got = p.a.Redirects()
	if len(got) != 1 || got[0].To != "192.0.2.9" || got[0].From != netip.MustParseAddr("192.0.2.2") {
		t.Fatalf("redirects %+v", got)
	}
	if p.b.Engine.Count() != 0 || p.a.Engine.Count() != 0 {
		t.Fatalf("SAs left: A %d, B %d", p.a.Engine.Count(), p.b.Engine.Count())
	}
}

// Redirect of an established IKE SA (§5): B's INFORMATIONAL sends A away; A deletes the IKE SA.
func TestRedirectEstablished(t *testing.T) {
	p := newPair(t, nil)
	p.up(t)
	if n := p.b.Engine.Redirect(func(engine.SAInfo) bool { return true }, "gw2.example.org"); n != 1 {
		t.Fatalf("redirect matched %d", n)
	}
	p.run(2 * time.Second)
	got := p.a.Redirects()
	if len(got) != 1 || got[0].To != "gw2.example.org" {
		t.Fatalf("redirects %+v", got)
	}
	if len(p.a.IKEDown()) != 1 || p.a.IKEDown()[0].Reason != ike.ReasonRedirected || p.b.Engine.Count() != 0 {
		t.Fatalf("A down %+v, B holds %d", p.a.IKEDown(), p.b.Engine.Count())
	}
}
