package pool

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Store is the daemon's set of pools by name. It keeps leases across a reload (a pool whose range
// is unchanged keeps its object; a changed one takes over the leases that still fit) and, with a
// file, across a restart: every change is written (coalesced, in the background — a lease taken
// while an IKE SA is processed never waits for the disk) to a JSON file that New reads back.
type Store struct {
	path string

	mu    sync.Mutex
	pools map[string]*Pool

	// The writer: dirty wakes it; at most one write every saveEvery.
	dirty chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
	// saveErr is the last write's error (for logs and tests).
	saveMu  sync.Mutex
	saveErr error
}

// saveEvery coalesces writes: a burst of 1,000 clients connecting costs a few writes.
const saveEvery = 200 * time.Millisecond

// Spec describes a pool to Apply.
type Spec struct {
	Name       string
	Start, End netip.Addr
	DNS        []netip.Addr
}

// NewStore returns a store that persists to path (empty: memory only) and loads the leases saved
// there. A missing file is not an error; a corrupt one is reported and ignored.
func NewStore(path string) (*Store, error) {
	s := &Store{path: path, pools: map[string]*Pool{}, dirty: make(chan struct{}, 1), done: make(chan struct{})}
	var err error
	if path != "" {
		err = s.load()
		s.wg.Add(1)
		go s.writer()
	}
	return s, err
}

// saved is the file format: pools by name, each with its range and leases.
type saved struct {
	Version int                  `json:"version"`
	Pools   map[string]savedPool `json:"pools"`
}

type savedPool struct {
	Start  netip.Addr   `json:"start"`
	End    netip.Addr   `json:"end"`
	Leases []savedLease `json:"leases"`
}

type savedLease struct {
	ID       string     `json:"id"`
	Addr     netip.Addr `json:"addr"`
	Released time.Time  `json:"released,omitzero"`
}

// pending holds leases read from the file until Apply creates their pools.
var errCorrupt = errors.New("pool: lease file is corrupt")

func (s *Store) load() error {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.loadBytes(b)
}

// loadBytes restores the pools and leases of a lease file's content.
func (s *Store) loadBytes(b []byte) error {
	var f saved
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		return fmt.Errorf("%w (%s): %v", errCorrupt, s.path, err)
	}
	for name, sp := range f.Pools {
		p, err := New(name, sp.Start, sp.End, nil)
		if err != nil {
			continue
		}
		for _, l := range sp.Leases {
			// Leases held when the daemon stopped are offline now: their clients reconnect and
			// get them back (the same identity comes first).
			rel := l.Released
			if rel.IsZero() {
				rel = time.Now()
			}
			p.Restore(l.ID, l.Addr, rel)
		}
		s.pools[name] = p
		p.OnChange(s.markDirty)
	}
	return nil
}

// Apply makes the store's pools those of specs. Pools that keep name and range keep their leases
// (and DNS is updated); a pool whose range changed keeps the leases that still fit; removed pools
// are dropped with their leases.
func (s *Store) Apply(specs []Spec) error {
	s.mu.Lock()
	next := map[string]*Pool{}
	var errs []error
	for _, sp := range specs {
		old := s.pools[sp.Name]
		if old != nil {
			if a, b := old.Range(); a == sp.Start.Unmap() && b == sp.End.Unmap() {
				old.mu.Lock()
				old.DNS = sp.DNS
				old.mu.Unlock()
				next[sp.Name] = old
				continue
			}
		}
		p, err := New(sp.Name, sp.Start, sp.End, sp.DNS)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if old != nil {
			for _, l := range old.AllLeases() {
				if p.Restore(l.ID, l.Addr, l.Released) && l.Online {
					off, _ := p.offsetOf(l.Addr)
					p.mu.Lock()
					for range l.Holds {
						p.holdLocked(off, p.leases[off])
					}
					p.mu.Unlock()
				}
			}
		}
		p.OnChange(s.markDirty)
		next[sp.Name] = p
	}
	s.pools = next
	s.mu.Unlock()
	s.markDirty()
	return errors.Join(errs...)
}

// Add adds (or replaces) one pool, as VICI load-pool does, keeping fitting leases.
func (s *Store) Add(sp Spec) error {
	s.mu.Lock()
	specs := make([]Spec, 0, len(s.pools)+1)
	for name, p := range s.pools {
		if name == sp.Name {
			continue
		}
		a, b := p.Range()
		specs = append(specs, Spec{Name: name, Start: a, End: b, DNS: p.DNS})
	}
	s.mu.Unlock()
	return s.Apply(append(specs, sp))
}

// Remove drops a pool (VICI unload-pool). A pool with held leases is refused.
func (s *Store) Remove(name string) error {
	s.mu.Lock()
	p := s.pools[name]
	if p == nil {
		s.mu.Unlock()
		return fmt.Errorf("no pool named %q", name)
	}
	if n := p.Held(); n > 0 {
		s.mu.Unlock()
		return fmt.Errorf("pool %s has %d online leases", name, n)
	}
	delete(s.pools, name)
	s.mu.Unlock()
	s.markDirty()
	return nil
}

// Get returns a pool by name (nil when there is none).
func (s *Store) Get(name string) *Pool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pools[name]
}

// All returns the pools sorted by name.
func (s *Store) All() []*Pool {
	s.mu.Lock()
	out := make([]*Pool, 0, len(s.pools))
	for _, p := range s.pools {
		out = append(out, p)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Store) markDirty() {
	if s.path == "" {
		return
	}
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

func (s *Store) writer() {
	defer s.wg.Done()
	for {
		select {
		case <-s.dirty:
		case <-s.done:
			s.setErr(s.Save())
			return
		}
		s.setErr(s.Save())
		select {
		case <-time.After(saveEvery):
		case <-s.done:
			s.setErr(s.Save())
			return
		}
	}
}

func (s *Store) setErr(err error) {
	s.saveMu.Lock()
	s.saveErr = err
	s.saveMu.Unlock()
}

// SaveError returns the error of the last background write (nil: it worked).
func (s *Store) SaveError() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	return s.saveErr
}

// Save writes the leases now (atomically: a temporary file renamed over the old one).
func (s *Store) Save() error {
	if s.path == "" {
		return nil
	}
	f := saved{Version: 1, Pools: map[string]savedPool{}}
	for _, p := range s.All() {
		a, b := p.Range()
		sp := savedPool{Start: a, End: b, Leases: []savedLease{}}
		for _, l := range p.AllLeases() {
			sl := savedLease{ID: l.ID, Addr: l.Addr}
			if !l.Online {
				sl.Released = l.Released
			}
			sp.Leases = append(sp.Leases, sl)
		}
		f.Pools[p.Name] = sp
	}
	b, err := json.MarshalIndent(&f, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	// A temporary file of its own, renamed over the old one: a reader never sees half a file,
	// and two writers of one directory (two daemons left with the same state_dir) no longer
	// rename each other's temporary file away.
	tf, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := tf.Name()
	if _, err := tf.Write(b); err != nil {
		tf.Close()
		os.Remove(tmp)
		return err
	}
	if err := tf.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Close writes the leases a last time and stops the writer.
func (s *Store) Close() error {
	if s.path == "" {
		return nil
	}
	select {
	case <-s.done:
		return s.SaveError()
	default:
	}
	close(s.done)
	s.wg.Wait()
	return s.SaveError()
}
