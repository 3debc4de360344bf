package strongswan

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/goipsec/goipsec/internal/testnet"
)

// IKESAKeys are the keys of one IKE SA as charon logs them with ike=4 (and mgr=2 for the SPIs).
// Both peers log the same bytes. SKai/SKar are empty with AEAD ciphers. DHSecret and SKEYSEED are the
// shared key-exchange secret and SKEYSEED that the keys came from (RFC 7296 section 2.14; for a rekey,
// section 2.18).
type IKESAKeys struct {
	Name     string // connection name, "(unnamed)" until the responder knows it
	ID       int    // charon's unique IKE SA ID, NAME[ID] in its log
	Proposal string // as charon prints it: "IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519"
	SPIi     []byte // 8 bytes
	SPIr     []byte // 8 bytes

	DHSecret []byte
	SKEYSEED []byte
	SKd      []byte
	SKai     []byte
	SKar     []byte
	SKei     []byte // includes the salt for AEAD ciphers (RFC 5282 section 7.1, RFC 7634 section 4)
	SKer     []byte
	SKpi     []byte
	SKpr     []byte
}

// ESPKeys are one direction of a CHILD_SA.
type ESPKeys struct {
	SPI      uint32
	Src, Dst string // outer addresses as charon installs the SA
	EncrKey  []byte // includes the salt for AEAD ciphers
	IntegKey []byte // empty for AEAD
}

// ChildSAKeys are the keys of one CHILD_SA as charon logs them with chd=4, seen from the charon whose
// log was parsed. EncrI/IntegI protect traffic from the initiator of the exchange that created the
// CHILD_SA to its responder (RFC 7296 section 2.17); In and Out apply them to this charon's SAs.
type ChildSAKeys struct {
	Name      string // child name
	ID        int    // charon's unique CHILD_SA ID, NAME{ID} in its log
	Proposal  string // "ESP:AES_GCM_16_256/NO_EXT_SEQ"
	Initiator bool   // this charon initiated the exchange that created the CHILD_SA

	EncrI, EncrR   []byte
	IntegI, IntegR []byte

	In  ESPKeys // what this charon receives
	Out ESPKeys // what this charon sends
}

// Proposal is a charon proposal string taken apart: "IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048".
type Proposal struct {
	Protocol string // "IKE", "ESP" or "AH"
	Encr     string // "AES_GCM_16_256", "AES_CBC_256", "CHACHA20_POLY1305"; empty for AH
	Integ    string // "HMAC_SHA2_256_128"; empty for AEAD
	PRF      string // "PRF_HMAC_SHA2_256"; IKE only
	KE       string // "CURVE_25519", "ECP_256", "MODP_2048"; empty when none
	ESN      string // "NO_EXT_SEQ" or "EXT_SEQ"; ESP and AH only
}

// ParseProposal classifies the transforms of a proposal as charon prints it.
func ParseProposal(s string) Proposal {
	var p Proposal
	proto, rest, ok := strings.Cut(s, ":")
	if !ok {
		rest = s
	} else {
		p.Protocol = proto
	}
	for _, tr := range strings.Split(rest, "/") {
		switch {
		case tr == "":
		case strings.HasPrefix(tr, "PRF_"):
			p.PRF = tr
		case strings.HasPrefix(tr, "HMAC_"), strings.HasPrefix(tr, "AES_XCBC_"), strings.HasPrefix(tr, "AES_CMAC_"):
			p.Integ = tr
		case tr == "NO_EXT_SEQ", tr == "EXT_SEQ":
			p.ESN = tr
		case strings.HasPrefix(tr, "MODP_"), strings.HasPrefix(tr, "ECP_"), strings.HasPrefix(tr, "CURVE_"),
			strings.HasPrefix(tr, "ML_KEM_"), strings.HasPrefix(tr, "KE_"):
			p.KE = tr
		default:
			p.Encr = tr
		}
	}
	return p
}

