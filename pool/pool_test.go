package pool

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func mustPool(t *testing.T, prefix string) *Pool {
	t.Helper()
	p, err := FromPrefix("p", netip.MustParsePrefix(prefix), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStickyAndExhausted(t *testing.T) {
	p := mustPool(t, "10.3.0.0/30") // two hosts: .1 and .2
	if p.Size() != 2 {
		t.Fatalf("size %d, want 2", p.Size())
	}
	a, _ := p.Acquire("alice")
	b, _ := p.Acquire("bob")
	if a != netip.MustParseAddr("10.3.0.1") || b != netip.MustParseAddr("10.3.0.2") {
		t.Fatalf("got %s %s", a, b)
	}
	if _, err := p.Acquire("carol"); err != ErrExhausted {
		t.Fatalf("third client: %v, want ErrExhausted", err)
	}
	p.Release("alice")
	if a2, _ := p.Acquire("alice"); a2 != a {
		t.Fatalf("alice came back to %s, want %s", a2, a)
	}
	p.Release("alice")
	// Carol takes alice's released address only because nothing else is left.
	if c, _ := p.Acquire("carol"); c != a {
		t.Fatalf("carol got %s, want the released %s", c, a)
	}
	p.Release("bob")
	if a3, _ := p.Acquire("alice"); a3 != b {
		t.Fatalf("alice got %s, want bob's released %s", a3, b)
	}
	if p.Held() != 2 || p.Offline() != 0 {
		t.Fatalf("held %d offline %d", p.Held(), p.Offline())
	}
}

// A re-authenticating client asks for the address its old IKE SA still holds: it gets it, and the
// address stays held until both SAs let go. A second device of the same identity asking for any
// address gets another one.
func TestReauthSharesSecondDeviceDoesNot(t *testing.T) {
	p := mustPool(t, "10.3.0.0/24")
	a, _ := p.Acquire("alice")
	if r, _ := p.AcquireRequested("alice", a); r != a {
		t.Fatalf("requested %s, got %s", a, r)
	}
	if other, _ := p.Acquire("alice"); other == a {
		t.Fatalf("second device shares %s", a)
	}
	p.ReleaseAddr("alice", a)
	if l := p.Leases(); len(l) != 2 || !l[0].Online || l[0].Holds != 1 {
		t.Fatalf("after one release: %+v", l)
	}
	p.ReleaseAddr("alice", a)
	if p.Held() != 1 {
		t.Fatalf("held %d, want 1", p.Held())
	}
	// Someone else asking for alice's offline address does not get it.
	if got, _ := p.AcquireRequested("bob", a); got == a {
		t.Fatalf("bob took alice's reserved %s", a)
	}
}

func TestIPv6Large(t *testing.T) {
	p := mustPool(t, "fd00:1::/64")
	if p.Size() != maxSize {
		t.Fatalf("size %d", p.Size())
	}
	a, _ := p.Acquire("x")
	if a != netip.MustParseAddr("fd00:1::1") {
		t.Fatalf("first %s", a)
	}
	want := netip.MustParseAddr("fd00:1::1:0")
	if got, _ := p.AcquireRequested("y", want); got != want {
		t.Fatalf("requested %s got %s", want, got)
	}
	if !p.Contains(netip.MustParseAddr("fd00:1::ffff:ffff:ffff:ffff")) || p.Contains(netip.MustParseAddr("fd00:2::1")) {
		t.Fatal("Contains")
	}
	r := mustPool(t, "10.0.0.0/8")
	if r.Size() != 1<<24-2 {
		t.Fatalf("/8 size %d", r.Size())
	}
	// addrAt carries across bytes.
	if got := r.addrAt(255); got != netip.MustParseAddr("10.0.1.0") {
		t.Fatalf("addrAt(255) = %s", got)
	}
}

func TestStorePersistsAcrossRestartAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	s, err := NewStore(path)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "rw", Start: netip.MustParseAddr("10.3.0.1"), End: netip.MustParseAddr("10.3.0.254")}
	s.Apply([]Spec{spec})
	s.Get("rw").Acquire("a")
	b, _ := s.Get("rw").Acquire("b")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := NewStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s2.Apply([]Spec{spec})
	// c comes first this time, and still does not get b's address.
	c, _ := s2.Get("rw").Acquire("c")
	if c == b {
		t.Fatalf("c got b's address %s after a restart", b)
	}
	if got, _ := s2.Get("rw").Acquire("b"); got != b {
		t.Fatalf("b got %s after a restart, want %s", got, b)
	}
	// A reload that narrows the range keeps what fits.
	narrow := spec
	narrow.End = netip.MustParseAddr("10.3.0.2")
	s2.Apply([]Spec{narrow})
	if l := s2.Get("rw").Leases(); len(l) != 1 || l[0].ID != "b" {
		t.Fatalf("after narrowing: %+v", l)
	}
	if err := s2.Remove("rw"); err == nil {
		t.Fatal("removed a pool with an online lease")
	}
}

func TestStoreCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	s, err := NewStore(path)
	if err == nil {
		t.Fatal("corrupt lease file accepted")
	}
	s.Close()
}

func FuzzStoreLoad(f *testing.F) {
	f.Add([]byte(`{"version":1,"pools":{"rw":{"start":"10.3.0.1","end":"10.3.0.9","leases":[{"id":"a","addr":"10.3.0.2","released":"2026-01-01T00:00:00Z"}]}}}`))
	f.Add([]byte(`{"version":1,"pools":{"x":{"start":"fd00::1","end":"10.0.0.1","leases":[]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Store{pools: map[string]*Pool{}, dirty: make(chan struct{}, 1), done: make(chan struct{})}
		s.loadBytes(b)
		for _, p := range s.All() {
			if _, err := p.Acquire("fuzz"); err != nil && err != ErrExhausted {
				t.Fatal(err)
			}
			for _, l := range p.AllLeases() {
				if !p.Contains(l.Addr) {
					t.Fatalf("lease %s outside %s", l.Addr, p.Name)
				}
			}
		}
	})
}
func TestLeasesOnePerSession(t *testing.T) {
	p, err := FromPrefix("clients", netip.MustParsePrefix("10.3.0.0/29"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Size() != 6 {
		t.Fatalf("a /29 has 6 host addresses, pool has %d", p.Size())
	}
	a, _ := p.Acquire("alice")
	b, _ := p.Acquire("bob")
	if a.String() != "10.3.0.1" || b.String() != "10.3.0.2" {
		t.Fatalf("first leases %s %s", a, b)
	}
	// The unified pool gives a second device of one identity an address of its own; the same
	// client asking again for the address it holds (a re-authentication) keeps it.
	if again, _ := p.AcquireRequested("alice", a); again != a {
		t.Fatal("a held lease changed")
	}
	p.ReleaseAddr("alice", a) // the re-authenticated SA's old hold ends

	p.Release("alice")
	c, _ := p.Acquire("carol")
	if c == a {
		t.Fatal("a released address went to someone else while fresh ones were left")
	}
	if back, _ := p.Acquire("alice"); back != a {
		t.Fatalf("alice came back to %s, had %s", back, a)
	}
	for _, id := range []string{"d", "e", "f"} {
		if _, err := p.Acquire(id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if _, err := p.Acquire("g"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("seventh lease of six: %v", err)
	}
	p.Release("bob")
	if g, err := p.Acquire("g"); err != nil || g != b {
		t.Fatalf("after bob left, g got %s, %v", g, err)
	}
	if len(p.Leases()) != 6 || !p.Contains(b) || p.Contains(netip.MustParseAddr("10.3.0.7")) {
		t.Fatalf("leases %v", p.Leases())
	}
}

func TestConcurrentAcquire(t *testing.T) {
	p, _ := FromPrefix("c", netip.MustParsePrefix("10.4.0.0/24"), nil)
	var wg sync.WaitGroup
	got := make([]netip.Addr, 200)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = p.Acquire(string(rune('a'+i%26)) + string(rune(i)))
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for _, a := range got {
		if seen[a] || !a.IsValid() {
			t.Fatalf("address %s given twice or not at all", a)
		}
		seen[a] = true
	}
}

func TestInvalidRange(t *testing.T) {
	if _, err := New("x", netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.1"), nil); err == nil {
		t.Fatal("reversed range accepted")
	}
	if _, err := New("x", netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1"), nil); err == nil {
		t.Fatal("mixed families accepted")
	}
}

func TestReserve(t *testing.T) {
	p, _ := FromPrefix("r", netip.MustParsePrefix("10.7.0.0/30"), nil) // .1 and .2
	if err := p.Reserve("server", netip.MustParseAddr("10.7.0.2")); err != nil {
		t.Fatal(err)
	}
	a, _ := p.Acquire("client")
	if a.String() != "10.7.0.1" {
		t.Fatalf("client got %s", a)
	}
	if _, err := p.Acquire("another"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("the reserved address was handed out: %v", err)
	}
	if err := p.Reserve("x", netip.MustParseAddr("10.7.0.1")); !errors.Is(err, ErrTaken) {
		t.Fatalf("reserving a leased address: %v", err)
	}
}

// TestReserveIdempotentMovesAndTakesOver: reserving again holds once; reserving another address
// releases the first; an address only reserved offline for someone else is taken over.
func TestReserveIdempotentMovesAndTakesOver(t *testing.T) {
	p := mustPool(t, "10.8.0.0/29") // .1-.6
	six, five := netip.MustParseAddr("10.8.0.6"), netip.MustParseAddr("10.8.0.5")
	for range 2 {
		if err := p.Reserve("server", six); err != nil {
			t.Fatal(err)
		}
	}
	if !p.ReleaseAddr("server", six) || p.Held() != 0 {
		t.Fatalf("two Reserves made more than one hold: held %d", p.Held())
	}
	if err := p.Reserve("server", six); err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve("server", five); err != nil {
		t.Fatal(err)
	}
	if p.Held() != 1 || p.Offline() != 1 {
		t.Fatalf("after moving: held %d offline %d", p.Held(), p.Offline())
	}
	// .6 is offline for server; a client reserving it takes it over.
	if err := p.Reserve("client", six); err != nil {
		t.Fatal(err)
	}
	if a, _ := p.Acquire("server"); a == six || a == five {
		t.Fatalf("server got %s, held by itself or by client", a)
	}
	if err := p.Reserve("x", netip.MustParseAddr("10.9.0.1")); err != nil {
		t.Fatalf("an address outside the range: %v", err)
	}
}

// TestStoreSavesWithoutClobbering: two stores writing one file at once (two daemons left with
// the same state_dir) each save without error — each writes a temporary file of its own and
// renames it over the file — and the file is always one of them whole, never a mix; no temporary
// files are left behind.
func TestStoreSavesWithoutClobbering(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "leases.json")
	var stores [2]*Store
	for i := range stores {
		s, err := NewStore(path)
		if err != nil {
			t.Fatal(err)
		}
		s.Apply([]Spec{{Name: fmt.Sprintf("pool%d", i), Start: netip.MustParseAddr("10.3.0.1"), End: netip.MustParseAddr("10.3.0.254")}})
		stores[i] = s
	}
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for _, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if err := s.Save(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("save: %v", err)
	}
	loaded, err := NewStore(path)
	if err != nil {
		t.Fatalf("the file is not one whole save: %v", err)
	}
	defer loaded.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left in the state directory: %v", entries)
	}
	for _, s := range stores {
		s.Close()
	}
}
