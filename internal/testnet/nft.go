package testnet

import (
	"fmt"
	"testing"
)

// Table names of the rules this package installs; each function replaces its own table atomically
// (add, delete, recreate in one nft transaction), so calling it again changes the setting.
const (
	natTable  = "goipsec_testnet_nat"
	lossTable = "goipsec_testnet_loss"
)

// Masquerade makes the namespace a NAT router: forwarding on, and everything forwarded out of outIf
// gets the source address of outIf (nftables masquerade, IPv4 and IPv6).
func (ns *NS) Masquerade(t testing.TB, outIf string) {
	t.Helper()
	Require(t, "nft")
	ns.EnableForwarding()
	ns.runStdin(t, fmt.Sprintf(`add table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname %[2]q masquerade
	}
}
`, natTable, outIf), "nft", "-f", "-")
}

// DropRandom drops the given percentage of packets passing through the namespace: forwarded packets,
// and packets received or sent on any interface but lo. Each packet crosses exactly one of those hooks
// in a namespace, so it is dropped with that probability once. 0 removes the rule.
func (ns *NS) DropRandom(t testing.TB, percent int) {
	t.Helper()
	Require(t, "nft")
	if percent < 0 || percent > 100 {
		t.Fatalf("testnet: DropRandom(%d): want 0..100", percent)
	}
	script := fmt.Sprintf("add table inet %[1]s\ndelete table inet %[1]s\n", lossTable)
	if percent > 0 {
		// numgen random mod 100 is uniform over 0..99, so "< percent" matches percent% of packets;
		// nft rejects the comparison "< 100" as out of range, and 100% needs no random number anyway.
		match := fmt.Sprintf("numgen random mod 100 < %d ", percent)
		if percent == 100 {
			match = ""
		}
		script += fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		%[2]sdrop
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname != "lo" %[2]sdrop
	}
	chain output {
		type filter hook output priority filter; policy accept;
		oifname != "lo" %[2]sdrop
	}
}
`, lossTable, match)
	}
	ns.runStdin(t, script, "nft", "-f", "-")
}
