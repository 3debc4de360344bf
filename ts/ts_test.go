package ts

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

func mustParse(t *testing.T, s string) Selector {
	t.Helper()
	sel, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return sel
}

func TestParseAndString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.1.0.0/24", "10.1.0.0/24"},
		{"10.1.0.7/24", "10.1.0.0/24"},
		{"10.1.0.5", "10.1.0.5/32"},
		{"10.0.0.1-10.0.0.6", "10.0.0.1-10.0.0.6"},
		{"2001:db8::/64", "2001:db8::/64"},
		{"0.0.0.0/0[tcp/80]", "0.0.0.0/0[tcp/80]"},
		{"10.0.0.0/8[udp/1000-2000]", "10.0.0.0/8[udp/1000-2000]"},
		{"10.0.0.0/8[17]", "10.0.0.0/8[udp]"},
		{"10.0.0.0/8[any]", "10.0.0.0/8"},
		{"10.0.0.0/8[/443]", "10.0.0.0/8[any/443]"},
	} {
		if got := mustParse(t, tc.in).String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "10.0.0.0/33", "10.0.0.9-10.0.0.1", "10.0.0.1-::1", "10.0.0.0/8[tcp", "10.0.0.0/8[foo]", "10.0.0.0/8[tcp/90000]", "10.0.0.0/8[tcp/9-1]", "host.example"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded, want error", in)
		}
	}
}

func TestMatches(t *testing.T) {
	web := mustParse(t, "10.0.0.0/24[tcp/80]")
	a := netip.MustParseAddr("10.0.0.9")
	if !web.Matches(a, ProtoTCP, 80, true) {
		t.Error("tcp/80 should match")
	}
	if web.Matches(a, ProtoTCP, 81, true) || web.Matches(a, ProtoUDP, 80, true) {
		t.Error("wrong port/protocol matched")
	}
	if web.Matches(a, ProtoTCP, 0, false) {
		t.Error("a non-first fragment (no ports) must not match a port-restricted selector")
	}
	if web.Matches(netip.MustParseAddr("10.0.1.1"), ProtoTCP, 80, true) {
		t.Error("address outside range matched")
	}
	anyv6 := Any(true)
	if anyv6.Matches(a, ProtoTCP, 80, true) {
		t.Error("IPv6 selector matched an IPv4 address")
	}
}

func TestIntersectAndNarrow(t *testing.T) {
	a := mustParse(t, "10.0.0.0/16")
	b := mustParse(t, "10.0.5.0/24[tcp/22]")
	got, ok := a.Intersect(b)
	if !ok || got != b {
		t.Fatalf("Intersect = %v,%v want %v", got, ok, b)
	}
	if _, ok := a.Intersect(mustParse(t, "10.1.0.0/16")); ok {
		t.Error("disjoint ranges intersected")
	}
	if _, ok := mustParse(t, "10.0.0.0/8[tcp]").Intersect(mustParse(t, "10.0.0.0/8[udp]")); ok {
		t.Error("tcp and udp intersected")
	}
	n, err := Narrow([]Selector{mustParse(t, "0.0.0.0/0")}, []Selector{mustParse(t, "10.1.0.0/24"), mustParse(t, "10.2.0.0/24")})
	if err != nil || len(n) != 2 || n[0].String() != "10.1.0.0/24" || n[1].String() != "10.2.0.0/24" {
		t.Fatalf("Narrow = %v, %v", n, err)
	}
	if _, err := Narrow([]Selector{mustParse(t, "192.168.0.0/16")}, []Selector{mustParse(t, "10.0.0.0/8")}); err != ErrEmpty {
		t.Fatalf("Narrow of disjoint = %v, want ErrEmpty", err)
	}
}

func TestPrefixes(t *testing.T) {
	s := mustParse(t, "10.0.0.1-10.0.0.6")
	var got []string
	for _, p := range s.Prefixes() {
		got = append(got, p.String())
	}
	want := []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Prefixes = %v, want %v", got, want)
	}
	all := Any(false).Prefixes()
	if len(all) != 1 || all[0].String() != "0.0.0.0/0" {
		t.Fatalf("Any v4 prefixes = %v", all)
	}
	all6 := mustParse(t, "::/0").Prefixes()
	if len(all6) != 1 || all6[0].String() != "::/0" {
		t.Fatalf("Any v6 prefixes = %v", all6)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.0/24", "10.0.0.1-10.0.0.9[tcp/1-2]", "::/0[ipv6-icmp/34560]", "1.2.3.4[udp/500]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if err != nil {
			return
		}
		if !sel.Valid() {
			t.Fatalf("Parse(%q) returned invalid selector %+v", s, sel)
		}
		again, err := Parse(sel.String())
		if err != nil || again != sel {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, sel.String(), again, err)
		}
		ps := sel.Prefixes()
		if len(ps) == 0 || ps[0].Addr() != sel.Start {
			t.Fatalf("Prefixes(%v) = %v", sel, ps)
		}
	})
}

