package xfrm

// The XFRM netlink messages this backend sends and reads, encoded by hand with the offsets of
// include/uapi/linux/xfrm.h (Linux 6.1, x86-64: native byte order, u64 aligned to 8). Keeping the
// encodings here, as pure functions over parameter values, is what lets unit tests compare them
// byte for byte with golden messages without a kernel.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Message types (XFRM_MSG_*).
const (
	msgNewSA     = 0x10
	msgDelSA     = 0x11
	msgGetSA     = 0x12
	msgNewPolicy = 0x13
	msgDelPolicy = 0x14
	msgAcquire   = 0x17
	msgExpire    = 0x18
	msgUpdPolicy = 0x19
	msgUpdSA     = 0x1a
	msgPolExpire = 0x1b
)

// Attribute types (enum xfrm_attr_type_t).
const (
	attrAlgAuth      = 1
	attrAlgCrypt     = 2
	attrEncap        = 4
	attrTmpl         = 5
	attrLtimeVal     = 9
	attrReplayVal    = 10
	attrAlgAEAD      = 18
	attrAlgAuthTrunc = 20
	attrMark         = 21
	attrTFCPad       = 22
	attrReplayESNVal = 23
	attrSetMark      = 29 // XFRMA_SET_MARK (was XFRMA_OUTPUT_MARK): the mark put on packets the SA processed
	attrSetMarkMask  = 30 // XFRMA_SET_MARK_MASK
	attrIfID         = 31
)

// Multicast groups (XFRMNLGRP_*).
const (
	groupAcquire = 1
	groupExpire  = 2
)

// Sizes of the structures.
const (
	sizeAddress      = 16
	sizeSelector     = 56
	sizeLifetimeCfg  = 64
	sizeLifetimeCur  = 32
	sizeUsersaInfo   = 224
	sizeUsersaID     = 24
	sizeUserpolicy   = 168
	sizeUserpolicyID = 64
	sizeUserTmpl     = 64
	sizeUserExpire   = 232
	sizeUserAcquire  = 280
	sizeEncapTmpl    = 24
	sizeAlgo         = 68 // xfrm_algo without the key
	sizeAlgoAuth     = 72 // xfrm_algo_auth / xfrm_algo_aead without the key
	sizeReplayESN    = 24 // xfrm_replay_state_esn without the bitmap
	sizeStats        = 12
)

// Offsets inside struct xfrm_selector.
const (
	selDaddr     = 0
	selSaddr     = 16
	selDport     = 32
	selDportMask = 34
	selSport     = 36
	selSportMask = 38
	selFamily    = 40
	selPrefixD   = 42
	selPrefixS   = 43
	selProto     = 44
	selIfindex   = 48
)

// Offsets inside struct xfrm_usersa_info.
const (
	saSel          = 0
	saIDDaddr      = 56 // struct xfrm_id: daddr, spi, proto
	saIDSPI        = 72
	saIDProto      = 76
	saSaddr        = 80
	saLft          = 96
	saCurLft       = 160
	saStats        = 192
	saReqid        = 208
	saFamily       = 212
	saMode         = 214
	saReplayWindow = 215
	saFlags        = 216
)

// Offsets inside struct xfrm_userpolicy_info.
const (
	polSel      = 0
	polLft      = 56
	polPriority = 152
	polIndex    = 156
	polDir      = 160
	polAction   = 161
)

// Offsets inside struct xfrm_user_tmpl.
const (
	tmplIDDaddr = 0
	tmplIDSPI   = 16
	tmplIDProto = 20
	tmplFamily  = 24
	tmplSaddr   = 28
	tmplReqid   = 44
	tmplMode    = 48
	tmplAalgos  = 52
	tmplEalgos  = 56
	tmplCalgos  = 60
)