// Tshark returns the row for tshark's IKEv2 decryption table, or an error for algorithms tshark 4.0
// cannot decrypt (ChaCha20-Poly1305 in IKEv2, for one).
func (k IKESAKeys) Tshark() (testnet.TsharkIKESA, error) {
	p := ParseProposal(k.Proposal)
	encr, ok := map[string]string{
		"AES_GCM_16_128": testnet.TsharkIKEEncrAESGCM128,
		"AES_GCM_16_192": testnet.TsharkIKEEncrAESGCM192,
		"AES_GCM_16_256": testnet.TsharkIKEEncrAESGCM256,
		"AES_CBC_128":    testnet.TsharkIKEEncrAESCBC128,
		"AES_CBC_192":    testnet.TsharkIKEEncrAESCBC192,
		"AES_CBC_256":    testnet.TsharkIKEEncrAESCBC256,
	}[p.Encr]
	if !ok {
		return testnet.TsharkIKESA{}, fmt.Errorf("strongswan: tshark cannot decrypt IKE with %s", p.Encr)
	}
	integ, ok := map[string]string{
		"":                  testnet.TsharkIKEIntegNone,
		"HMAC_SHA1_96":      testnet.TsharkIKEIntegSHA1,
		"HMAC_SHA2_256_128": testnet.TsharkIKEIntegSHA256,
		"HMAC_SHA2_384_192": testnet.TsharkIKEIntegSHA384,
		"HMAC_SHA2_512_256": testnet.TsharkIKEIntegSHA512,
	}[p.Integ]
	if !ok {
		return testnet.TsharkIKESA{}, fmt.Errorf("strongswan: tshark cannot check IKE integrity %s", p.Integ)
	}
	return testnet.TsharkIKESA{
		SPIi: k.SPIi, SPIr: k.SPIr,
		SKei: k.SKei, SKer: k.SKer, Encr: encr,
		SKai: k.SKai, SKar: k.SKar, Integ: integ,
	}, nil
}

// Tshark returns the rows for tshark's ESP SA table, one per direction.
func (k ChildSAKeys) Tshark() ([]testnet.TsharkESPSA, error) {
	p := ParseProposal(k.Proposal)
	var encr string
	switch {
	case strings.HasPrefix(p.Encr, "AES_GCM_16_"):
		encr = testnet.TsharkESPEncrAESGCM16
	case strings.HasPrefix(p.Encr, "AES_CBC_"):
		encr = testnet.TsharkESPEncrAESCBC
	default:
		// tshark 4.0 has no ChaCha20-Poly1305 for ESP.
		return nil, fmt.Errorf("strongswan: no tshark ESP name for %s", p.Encr)
	}
	auth, ok := map[string]string{
		"":                  testnet.TsharkESPAuthNull,
		"HMAC_SHA1_96":      testnet.TsharkESPAuthSHA1,
		"HMAC_SHA2_256_128": testnet.TsharkESPAuthSHA256,
		"HMAC_SHA2_384_192": testnet.TsharkESPAuthSHA384,
		"HMAC_SHA2_512_256": testnet.TsharkESPAuthSHA512,
	}[p.Integ]
	if !ok {
		return nil, fmt.Errorf("strongswan: no tshark ESP name for %s", p.Integ)
	}
	var rows []testnet.TsharkESPSA
	for _, d := range []ESPKeys{k.In, k.Out} {
		rows = append(rows, testnet.TsharkESPSA{
			Src: d.Src, Dst: d.Dst, SPI: d.SPI,
			Encr: encr, EncrKey: d.EncrKey, Auth: auth, AuthKey: d.IntegKey,
		})
	}
	return rows, nil
}

// Log line shapes (strongSwan 5.9.8 file logger with ike_name = yes):
//
//	"02[IKE] <t|1> Sk_ei secret => 36 bytes @ 0x55f70e909130"
//	"02[IKE] <t|1>    0: F8 AF 91 47 52 E7 B7 C2 9A 88 70 D5 24 B9 8F 5A  ...GR.....p.$..Z"
//
// The leading number is the worker thread; a thread handles one message at a time, so everything
// derived while processing one message appears on lines of one thread, in order.
var (
	reLine      = regexp.MustCompile(`^(\d+)\[([A-Z]+)\] (?:<(?:[^|>]*\|)?(\d+)> )?(.*)$`)
	reDumpStart = regexp.MustCompile(`^(.+?) => (\d+) bytes @ 0x[0-9a-fA-F]+$`)
	reDumpLine  = regexp.MustCompile(`^\s*(\d+): (.*)$`)
	reParsed    = regexp.MustCompile(`^parsed (\S+) (request|response) \d+ `)
	reSelected  = regexp.MustCompile(`^selected proposal: ((IKE|ESP|AH):\S+)$`)
	reCheckin   = regexp.MustCompile(`^checkin IKEv2 SA (.+)\[(\d+)\] with SPIs ([0-9a-f]{16})_i ([0-9a-f]{16})_r$`)
	reChildUp   = regexp.MustCompile(`^(?:inbound |outbound )?CHILD_SA (.+)\{(\d+)\} established with SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o `)
	reSASPI     = regexp.MustCompile(`^\s*SPI 0x([0-9a-f]{8}), src (\S+) dst (\S+)$`)
)

// hexDumpBytesPerLine describes charon's %B chunk dump: "NNNN: " then up to 16 bytes as "XX " and
// their printable rendering.
const hexDumpBytesPerLine = 16

