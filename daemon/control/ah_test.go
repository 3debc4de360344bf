package control

import (
	"testing"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/status"
	"github.com/goipsec/goipsec/vici"
)

// TestChildSAMessageProtocol: list-sas and child-updown name a Child SA's protocol as strongSwan
// does ("ESP" or "AH"); an AH Child SA has an integrity algorithm and no encryption algorithm.
func TestChildSAMessageProtocol(t *testing.T) {
	ahP, _ := proposal.ParseAH("sha384")
	espP, _ := proposal.ParseESP("aes256gcm16")
	for _, c := range []struct {
		p                  proposal.Proposal
		proto, encr, integ string
	}{
		{ahP[0], "AH", "", "HMAC_SHA2_384_192"},
		{espP[0], "ESP", "AES_GCM_16", ""},
	} {
		m := vici.NewMessage()
		childSAMessage(m, engine.ChildInfo{Name: "net", Mode: ike.Transport, Transforms: c.p}, &status.ChildSA{}, 1)
		if got := m.Get("protocol"); got != c.proto {
			t.Errorf("%s: protocol %q", c.p, got)
		}
		if m.Get("encr-alg") != c.encr || m.Get("integ-alg") != c.integ || m.Get("mode") != "TRANSPORT" {
			t.Errorf("%s: encr-alg %q integ-alg %q mode %q", c.p, m.Get("encr-alg"), m.Get("integ-alg"), m.Get("mode"))
		}
	}
}
