package vici

import (
	"errors"
	"slices"
	"testing"
)

func TestSetReplacesInPlace(t *testing.T) {
	m := NewMessage().Set("a", "1").Set("b", "2").Set("c", "3")
	m.Set("b", "two")
	if got := m.Keys(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("keys %q", got)
	}
	if m.Get("b") != "two" {
		t.Fatalf("b = %q", m.Get("b"))
	}
}

func TestSetListReplacesInPlaceAndCopies(t *testing.T) {
	items := []string{"x", "y"}
	m := NewMessage().SetList("l", items...).Set("after", "1")
	items[0] = "changed"
	if got := m.List("l"); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("list shares the caller's slice: %q", got)
	}
	m.SetList("l")
	if got := m.List("l"); got == nil || len(got) != 0 {
		t.Fatalf("empty list = %#v, want empty non-nil", got)
	}
	if got := m.Keys(); !slices.Equal(got, []string{"l", "after"}) {
		t.Fatalf("keys %q", got)
	}
}

func TestSectionsAndKinds(t *testing.T) {
	m := NewMessage()
	conn := m.AddSection("conn")
	conn.Set("version", "2")
	m.Set("conn", "a value with the same name as the section")
	if m.Section("conn") != conn {
		t.Fatal("Section does not return the added section")
	}
	if m.Get("conn") != "a value with the same name as the section" {
		t.Fatal("Get must find the key-value, not the section")
	}
	if m.List("conn") != nil {
		t.Fatal("List must not find a section or value")
	}
	repl := NewMessage().Set("x", "1")
	m.SetSection("conn", repl)
	if m.Section("conn") != repl || m.Len() != 2 {
		t.Fatalf("SetSection did not replace in place: %s", m)
	}
}

func TestNilMessageReads(t *testing.T) {
	var m *Message
	if m.Len() != 0 || m.Get("a") != "" || m.Section("a") != nil || m.List("a") != nil ||
		m.Items() != nil || m.Keys() != nil || m.String() != "" {
		t.Fatal("nil message must read as empty")
	}
	if v, ok := m.Lookup("a"); ok || v != "" {
		t.Fatal("Lookup on nil")
	}
	if got := m.Section("a").Section("b").Get("c"); got != "" {
		t.Fatalf("chained lookup = %q", got)
	}
	m.Delete("a") // must not panic
	if !m.Equal(NewMessage()) || !NewMessage().Equal(m) {
		t.Fatal("nil must equal empty")
	}
}

func TestLookupDistinguishesEmpty(t *testing.T) {
	m := NewMessage().Set("empty", "")
	if v, ok := m.Lookup("empty"); !ok || v != "" {
		t.Fatalf("Lookup(empty) = %q, %v", v, ok)
	}
	if _, ok := m.Lookup("missing"); ok {
		t.Fatal("Lookup(missing) found something")
	}
}

func TestDelete(t *testing.T) {
	m := NewMessage().Set("a", "1").SetList("b", "x").Set("c", "3").SetSection("b", nil)
	m.Delete("b")
	if got := m.Keys(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("keys after Delete: %q", got)
	}
}

func TestItemsIsACopy(t *testing.T) {
	m := NewMessage().Set("a", "1")
	items := m.Items()
	items[0].Value = "changed"
	if m.Get("a") != "1" {
		t.Fatal("Items exposes the message's own slice")
	}
}

func TestEqual(t *testing.T) {
	base := func() *Message {
		m := NewMessage().Set("a", "1").SetList("l", "x")
		m.AddSection("s").Set("k", "v")
		return m
	}
	cases := map[string]*Message{
		"value":         NewMessage().Set("a", "2").SetList("l", "x").SetSection("s", NewMessage().Set("k", "v")),
		"order":         NewMessage().SetList("l", "x").Set("a", "1").SetSection("s", NewMessage().Set("k", "v")),
		"list item":     NewMessage().Set("a", "1").SetList("l", "y").SetSection("s", NewMessage().Set("k", "v")),
		"list length":   NewMessage().Set("a", "1").SetList("l", "x", "x").SetSection("s", NewMessage().Set("k", "v")),
		"nested value":  NewMessage().Set("a", "1").SetList("l", "x").SetSection("s", NewMessage().Set("k", "w")),
		"kind":          NewMessage().Set("a", "1").Set("l", "x").SetSection("s", NewMessage().Set("k", "v")),
		"missing item":  NewMessage().Set("a", "1").SetList("l", "x"),
		"different key": NewMessage().Set("b", "1").SetList("l", "x").SetSection("s", NewMessage().Set("k", "v")),
	}
	if !base().Equal(base()) {
		t.Fatal("identical messages differ")
	}
	for name, other := range cases {
		if base().Equal(other) || other.Equal(base()) {
			t.Errorf("%s: messages compare equal", name)
		}
	}
	if !NewMessage().SetList("l").Equal(&Message{items: []Item{{Key: "l", Kind: KindList}}}) {
		t.Error("nil and empty list must compare equal")
	}
}

func TestString(t *testing.T) {
	got := readmeExampleMessage().String()
	want := `key1 = "value1"
section1 {
  sub-section {
    key2 = "value2"
  }
  list1 = [ "item1", "item2" ]
}
`
	if got != want {
		t.Fatalf("String:\n%s\nwant:\n%s", got, want)
	}
	cyclic := NewMessage()
	cyclic.SetSection("self", cyclic)
	if s := cyclic.String(); len(s) == 0 {
		t.Fatal("String of a cyclic message is empty")
	}
}

func TestErr(t *testing.T) {
	if err := NewMessage().Set("daemon", "goipsec").Err(); err != nil {
		t.Fatalf("response without success: %v", err)
	}
	if err := NewMessage().Set("success", "yes").Err(); err != nil {
		t.Fatalf("success = yes: %v", err)
	}
	err := NewMessage().Set("success", "no").Set("errmsg", "no config named foo").Err()
	if !errors.Is(err, ErrCommandFailed) || err.Error() != "vici: command failed: no config named foo" {
		t.Fatalf("success = no: %v", err)
	}
	if err := NewMessage().Set("success", "no").Err(); err != ErrCommandFailed {
		t.Fatalf("success = no without errmsg: %v", err)
	}
	if !NewMessage().Set("success", "yes").Success() || NewMessage().Success() {
		t.Fatal("Success")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindValue: "value", KindList: "list", KindSection: "section", 0: "Kind(0)"} {
		if k.String() != want {
			t.Errorf("%d: %q", uint8(k), k.String())
		}
	}
}