// maxDumpBytes bounds a dump the parser accepts; keys and secrets are far smaller, and a bound keeps a
// corrupt length from allocating gigabytes.
const maxDumpBytes = 1 << 16

// threadState is what the parser remembers per charon worker thread.
type threadState struct {
	initiator   bool   // the last message this thread parsed was a response
	ikeProposal string // last "selected proposal: IKE:..." on this thread
	ctxProposal string // the IKE proposal selected in the log context of the current line
	espProposal string // last "selected proposal: ESP:..." or AH
	dhSecret    []byte // last shared DH secret, claimed by the next SKEYSEED
	ike         *IKESAKeys
	child       *ChildSAKeys
	addrs       map[uint32][2]string // SPI -> src, dst of SAs installed while child is pending

	dumpDst  *[]byte // the field a hex dump in progress fills; nil when it is not wanted
	dumpLeft int     // bytes still expected in the dump in progress
}

// ParseLog extracts IKE and CHILD_SA keys from a charon file log written with ike=4, chd=4, mgr=2
// and ike_name=yes. SAs whose derivation the log shows but that never got SPIs (failed exchanges) are
// left out.
func ParseLog(log string) ([]IKESAKeys, []ChildSAKeys, error) {
	threads := map[string]*threadState{}
	// The proposal an IKE SA selected, by charon's unique IKE SA ID (the "<name|ID>" log context). A
	// responder selects it while handling IKE_SA_INIT but may derive the keys later on another thread.
	ikeProposals := map[string]string{}
	var ikes []IKESAKeys
	var children []ChildSAKeys
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		m := reLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		th := threads[m[1]]
		if th == nil {
			th = &threadState{}
			threads[m[1]] = th
		}
		ctx, msg := m[3], m[4]

		if th.dumpLeft > 0 {
			if dm := reDumpLine.FindStringSubmatch(msg); dm != nil {
				n := min(th.dumpLeft, hexDumpBytesPerLine)
				b, err := parseDumpBytes(dm[2], n)
				if err != nil {
					return nil, nil, fmt.Errorf("strongswan: log line %d: %w", lineNo, err)
				}
				if th.dumpDst != nil {
					*th.dumpDst = append(*th.dumpDst, b...)
				}
				th.dumpLeft -= n
				continue
			}
			return nil, nil, fmt.Errorf("strongswan: log line %d: hex dump ended %d bytes early", lineNo, th.dumpLeft)
		}

		if dm := reDumpStart.FindStringSubmatch(msg); dm != nil {
			n, err := strconv.Atoi(dm[2])
			if err != nil {
				return nil, nil, fmt.Errorf("strongswan: log line %d: %w", lineNo, err)
			}
			if n > maxDumpBytes {
				return nil, nil, fmt.Errorf("strongswan: log line %d: hex dump of %d bytes, more than %d", lineNo, n, maxDumpBytes)
			}
			th.dumpLeft = n
			// For an IKE rekey the new SA's proposal is selected in the old SA's context but on the
			// thread that derives the keys, so the thread's own selection is the fallback.
			th.ctxProposal = ikeProposals[ctx]
			th.dumpDst = th.dumpTarget(dm[1])
			if th.dumpDst != nil {
				*th.dumpDst = make([]byte, 0, n)
			}
			continue
		}
		if pm := reParsed.FindStringSubmatch(msg); pm != nil {
			th.initiator = pm[2] == "response"
			continue
		}
		if sm := reSelected.FindStringSubmatch(msg); sm != nil {
			if sm[2] == "IKE" {
				th.ikeProposal = sm[1]
				if ctx != "" {
					ikeProposals[ctx] = sm[1]
				}
			} else {
				th.espProposal = sm[1]
			}
			continue
		}
		if cm := reCheckin.FindStringSubmatch(msg); cm != nil {
			if th.ike == nil || len(th.ike.SKei) == 0 || cm[4] == "0000000000000000" {
				continue
			}
			spiI, _ := hex.DecodeString(cm[3])
			spiR, _ := hex.DecodeString(cm[4])
			// The first checkin after a derivation whose SPIs have no keys yet is the SA the keys
			// belong to: the new SA itself for an IKE rekey, which checks in before the old one.
			if hasIKE(ikes, spiI, spiR) {
				continue
			}
			k := *th.ike
			k.Name = cm[1]
			k.ID, _ = strconv.Atoi(cm[2])
			k.SPIi, k.SPIr = spiI, spiR
			ikes = append(ikes, k)
			th.ike = nil
			continue
		}
		if am := reSASPI.FindStringSubmatch(msg); am != nil && th.child != nil {
			spi, _ := strconv.ParseUint(am[1], 16, 32)
			th.addrs[uint32(spi)] = [2]string{am[2], am[3]}
			continue
		}
		if um := reChildUp.FindStringSubmatch(msg); um != nil {
			if th.child == nil {
				// The second half ("outbound ... established") of a CHILD_SA installed earlier.
				continue
			}
			k := *th.child
			k.Name = um[1]
			k.ID, _ = strconv.Atoi(um[2])
			in, _ := strconv.ParseUint(um[3], 16, 32)
			out, _ := strconv.ParseUint(um[4], 16, 32)
			k.In = ESPKeys{SPI: uint32(in)}
			k.Out = ESPKeys{SPI: uint32(out)}
			// The initiator sends with the initiator's keys, the responder with the responder's.
			if k.Initiator {
				k.Out.EncrKey, k.Out.IntegKey = k.EncrI, k.IntegI
				k.In.EncrKey, k.In.IntegKey = k.EncrR, k.IntegR
			} else {
				k.Out.EncrKey, k.Out.IntegKey = k.EncrR, k.IntegR
				k.In.EncrKey, k.In.IntegKey = k.EncrI, k.IntegI
			}
			if a, ok := th.addrs[k.In.SPI]; ok {
				k.In.Src, k.In.Dst = a[0], a[1]
			}
			if a, ok := th.addrs[k.Out.SPI]; ok {
				k.Out.Src, k.Out.Dst = a[0], a[1]
			}
			children = append(children, k)
			th.child = nil
			continue
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("strongswan: reading log: %w", err)
	}
	return ikes, children, nil
}

