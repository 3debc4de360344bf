package testnet

import (
	"fmt"
	"testing"
)

// fwTable is the table of Firewall's rules.
const fwTable = "goipsec_testnet_fw"

// Firewall makes the namespace a router that forwards only what rules accept: the forward chain
// drops everything else, except packets of connections it let through (conntrack established or
// related). rules are nft rule statements, one per line ("tcp dport 443 accept"); calling it again
// replaces them atomically.
func (ns *NS) Firewall(t testing.TB, rules string) {
	t.Helper()
	Require(t, "nft")
	ns.EnableForwarding()
	ns.runStdin(t, fmt.Sprintf(`add table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain forward {
		type filter hook forward priority filter; policy drop;
		%[2]s
		ct state established,related accept
	}
}
`, fwTable, rules), "nft", "-f", "-")
}