// TestParseServiceNames: strongSwan accepts service names in selectors ([tcp/ssh]); so does goipsec,
// from /etc/services or Go's built-in table (which has ssh and https).
func TestParseServiceNames(t *testing.T) {
	for in, want := range map[string]uint16{"10.0.0.0/8[tcp/ssh]": 22, "0.0.0.0/0[tcp/https]": 443} {
		sel, err := Parse(in)
		if err != nil || sel.StartPort != want || sel.EndPort != want {
			t.Errorf("Parse(%q) = %+v, %v; want port %d", in, sel, err, want)
		}
	}
	if _, err := Parse("10.0.0.0/8[icmp/ssh]"); err == nil {
		t.Error("a service name with icmp was accepted")
	}
	if _, err := Parse("10.0.0.0/8[tcp/no-such-service-xyz]"); err == nil {
		t.Error("an unknown service name was accepted")
	}
}

// TestNarrowSharesAllowedList: when narrowing leaves our allowed list as it is, Narrow returns
// that list itself (no copy per Child SA) with its capacity capped, so a caller's append copies
// instead of writing into the configuration; otherwise a list of its own.
func TestNarrowSharesAllowedList(t *testing.T) {
	allowed := make([]Selector, 0, 4)
	allowed = append(allowed, FromPrefix(netip.MustParsePrefix("10.1.0.0/24")))
	want := []Selector{FromPrefix(netip.MustParsePrefix("10.0.0.0/8"))}
	got, err := Narrow(want, allowed)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || &got[0] != &allowed[0] || cap(got) != 1 {
		t.Fatalf("Narrow = %v (cap %d), want the allowed list itself with capacity 1", got, cap(got))
	}
	grown := append(got, FromPrefix(netip.MustParsePrefix("10.9.0.0/24")))
	if len(allowed) != 1 || allowed[:2][1] == grown[1] {
		t.Fatal("appending to the narrowed list wrote into the allowed list")
	}
	// Narrowed to less than allowed: a list of its own.
	got, err = Narrow([]Selector{FromPrefix(netip.MustParsePrefix("10.1.0.128/25"))}, allowed)
	if err != nil || len(got) != 1 || &got[0] == &allowed[0] || got[0] != FromPrefix(netip.MustParsePrefix("10.1.0.128/25")) {
		t.Fatalf("Narrow to a subnet = %v, %v", got, err)
	}
}

// TestKey: equal lists give equal keys, and lists that differ in any field, in length or in order
// give different ones (the daemon keys its outbound policies by them).
func TestKey(t *testing.T) {
	mk := func(specs ...string) []Selector {
		var out []Selector
		for _, s := range specs {
			sel, err := Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sel)
		}
		return out
	}
	lists := [][]Selector{
		nil,
		mk("10.1.0.0/24"),
		mk("10.1.0.0/25"),
		mk("10.1.0.0/24[tcp]"),
		mk("10.1.0.0/24[tcp/80]"),
		mk("10.1.0.0/24[tcp/81]"),
		mk("10.1.0.0/24[udp/80]"),
		mk("::ffff:10.1.0.0/120"),
		mk("2001:db8::/64"),
		mk("2001:db8::/65"),
		mk("10.1.0.0/24", "2001:db8::/64"),
		mk("2001:db8::/64", "10.1.0.0/24"),
		mk("10.1.0.0/24", "2001:db8::/64", "10.9.0.0/16"),
		{{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.9"), EndPort: 0xffff}},
		{{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.9"), EndPort: 0xfffe}},
		{{}},
	}
	seen := map[string]int{}
	for i, l := range lists {
		k := Key(l)
		if Key(slices.Clone(l)) != k {
			t.Errorf("list %d: two keys for the same list", i)
		}
		if j, dup := seen[k]; dup && FormatList(lists[j]) != FormatList(l) {
			t.Errorf("lists %d (%s) and %d (%s) share a key", j, FormatList(lists[j]), i, FormatList(l))
		}
		seen[k] = i
	}
	if n := testing.AllocsPerRun(100, func() { Key(lists[10]) }); n > 1 {
		t.Errorf("Key allocates %v times, want 1", n)
	}
}
