package userspace

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The XDP program that steers raw ESP to the engine's AF_XDP sockets. It runs in the driver's
// receive path, before the kernel builds an skb, and for each Ethernet frame decides:
//
//   - IPv4 (EtherType 0x0800) with a 20-byte header (IHL 5: no options), not a fragment (MF clear
//     and offset 0), protocol 50 (ESP), at least 8 bytes of ESP (SPI and sequence number), and a
//     destination address in addrs4; or
//   - IPv6 (EtherType 0x86DD), version 6, next header 50 directly after the fixed header (no
//     extension headers), at least 8 bytes of ESP, and a destination address in addrs6
//
// go to the AF_XDP socket in xsks at the packet's RX queue (bpf_redirect_map with XDP_PASS as the
// default: a queue without a socket passes the packet on). Everything else — IKE, ICMP, fragments,
// ESP to addresses without an inbound SA here (forwarded ESP of other gateways) — gets XDP_PASS
// and takes the kernel's path as if no program were attached; the raw socket still receives the
// ESP among it.
//
// The header layouts are RFC 894 (Ethernet), RFC 791 §3.1 (IPv4: IHL in the low nibble of byte 0,
// flags and fragment offset in bytes 6-7, protocol at byte 9, destination at 16) and RFC 8200 §3
// (IPv6: next header at byte 6, destination at 24). struct xdp_md (linux/bpf.h) has data at
// offset 0, data_end at 4 and rx_queue_index at 16.

const (
	xdpMdData         = 0
	xdpMdDataEnd      = 4
	xdpMdRxQueueIndex = 16
	xdpPass           = 2 // enum xdp_action (linux/bpf.h): XDP_PASS
	xdpTX             = 3 // XDP_TX
	xdpMaxQueues      = 64
	protoESP          = 50
)

// xdpMaps are the maps one engine's programs share (addresses) or own (sockets, per interface).
type xdpAddrMaps struct {
	addrs4, addrs6 *ebpf.Map // key: destination address; value: unused byte
}

func newXDPAddrMaps() (*xdpAddrMaps, error) {
	m := &xdpAddrMaps{}
	var err error
	if m.addrs4, err = ebpf.NewMap(&ebpf.MapSpec{Name: "goipsec_esp4", Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: 1024}); err != nil {
		return nil, fmt.Errorf("BPF map of IPv4 ESP addresses: %w", err)
	}
	if m.addrs6, err = ebpf.NewMap(&ebpf.MapSpec{Name: "goipsec_esp6", Type: ebpf.Hash, KeySize: 16, ValueSize: 1, MaxEntries: 1024}); err != nil {
		m.addrs4.Close()
		return nil, fmt.Errorf("BPF map of IPv6 ESP addresses: %w", err)
	}
	return m, nil
}

func (m *xdpAddrMaps) close() {
	m.addrs4.Close()
	m.addrs6.Close()
}

func (m *xdpAddrMaps) addrsFor(a netip.Addr) *ebpf.Map {
	if a.Is4() {
		return m.addrs4
	}
	return m.addrs6
}

