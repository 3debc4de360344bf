package eap

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"hash"
	"strings"
	"sync"
)

// The TLS exporter without Extended Master Secret. RFC 5216 (EAP-TLS) and RFC 5281 (EAP-TTLS)
// derive keys with TLS-PRF(master secret, label, client random | server random) of the plain TLS
// 1.2 handshake; strongSwan 5.9's TLS stack does not negotiate Extended Master Secret (RFC 7627),
// and crypto/tls then refuses ExportKeyingMaterial (its GODEBUG tlsunsafeekm would switch that on
// for the whole process). The exporter is computed here instead, for these conversations only,
// from the master secret crypto/tls reports to a key log writer that never leaves memory, and the
// randoms of the hellos that pass through the pump. The attack the refusal guards against
// (triple handshake, RFC 7627 §1) needs resumption or renegotiation, which these sessions never
// allow.

// keyCapture receives crypto/tls's key log lines: "CLIENT_RANDOM <client random> <master>".
type keyCapture struct {
	mu           sync.Mutex
	clientRandom []byte
	master       []byte
}

func (k *keyCapture) Write(line []byte) (int, error) {
	f := strings.Fields(string(line))
	if len(f) == 3 && f[0] == "CLIENT_RANDOM" {
		cr, err1 := hex.DecodeString(f[1])
		ms, err2 := hex.DecodeString(f[2])
		if err1 == nil && err2 == nil {
			k.mu.Lock()
			k.clientRandom, k.master = cr, ms
			k.mu.Unlock()
		}
	}
	return len(line), nil
}

// sniff keeps the first handshake bytes each way until the ServerHello's random is found.
func (p *pump) sniff(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.serverRandom != nil || len(p.hello) > 1<<16 {
		return
	}
	p.hello = append(p.hello, b...)
	if r := serverRandom(p.hello); r != nil {
		p.serverRandom = r
		p.hello = nil
	}
}

// serverRandom finds a ServerHello in a stream of TLS records (RFC 5246 §6.2.1, §7.4.1.3) and
// returns its random, or nil. ClientHello records are skipped (both directions pass here).
func serverRandom(b []byte) []byte {
	for len(b) >= 5 {
		typ, n := b[0], int(b[3])<<8|int(b[4])
		if len(b) < 5+n {
			return nil
		}
		rec := b[5 : 5+n]
		if typ == 22 && len(rec) >= 4+2+32 && rec[0] == 2 {
			return append([]byte(nil), rec[6:38]...)
		}
		b = b[5+n:]
	}
	return nil
}

// export is RFC 5705's exporter without context: crypto/tls's when it allows it, else the
// computation above.
func (p *pump) export(conn *tls.Conn, label string, n int) ([]byte, error) {
	st := conn.ConnectionState()
	if out, err := st.ExportKeyingMaterial(label, nil, n); err == nil {
		return out, nil
	}
	p.master.mu.Lock()
	cr, ms := p.master.clientRandom, p.master.master
	p.master.mu.Unlock()
	p.mu.Lock()
	sr := p.serverRandom
	p.mu.Unlock()
	if cr == nil || sr == nil || len(ms) != 48 {
		return nil, errors.New("TLS keys are not available for the exporter")
	}
	h := sha256.New
	if strings.HasSuffix(tls.CipherSuiteName(st.CipherSuite), "SHA384") {
		h = sha512.New384
	}
	seed := append(append([]byte(nil), cr...), sr...)
	return prf12(h, ms, []byte(label), seed, n), nil
}

// prf12 is the TLS 1.2 PRF, P_hash(secret, label | seed) (RFC 5246 §5).
func prf12(h func() hash.Hash, secret, label, seed []byte, n int) []byte {
	ls := append(append([]byte(nil), label...), seed...)
	mac := hmac.New(h, secret)
	mac.Write(ls)
	a := mac.Sum(nil)
	var out bytes.Buffer
	for out.Len() < n {
		mac.Reset()
		mac.Write(a)
		mac.Write(ls)
		out.Write(mac.Sum(nil))
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(nil)
	}
	return out.Bytes()[:n]
}
