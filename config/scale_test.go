package config

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// manyConnections writes a configuration with n site-to-site connections and a secret for each.
func manyConnections(n int) []byte {
	var b strings.Builder
	b.WriteString("connections {\n")
	for i := range n {
		fmt.Fprintf(&b, "  c%d {\n    remote_addrs = 10.%d.%d.1\n    local { auth = psk }\n    remote { auth = psk\n      id = c%d.example.org }\n"+
			"    children { net { local_ts = 10.255.0.0/16\n        remote_ts = 172.16.%d.%d/32 } }\n  }\n", i, i>>8&255, i&255, i, i>>8&255, i&255)
	}
	b.WriteString("}\nsecrets {\n")
	for i := range n {
		fmt.Fprintf(&b, "  ike-c%d { id = c%d.example.org\n    secret = secret%d }\n", i, i, i)
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// TestSectionsAreIndexed: sections and keys opened again are found through the parser's indexes,
// which is what keeps parsing linear in the number of connections.
func TestSectionsAreIndexed(t *testing.T) {
	tree, err := (&Parser{FS: fstest.MapFS{"a.conf": {Data: []byte("connections {\n a { version = 2 }\n b { }\n a { version = 0 }\n}\n")}}}).ParseFile("a.conf")
	if err != nil {
		t.Fatal(err)
	}
	conns := tree.Root.Section("connections")
	if conns.sectionIdx == nil || len(conns.Sections) != 2 || conns.Section("a") != conns.Sections[0] {
		t.Fatalf("sections %v, index %v", conns.Sections, conns.sectionIdx)
	}
	a := conns.Section("a")
	if a.settingIdx == nil || len(a.Settings) != 1 || a.Setting("version").Value != "0" || a.Setting("version").Line != 4 {
		t.Fatalf("settings of a: %+v", a.Settings)
	}
}

// TestLoadStopsWhenCancelled: a cancelled reload stops reading and says why.
func TestLoadStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Parser{Context: ctx, FS: fstest.MapFS{"big.conf": {Data: manyConnections(10000)}}}).Load("big.conf")
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "reading stopped") {
		t.Fatalf("err = %v", err)
	}
}

// BenchmarkLoadConnections loads configurations of growing size: the time per connection stays
// flat (docs/performance.md).
func BenchmarkLoadConnections(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		data := manyConnections(n)
		b.Run(fmt.Sprintf("%d", n), func(b *testing.B) {
			fsys := fstest.MapFS{"big.conf": {Data: data}}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				cfg, err := (&Parser{FS: fsys}).Load("big.conf")
				if err != nil || len(cfg.Connections) != n {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/connection")
		})
	}
}