func newXSKMap() (*ebpf.Map, error) {
	return ebpf.NewMap(&ebpf.MapSpec{Name: "goipsec_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: xdpMaxQueues})
}

// espXDPInstructions is the program described above, for the given map file descriptors; with
// xsks < 0 it returns XDP_TX instead of redirecting.
func espXDPInstructions(addrs4, addrs6, xsks int) asm.Instructions {
	const (
		ctx  = asm.R6
		data = asm.R2
		end  = asm.R3
		tmp  = asm.R4
		b    = asm.R5
	)
	prog := asm.Instructions{
		asm.Mov.Reg(ctx, asm.R1),
		asm.LoadMem(data, ctx, xdpMdData, asm.Word),
		asm.LoadMem(end, ctx, xdpMdDataEnd, asm.Word),
		// Ethernet header and an IPv4 header with 8 bytes of ESP (14+20+8): shorter frames pass.
		asm.Mov.Reg(tmp, data),
		asm.Add.Imm(tmp, ethHdrLen+ipv4HeaderLen+8),
		asm.JGT.Reg(tmp, end, "pass"),
		asm.LoadMem(b, data, 12, asm.Byte),
		asm.JEq.Imm(b, 0x86, "ipv6"),
		asm.JNE.Imm(b, 0x08, "pass"),
		asm.LoadMem(b, data, 13, asm.Byte),
		asm.JNE.Imm(b, 0x00, "pass"),
		asm.LoadMem(b, data, ethHdrLen+0, asm.Byte),
		asm.JNE.Imm(b, 0x45, "pass"),
		asm.LoadMem(b, data, ethHdrLen+9, asm.Byte),
		asm.JNE.Imm(b, protoESP, "pass"),
		asm.LoadMem(b, data, ethHdrLen+6, asm.Byte),
		asm.And.Imm(b, 0x3f), // MF and the high bits of the fragment offset
		asm.JNE.Imm(b, 0, "pass"),
		asm.LoadMem(b, data, ethHdrLen+7, asm.Byte),
		asm.JNE.Imm(b, 0, "pass"),
		// The destination address as the lookup key, on the stack.
		asm.LoadMem(b, data, ethHdrLen+16, asm.Word),
		asm.StoreMem(asm.RFP, -4, b, asm.Word),
		asm.LoadMapPtr(asm.R1, addrs4),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Ja.Label("redirect"),

		// IPv6: Ethernet, the fixed header and 8 bytes of ESP (14+40+8).
		asm.LoadMem(b, data, 13, asm.Byte).WithSymbol("ipv6"),
		asm.JNE.Imm(b, 0xdd, "pass"),
		asm.Mov.Reg(tmp, data),
		asm.Add.Imm(tmp, ethHdrLen+ipv6HeaderLen+8),
		asm.JGT.Reg(tmp, end, "pass"),
		asm.LoadMem(b, data, ethHdrLen+0, asm.Byte),
		asm.And.Imm(b, 0xf0),
		asm.JNE.Imm(b, 0x60, "pass"),
		asm.LoadMem(b, data, ethHdrLen+6, asm.Byte),
		asm.JNE.Imm(b, protoESP, "pass"),
		asm.LoadMem(b, data, ethHdrLen+24, asm.Word),
		asm.StoreMem(asm.RFP, -16, b, asm.Word),
		asm.LoadMem(b, data, ethHdrLen+28, asm.Word),
		asm.StoreMem(asm.RFP, -12, b, asm.Word),
		asm.LoadMem(b, data, ethHdrLen+32, asm.Word),
		asm.StoreMem(asm.RFP, -8, b, asm.Word),
		asm.LoadMem(b, data, ethHdrLen+36, asm.Word),
		asm.StoreMem(asm.RFP, -4, b, asm.Word),
		asm.LoadMapPtr(asm.R1, addrs6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
	}
	if xsks < 0 {
		// The tests' variant: XDP_TX marks the packets that would be redirected (a test run
		// cannot redirect to a socket that is not bound).
		prog = append(prog, asm.Mov.Imm(asm.R0, xdpTX).WithSymbol("redirect"), asm.Return())
	} else {
		// bpf_redirect_map(xsks, rx_queue_index, XDP_PASS).
		prog = append(prog,
			asm.LoadMapPtr(asm.R1, xsks).WithSymbol("redirect"),
			asm.LoadMem(asm.R2, ctx, xdpMdRxQueueIndex, asm.Word),
			asm.Mov.Imm(asm.R3, xdpPass),
			asm.FnRedirectMap.Call(),
			asm.Return())
	}
	return append(prog, asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"), asm.Return())
}

// newESPXDPProgram loads the program for one interface's socket map (nil: the tests' variant).
func newESPXDPProgram(m *xdpAddrMaps, xsks *ebpf.Map) (*ebpf.Program, error) {
	fd := -1
	if xsks != nil {
		fd = xsks.FD()
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "goipsec_esp",
		Type: ebpf.XDP,
		// The license string only decides whether GPL-only helpers may be called; the program
		// calls none (map lookup and redirect_map are open to all).
		License:      "Apache-2.0",
		Instructions: espXDPInstructions(m.addrs4.FD(), m.addrs6.FD(), fd),
		// The program reads only the first 62 bytes, always in the first buffer of a
		// multi-buffer frame; declaring so keeps veth from turning off its peer's GSO.
		Flags: unix.BPF_F_XDP_HAS_FRAGS,
	})
	if err != nil {
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	return p, nil
}
