package daemon

import (
	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike"
)

// ppkTable holds the post-quantum preshared keys (RFC 8784) of the configuration by PPK identity.
type ppkTable struct {
	byID map[string][]byte
}

func newPPKTable(list []*config.PPK) *ppkTable {
	t := &ppkTable{byID: map[string][]byte{}}
	for _, p := range list {
		for _, id := range p.IDs {
			if _, dup := t.byID[id]; !dup {
				t.byID[id] = p.Secret
			}
		}
	}
	return t
}

// configurePPK gives a connection its PPK settings. Every connection can look PPKs up by the
// identity the peer names, so as responder it answers USE_PPK_INT or USE_PPK when asked; whether
// a PPK is used is decided in IKE_INTERMEDIATE (RFC 9867) or IKE_AUTH (RFC 8784) by the keys both
// sides hold and by ppk_required.
func (d *Daemon) configurePPK(peer *ike.PeerConfig, c *config.Connection) {
	peer.PPKID, peer.PPKRequired, peer.PPKNoIntermediate = []byte(c.PPKID), c.PPKRequired, !c.PPKIntermediate
	peer.PPK = func(id []byte) ([]byte, bool) {
		t := d.ppks.Load()
		if t == nil {
			return nil, false
		}
		k, ok := t.byID[string(id)]
		return k, ok
	}
}