// Modes, directions, actions, flags and encapsulation types.
const (
	modeTransport = 0
	modeTunnel    = 1

	dirIn  = 0
	dirOut = 1
	dirFwd = 2

	actionAllow = 0
	actionBlock = 1

	stateFlagESN    = 128 // XFRM_STATE_ESN
	stateFlagAF     = 32  // XFRM_STATE_AF_UNSPEC: selector may be of another family (mixed tunnels)
	stateFlagAlign4 = 64  // XFRM_STATE_ALIGN4: AH over IPv4 pads its ICV to 32 bits, not 64
	encapESPInUDP   = 2   // UDP_ENCAP_ESPINUDP
	lifetimeInfty   = ^uint64(0)
	anyAlgos        = ^uint32(0)
	maxReplayWords  = 4096 / 32 // XFRMA_REPLAY_ESN_MAX: the kernel's replay bitmap holds at most 4096 packets
)

var ne = binary.NativeEndian

// putAddr writes a as an xfrm_address_t (IPv4 in the first 4 bytes).
func putAddr(b []byte, a netip.Addr) {
	clear(b[:sizeAddress])
	if !a.IsValid() {
		return
	}
	a = a.Unmap()
	s := a.AsSlice()
	copy(b, s)
}

func family(a netip.Addr) uint16 {
	if a.Unmap().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func getAddr(b []byte, fam uint16) netip.Addr {
	if fam == unix.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16([16]byte(b[:16]))
}

// selector is one XFRM selector: prefixes and single ports (or any), a protocol (0 any).
type selector struct {
	src, dst         netip.Prefix
	sport, dport     uint16
	sportMask, dmask uint16
	proto            uint8
	ifindex          int32 // 0: any interface
}

func putSelector(b []byte, s selector) {
	putAddr(b[selDaddr:], s.dst.Addr())
	putAddr(b[selSaddr:], s.src.Addr())
	binary.BigEndian.PutUint16(b[selDport:], s.dport)
	binary.BigEndian.PutUint16(b[selDportMask:], s.dmask)
	binary.BigEndian.PutUint16(b[selSport:], s.sport)
	binary.BigEndian.PutUint16(b[selSportMask:], s.sportMask)
	ne.PutUint16(b[selFamily:], family(s.dst.Addr()))
	b[selPrefixD] = uint8(s.dst.Bits())
	b[selPrefixS] = uint8(s.src.Bits())
	b[selProto] = s.proto
	ne.PutUint32(b[selIfindex:], uint32(s.ifindex))
}

func putLifetime(b []byte, softBytes, hardBytes, softPackets, hardPackets uint64) {
	lim := func(v uint64) uint64 {
		if v == 0 {
			return lifetimeInfty
		}
		return v
	}
	ne.PutUint64(b[0:], lim(softBytes))
	ne.PutUint64(b[8:], lim(hardBytes))
	ne.PutUint64(b[16:], lim(softPackets))
	ne.PutUint64(b[24:], lim(hardPackets))
	// Time limits stay unset: the control plane keeps time (rekey_time, life_time) itself.
}

// state is everything that goes into one XFRM_MSG_NEWSA.
type state struct {
	src, dst     netip.Addr
	spi          uint32
	proto        uint8
	mode         uint8
	reqid        uint32
	replayWindow uint32 // packets
	esn          bool
	sel          *selector // nil: any (the kernel then matches policies alone)
	softBytes    uint64
	hardBytes    uint64
	softPackets  uint64
	hardPackets  uint64

	aead                                             *algo // AES-GCM, ChaCha20-Poly1305
	crypt                                            *algo // AES-CBC, NULL
	auth                                             *algo // HMAC (truncation length in icvBits)
	encap                                            bool
	sport                                            uint16
	dport                                            uint16
	tfcPad                                           uint32
	ifID                                             uint32
	mark                                             uint32
	markMask                                         uint32
	setMark, setMarkMask                             uint32 // output mark (0/0: none)
	replayOSeq, replaySeq, replayOSeqHi, replaySeqHi uint32
	replayBitmap                                     []uint32
}

// algo is an xfrm_algo, xfrm_algo_auth or xfrm_algo_aead.
type algo struct {
	name    string
	key     []byte
	icvBits uint32 // truncation (auth) or ICV length (aead)
}

func (a *algo) bytes(withICV bool) []byte {
	n := sizeAlgo
	if withICV {
		n = sizeAlgoAuth
	}
	b := make([]byte, n+len(a.key))
	copy(b[:64], a.name)
	ne.PutUint32(b[64:], uint32(len(a.key)*8))
	if withICV {
		ne.PutUint32(b[68:], a.icvBits)
	}
	copy(b[n:], a.key)
	return b
}

// raw is a fixed-size message body (the structure before the attributes). It is added with
// AddData, not AddRawData: nl.NetlinkRequest serialises raw data after all attributes.
type raw []byte

func (r raw) Len() int          { return len(r) }
func (r raw) Serialize() []byte { return r }

// newRequest returns a request with the flags every change wants (an ACK for each).
func newRequest(typ int, flags int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(typ, flags|unix.NLM_F_ACK)
	return req
}

// stateMsg encodes XFRM_MSG_NEWSA (or UPDSA) for st.
func stateMsg(typ int, st *state) *nl.NetlinkRequest {
	flags := 0
	if typ == msgNewSA {
		flags = unix.NLM_F_CREATE | unix.NLM_F_EXCL
	}
	req := newRequest(typ, flags)
	b := make([]byte, sizeUsersaInfo)
	sel := selector{src: netip.PrefixFrom(unspecified(st.src), 0), dst: netip.PrefixFrom(unspecified(st.dst), 0)}
	if st.sel != nil {
		sel = *st.sel
	}
	putSelector(b[saSel:], sel)
	if st.sel == nil {
		// An SA without selector: family 0 (AF_UNSPEC) selects any inner family, as
		// strongSwan and iproute2 leave it for tunnel-mode SAs.
		ne.PutUint16(b[saSel+selFamily:], 0)
	}
	putAddr(b[saIDDaddr:], st.dst)
	binary.BigEndian.PutUint32(b[saIDSPI:], st.spi)
	b[saIDProto] = st.proto
	putAddr(b[saSaddr:], st.src)
	putLifetime(b[saLft:], st.softBytes, st.hardBytes, st.softPackets, st.hardPackets)
	ne.PutUint32(b[saReqid:], st.reqid)
	ne.PutUint16(b[saFamily:], family(st.dst))
	b[saMode] = st.mode
	// The ESN replay state also carries windows above 32 packets (the legacy replay state's bitmap
	// is one u32: the kernel clamps the legacy field to 32, and iproute2 switches at the same
	// point) and the counters moved with an SA; the kernel refuses both forms in one message.
	useESNVal := st.esn || st.replayWindow > 32 || st.replayBitmap != nil
	if st.esn {
		b[saFlags] = stateFlagESN
	}
	if !useESNVal {
		b[saReplayWindow] = uint8(st.replayWindow)
	}
	if st.mode == modeTunnel {
		b[saFlags] |= stateFlagAF
	}
	if st.proto == 51 && st.dst.Unmap().Is4() {
		// RFC 4302 §3.3.3.2.1 asks the ICV field of AH over IPv4 to be a multiple of 32 bits;
		// Linux pads (and expects) 64 bits unless the SA has this flag, so without it AH with
		// HMAC-SHA2-256-128 (28 bytes) does not interoperate with RFC-conforming peers.
		b[saFlags] |= stateFlagAlign4
	}
	req.AddData(raw(b))
	if st.aead != nil {
		req.AddData(nl.NewRtAttr(attrAlgAEAD, st.aead.bytes(true)))
	}
	if st.crypt != nil {
		req.AddData(nl.NewRtAttr(attrAlgCrypt, st.crypt.bytes(false)))
	}
	if st.auth != nil {
		req.AddData(nl.NewRtAttr(attrAlgAuthTrunc, st.auth.bytes(true)))
	}
	if st.encap {
		e := make([]byte, sizeEncapTmpl)
		ne.PutUint16(e[0:], encapESPInUDP)
		binary.BigEndian.PutUint16(e[2:], st.sport)
		binary.BigEndian.PutUint16(e[4:], st.dport)
		req.AddData(nl.NewRtAttr(attrEncap, e))
	}
	if useESNVal {
		words := (st.replayWindow + 31) / 32
		r := make([]byte, sizeReplayESN+4*int(words))
		ne.PutUint32(r[0:], words)
		ne.PutUint32(r[4:], st.replayOSeq)
		ne.PutUint32(r[8:], st.replaySeq)
		ne.PutUint32(r[12:], st.replayOSeqHi)
		ne.PutUint32(r[16:], st.replaySeqHi)
		ne.PutUint32(r[20:], st.replayWindow)
		for i := 0; i < len(st.replayBitmap) && i < int(words); i++ {
			ne.PutUint32(r[sizeReplayESN+4*i:], st.replayBitmap[i])
		}
		req.AddData(nl.NewRtAttr(attrReplayESNVal, r))
	}
	if st.tfcPad != 0 {
		req.AddData(nl.NewRtAttr(attrTFCPad, nl.Uint32Attr(st.tfcPad)))
	}
	if st.mark != 0 || st.markMask != 0 {
		m := make([]byte, 8)
		ne.PutUint32(m[0:], st.mark)
		ne.PutUint32(m[4:], st.markMask)
		req.AddData(nl.NewRtAttr(attrMark, m))
	}
	if st.setMark != 0 || st.setMarkMask != 0 {
		// The kernel takes a missing mask as 0xffffffff; it is always sent, as iproute2 does when
		// given one.
		req.AddData(nl.NewRtAttr(attrSetMark, nl.Uint32Attr(st.setMark)))
		req.AddData(nl.NewRtAttr(attrSetMarkMask, nl.Uint32Attr(st.setMarkMask)))
	}
	if st.ifID != 0 {
		req.AddData(nl.NewRtAttr(attrIfID, nl.Uint32Attr(st.ifID)))
	}
	return req
}

func unspecified(a netip.Addr) netip.Addr {
	if a.Unmap().Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// saIDMsg encodes XFRM_MSG_DELSA or XFRM_MSG_GETSA for one SA: struct xfrm_usersa_id
// (daddr, spi, family, proto), plus XFRMA_MARK when the SA has one.
func saIDMsg(typ int, dst netip.Addr, spi uint32, proto uint8, mark, markMask uint32) *nl.NetlinkRequest {
	req := newRequest(typ, 0)
	b := make([]byte, sizeUsersaID)
	putAddr(b[0:], dst)
	binary.BigEndian.PutUint32(b[16:], spi)
	ne.PutUint16(b[20:], family(dst))
	b[22] = proto
	req.AddData(raw(b))
	if mark != 0 || markMask != 0 {
		m := make([]byte, 8)
		ne.PutUint32(m[0:], mark)
		ne.PutUint32(m[4:], markMask)
		req.AddData(nl.NewRtAttr(attrMark, m))
	}
	return req
}

// tmpl is one xfrm_user_tmpl: the SA a policy wants.
type tmpl struct {
	src, dst netip.Addr // outer addresses (tunnel mode); zero in transport mode
	family   uint16
	spi      uint32 // 0: any SA that fits
	proto    uint8
	mode     uint8
	reqid    uint32
}

// policy is everything that goes into XFRM_MSG_NEWPOLICY / UPDPOLICY.
type policy struct {
	sel      selector
	dir      uint8
	action   uint8
	priority uint32
	index    uint32 // 0: the kernel picks
	tmpls    []tmpl
	mark     uint32
	markMask uint32
	ifID     uint32
}

func policyMsg(typ int, p *policy) *nl.NetlinkRequest {
	flags := 0
	if typ == msgNewPolicy {
		flags = unix.NLM_F_CREATE | unix.NLM_F_EXCL
	}
	req := newRequest(typ, flags)
	b := make([]byte, sizeUserpolicy)
	putSelector(b[polSel:], p.sel)
	putLifetime(b[polLft:], 0, 0, 0, 0)
	ne.PutUint32(b[polPriority:], p.priority)
	ne.PutUint32(b[polIndex:], p.index)
	b[polDir] = p.dir
	b[polAction] = p.action
	req.AddData(raw(b))
	if len(p.tmpls) > 0 {
		t := make([]byte, sizeUserTmpl*len(p.tmpls))
		for i, tp := range p.tmpls {
			o := t[i*sizeUserTmpl:]
			putAddr(o[tmplIDDaddr:], tp.dst)
			binary.BigEndian.PutUint32(o[tmplIDSPI:], tp.spi)
			o[tmplIDProto] = tp.proto
			ne.PutUint16(o[tmplFamily:], tp.family)
			putAddr(o[tmplSaddr:], tp.src)
			ne.PutUint32(o[tmplReqid:], tp.reqid)
			o[tmplMode] = tp.mode
			ne.PutUint32(o[tmplAalgos:], anyAlgos)
			ne.PutUint32(o[tmplEalgos:], anyAlgos)
			ne.PutUint32(o[tmplCalgos:], anyAlgos)
		}
		req.AddData(nl.NewRtAttr(attrTmpl, t))
	}
	if p.mark != 0 || p.markMask != 0 {
		m := make([]byte, 8)
		ne.PutUint32(m[0:], p.mark)
		ne.PutUint32(m[4:], p.markMask)
		req.AddData(nl.NewRtAttr(attrMark, m))
	}
	if p.ifID != 0 {
		req.AddData(nl.NewRtAttr(attrIfID, nl.Uint32Attr(p.ifID)))
	}
	return req
}

// policyIDMsg encodes XFRM_MSG_DELPOLICY for a policy by selector and direction (struct
// xfrm_userpolicy_id), with its mark and interface ID, which are part of its identity.
func policyIDMsg(p *policy) *nl.NetlinkRequest {
	req := newRequest(msgDelPolicy, 0)
	b := make([]byte, sizeUserpolicyID)
	putSelector(b[0:], p.sel)
	b[60] = p.dir
	req.AddData(raw(b))
	if p.mark != 0 || p.markMask != 0 {
		m := make([]byte, 8)
		ne.PutUint32(m[0:], p.mark)
		ne.PutUint32(m[4:], p.markMask)
		req.AddData(nl.NewRtAttr(attrMark, m))
	}
	if p.ifID != 0 {
		req.AddData(nl.NewRtAttr(attrIfID, nl.Uint32Attr(p.ifID)))
	}
	return req
}

// Decoding: what the kernel sends back (GETSA replies) and multicasts (acquire, expire).

var errShort = errors.New("xfrm: message too short")

// saInfo is the part of an xfrm_usersa_info the backend reads.
type saInfo struct {
	dst, src         netip.Addr
	spi              uint32
	proto            uint8
	family           uint16
	reqid            uint32
	bytes, packets   uint64
	addTime, useTime uint64
	replayWindow     uint32
	replayDrops      uint32
	integrityFailed  uint32
}

func parseSAInfo(b []byte) (saInfo, error) {
	if len(b) < sizeUsersaInfo {
		return saInfo{}, errShort
	}
	fam := ne.Uint16(b[saFamily:])
	if fam != unix.AF_INET && fam != unix.AF_INET6 {
		return saInfo{}, fmt.Errorf("xfrm: SA of unknown family %d", fam)
	}
	s := saInfo{family: fam, dst: getAddr(b[saIDDaddr:], fam), src: getAddr(b[saSaddr:], fam),
		spi: binary.BigEndian.Uint32(b[saIDSPI:]), proto: b[saIDProto], reqid: ne.Uint32(b[saReqid:])}
	s.bytes = ne.Uint64(b[saCurLft:])
	s.packets = ne.Uint64(b[saCurLft+8:])
	s.addTime = ne.Uint64(b[saCurLft+16:])
	s.useTime = ne.Uint64(b[saCurLft+24:])
	s.replayWindow = ne.Uint32(b[saStats:])
	s.replayDrops = ne.Uint32(b[saStats+4:])
	s.integrityFailed = ne.Uint32(b[saStats+8:])
	return s, nil
}

// expireMsg is an XFRM_MSG_EXPIRE: struct xfrm_user_expire.
type expireMsg struct {
	sa   saInfo
	hard bool
}

func parseExpire(b []byte) (expireMsg, error) {
	if len(b) < sizeUserExpire {
		return expireMsg{}, errShort
	}
	sa, err := parseSAInfo(b)
	if err != nil {
		return expireMsg{}, err
	}
	return expireMsg{sa: sa, hard: b[sizeUsersaInfo] != 0}, nil
}

// acquireMsg is an XFRM_MSG_ACQUIRE: struct xfrm_user_acquire. The selector holds the packet's
// addresses (the kernel fills it from the flow), the policy part names the policy by index.
type acquireMsg struct {
	dst, src    netip.Addr // the template's outer addresses
	proto       uint8
	selSrc      netip.Addr
	selDst      netip.Addr
	selProto    uint8
	policyIndex uint32
	policyDir   uint8
}

func parseAcquire(b []byte) (acquireMsg, error) {
	if len(b) < sizeUserAcquire {
		return acquireMsg{}, errShort
	}
	const (
		acqID     = 0
		acqSaddr  = 24
		acqSel    = 40
		acqPolicy = 96
	)
	selFam := ne.Uint16(b[acqSel+selFamily:])
	polSelFam := ne.Uint16(b[acqPolicy+polSel+selFamily:])
	fam := selFam
	if fam != unix.AF_INET && fam != unix.AF_INET6 {
		fam = polSelFam
	}
	if fam != unix.AF_INET && fam != unix.AF_INET6 {
		return acquireMsg{}, fmt.Errorf("xfrm: acquire of unknown family %d", selFam)
	}
	a := acquireMsg{proto: b[acqID+20], selProto: b[acqSel+selProto],
		policyIndex: ne.Uint32(b[acqPolicy+polIndex:]), policyDir: b[acqPolicy+polDir]}
	a.selSrc = getAddr(b[acqSel+selSaddr:], fam)
	a.selDst = getAddr(b[acqSel+selDaddr:], fam)
	// The outer addresses are of the template's family, which only the attributes tell for
	// mixed tunnels; the backend looks the policy up by index and needs no more.
	a.dst = getAddr(b[acqID:], fam)
	a.src = getAddr(b[acqSaddr:], fam)
	return a, nil
}

// attrs splits netlink attributes: type to payload (the last one wins when repeated).
func attrs(b []byte) (map[uint16][]byte, error) {
	out := map[uint16][]byte{}
	for len(b) >= 4 {
		l := int(ne.Uint16(b[0:]))
		typ := ne.Uint16(b[2:]) & 0x3fff // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("xfrm: attribute of length %d in %d bytes", l, len(b))
		}
		out[typ] = b[4:l]
		adv := (l + 3) &^ 3
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
	}
	return out, nil
}

// parseNewSA reads an XFRM_MSG_NEWSA (a GETSA reply): the SA and, when present, its replay state.
func parseNewSA(b []byte) (saInfo, *replayState, error) {
	sa, err := parseSAInfo(b)
	if err != nil {
		return sa, nil, err
	}
	at, err := attrs(b[sizeUsersaInfo:])
	if err != nil {
		return sa, nil, err
	}
	if r, ok := at[attrReplayESNVal]; ok {
		rs, err := parseReplayESN(r)
		if err != nil {
			return sa, nil, err
		}
		return sa, rs, nil
	}
	if r, ok := at[attrReplayVal]; ok {
		if len(r) < 12 {
			return sa, nil, errShort
		}
		return sa, &replayState{oseq: ne.Uint32(r[0:]), seq: ne.Uint32(r[4:]), bitmap: []uint32{ne.Uint32(r[8:])}}, nil
	}
	return sa, nil, nil
}

// replayState is the kernel's replay counters and window of an SA (moved with it on an address
// update).
type replayState struct {
	oseq, seq, oseqHi, seqHi uint32
	window                   uint32
	bitmap                   []uint32
}

func parseReplayESN(r []byte) (*replayState, error) {
	if len(r) < sizeReplayESN {
		return nil, errShort
	}
	words := ne.Uint32(r[0:])
	if words > maxReplayWords || len(r) < sizeReplayESN+4*int(words) {
		return nil, fmt.Errorf("xfrm: replay bitmap of %d words in %d bytes", words, len(r))
	}
	rs := &replayState{oseq: ne.Uint32(r[4:]), seq: ne.Uint32(r[8:]), oseqHi: ne.Uint32(r[12:]),
		seqHi: ne.Uint32(r[16:]), window: ne.Uint32(r[20:])}
	for i := range int(words) {
		rs.bitmap = append(rs.bitmap, ne.Uint32(r[sizeReplayESN+4*i:]))
	}
	return rs, nil
}
