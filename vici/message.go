package vici

import (
	"errors"
	"fmt"
	"strings"
)

// Kind says what a message item is.
type Kind uint8

// Item kinds. The zero Kind is invalid so that a forgotten field shows up in Equal and encoding.
const (
	KindValue   Kind = iota + 1 // key = value
	KindList                    // key = [ item, ... ]
	KindSection                 // key { ... }
)

func (k Kind) String() string {
	switch k {
	case KindValue:
		return "value"
	case KindList:
		return "list"
	case KindSection:
		return "section"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Item is one named entry of a message or section. Exactly one of Value, List and Section is
// meaningful, as Kind says.
//
// Values are strings because VICI values are byte blobs that strongSwan fills with non-terminated
// strings; a Go string holds any bytes, so binary values (DER certificates, raw PSKs) survive
// unchanged.
type Item struct {
	Key     string
	Kind    Kind
	Value   string
	List    []string
	Section *Message
}

// Message is a VICI message or section: named items in wire order.
//
// The zero value is an empty message ready to use. Read accessors accept a nil *Message and then
// behave as for an empty one, so lookups can be chained: m.Section("a").Section("b").Get("c").
//
// Key names should be unique within a section (the VICI documentation asks for it), but the
// decoder keeps duplicates it receives so that re-encoding is byte-exact; lookups return the first
// match.
type Message struct {
	items []Item
}

// NewMessage returns an empty message.
func NewMessage() *Message { return &Message{} }

// Len returns the number of items directly in m.
func (m *Message) Len() int {
	if m == nil {
		return 0
	}
	return len(m.items)
}

// Items returns m's items in order. The slice is a copy; the sections it points to are not.
func (m *Message) Items() []Item {
	if m == nil {
		return nil
	}
	return append([]Item(nil), m.items...)
}

// Keys returns the names of m's items in order.
func (m *Message) Keys() []string {
	if m == nil {
		return nil
	}
	keys := make([]string, len(m.items))
	for i, it := range m.items {
		keys[i] = it.Key
	}
	return keys
}

// find returns the index of the first item named key of kind k, or -1.
func (m *Message) find(key string, k Kind) int {
	if m == nil {
		return -1
	}
	for i := range m.items {
		if m.items[i].Key == key && m.items[i].Kind == k {
			return i
		}
	}
	return -1
}

// Get returns the value of key, or "" if m has no such key-value.
func (m *Message) Get(key string) string {
	v, _ := m.Lookup(key)
	return v
}

// Lookup returns the value of key and whether m has that key-value.
func (m *Message) Lookup(key string) (string, bool) {
	i := m.find(key, KindValue)
	if i < 0 {
		return "", false
	}
	return m.items[i].Value, true
}

// Section returns the sub-section named key, or nil.
func (m *Message) Section(key string) *Message {
	i := m.find(key, KindSection)
	if i < 0 {
		return nil
	}
	return m.items[i].Section
}

// List returns the items of the list named key, or nil. The slice is shared with m.
func (m *Message) List(key string) []string {
	i := m.find(key, KindList)
	if i < 0 {
		return nil
	}
	return m.items[i].List
}

// Set sets key to value, replacing the first existing key-value of that name in place (so its
// position is kept) or appending a new one. It returns m for chaining.
func (m *Message) Set(key, value string) *Message {
	if i := m.find(key, KindValue); i >= 0 {
		m.items[i].Value = value
		return m
	}
	m.items = append(m.items, Item{Key: key, Kind: KindValue, Value: value})
	return m
}

// SetList sets the list key to items, replacing an existing list of that name in place or appending
// a new one. The list may be empty. It returns m for chaining.
func (m *Message) SetList(key string, items ...string) *Message {
	list := append([]string{}, items...)
	if i := m.find(key, KindList); i >= 0 {
		m.items[i].List = list
		return m
	}
	m.items = append(m.items, Item{Key: key, Kind: KindList, List: list})
	return m
}

// AddSection appends a new empty section named key and returns it for filling in.
func (m *Message) AddSection(key string) *Message {
	s := &Message{}
	m.items = append(m.items, Item{Key: key, Kind: KindSection, Section: s})
	return s
}

// SetSection sets the section key to s, replacing an existing section of that name in place or
// appending. A nil s is stored as an empty section. It returns m for chaining.
func (m *Message) SetSection(key string, s *Message) *Message {
	if s == nil {
		s = &Message{}
	}
	if i := m.find(key, KindSection); i >= 0 {
		m.items[i].Section = s
		return m
	}
	m.items = append(m.items, Item{Key: key, Kind: KindSection, Section: s})
	return m
}

// Delete removes every item named key, of any kind.
func (m *Message) Delete(key string) {
	if m == nil {
		return
	}
	kept := m.items[:0]
	for _, it := range m.items {
		if it.Key != key {
			kept = append(kept, it)
		}
	}
	clear(m.items[len(kept):])
	m.items = kept
}

// Equal reports whether m and o have the same items in the same order, recursively. A nil message
// equals an empty one, and a nil list equals an empty one, as both encode identically.
func (m *Message) Equal(o *Message) bool {
	if m.Len() != o.Len() {
		return false
	}
	for i := range m.Len() {
		a, b := &m.items[i], &o.items[i]
		if a.Key != b.Key || a.Kind != b.Kind {
			return false
		}
		switch a.Kind {
		case KindValue:
			if a.Value != b.Value {
				return false
			}
		case KindList:
			if len(a.List) != len(b.List) {
				return false
			}
			for j := range a.List {
				if a.List[j] != b.List[j] {
					return false
				}
			}
		case KindSection:
			if !a.Section.Equal(b.Section) {
				return false
			}
		}
	}
	return true
}

// ErrCommandFailed is wrapped by Message.Err for responses saying success = no.
var ErrCommandFailed = errors.New("vici: command failed")

// Err returns nil unless m is a response saying success = no (or any value other than yes), in which
// case it wraps ErrCommandFailed with the response's errmsg. Responses without a success key, such as
// version's, are never errors.
func (m *Message) Err() error {
	s, ok := m.Lookup("success")
	if !ok || s == "yes" {
		return nil
	}
	if msg := m.Get("errmsg"); msg != "" {
		return fmt.Errorf("%w: %s", ErrCommandFailed, msg)
	}
	return ErrCommandFailed
}

// Success reports whether a command response says success = yes, the convention of strongSwan's
// commands that can fail.
func (m *Message) Success() bool { return m.Get("success") == "yes" }

// String renders m in the indented key = value notation of the VICI documentation, for logs and test
// failure messages. Values are quoted with Go syntax so binary data stays readable.
func (m *Message) String() string {
	var b strings.Builder
	m.format(&b, 0)
	return b.String()
}

func (m *Message) format(b *strings.Builder, depth int) {
	if depth > MaxDepth {
		// A message built by hand can contain itself; stop instead of recursing forever.
		b.WriteString("...\n")
		return
	}
	indent := strings.Repeat("  ", depth)
	for _, it := range m.Items() {
		switch it.Kind {
		case KindValue:
			fmt.Fprintf(b, "%s%s = %q\n", indent, it.Key, it.Value)
		case KindList:
			fmt.Fprintf(b, "%s%s = [", indent, it.Key)
			for j, v := range it.List {
				if j > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(b, " %q", v)
			}
			b.WriteString(" ]\n")
		case KindSection:
			fmt.Fprintf(b, "%s%s {\n", indent, it.Key)
			it.Section.format(b, depth+1)
			fmt.Fprintf(b, "%s}\n", indent)
		default:
			fmt.Fprintf(b, "%s%s <%v>\n", indent, it.Key, it.Kind)
		}
	}
}