// dumpTarget returns the field that the hex dump labelled label goes into, starting a pending IKE
// or CHILD_SA record where the label begins one; nil means the dump is skipped.
func (th *threadState) dumpTarget(label string) *[]byte {
	switch label {
	case "shared Diffie Hellman secret":
		return &th.dhSecret
	case "SKEYSEED":
		th.ike = &IKESAKeys{Proposal: th.proposal(), DHSecret: th.dhSecret}
		th.dhSecret = nil
		return &th.ike.SKEYSEED
	case "Sk_d secret", "Sk_ai secret", "Sk_ar secret", "Sk_ei secret", "Sk_er secret", "Sk_pi secret", "Sk_pr secret":
		if th.ike == nil {
			th.ike = &IKESAKeys{Proposal: th.proposal()}
		}
		return map[string]*[]byte{
			"Sk_d secret":  &th.ike.SKd,
			"Sk_ai secret": &th.ike.SKai,
			"Sk_ar secret": &th.ike.SKar,
			"Sk_ei secret": &th.ike.SKei,
			"Sk_er secret": &th.ike.SKer,
			"Sk_pi secret": &th.ike.SKpi,
			"Sk_pr secret": &th.ike.SKpr,
		}[label]
	case "encryption initiator key", "encryption responder key", "integrity initiator key", "integrity responder key":
		// charon derives a CHILD_SA's keys in the order encr_i, integ_i, encr_r, integ_r (RFC 7296
		// section 2.17) and logs them as it goes; a repeated label starts the next CHILD_SA.
		if th.child == nil || (label == "encryption initiator key" && th.child.EncrI != nil) ||
			(label == "integrity initiator key" && th.child.IntegI != nil) {
			th.child = &ChildSAKeys{Proposal: th.espProposal, Initiator: th.initiator}
			th.addrs = map[uint32][2]string{}
		}
		return map[string]*[]byte{
			"encryption initiator key": &th.child.EncrI,
			"encryption responder key": &th.child.EncrR,
			"integrity initiator key":  &th.child.IntegI,
			"integrity responder key":  &th.child.IntegR,
		}[label]
	}
	return nil
}

// proposal picks the IKE proposal for keys being derived now: the one selected in this log context
// (the IKE SA's own), else the one this thread selected last (a rekey's new SA).
func (th *threadState) proposal() string {
	if th.ctxProposal != "" {
		return th.ctxProposal
	}
	return th.ikeProposal
}

// parseDumpBytes reads n bytes from the hex part of a dump line: n groups of "XX ", after which the
// printable rendering follows and is ignored (it may itself look like hex).
func parseDumpBytes(s string, n int) ([]byte, error) {
	if len(s) < 3*n-1 {
		return nil, fmt.Errorf("hex dump line %q too short for %d bytes", s, n)
	}
	out := make([]byte, n)
	for i := range n {
		b, err := strconv.ParseUint(s[3*i:3*i+2], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("hex dump line %q: byte %d: %w", s, i, err)
		}
		out[i] = byte(b)
	}
	return out, nil
}

func hasIKE(ikes []IKESAKeys, spiI, spiR []byte) bool {
	for _, k := range ikes {
		if string(k.SPIi) == string(spiI) && string(k.SPIr) == string(spiR) {
			return true
		}
	}
	return false
}
