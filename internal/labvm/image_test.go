package labvm

import (
	"bytes"
	"strings"
	"testing"
)

const modulesDep = `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/crypto/crc32c_generic.ko:
`

// Every module comes after its dependencies, each once, whatever order modules.dep lists them in.
func TestLoadOrder(t *testing.T) {
	deps, byName, err := parseModulesDep(modulesDep)
	if err != nil {
		t.Fatal(err)
	}
	order, err := loadOrder([]string{"virtio_blk", "ext4", "crc32c-generic"}, deps, byName)
	if err != nil {
		t.Fatal(err)
	}
	want := "kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/block/virtio_blk.ko " +
		"kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/fs/ext4/ext4.ko kernel/crypto/crc32c_generic.ko"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("order\n%s\nwant\n%s", got, want)
	}
	if _, err := loadOrder([]string{"nosuch"}, deps, byName); err == nil {
		t.Fatal("an unknown module was ordered")
	}
	if _, _, err := parseModulesDep("kernel/x.ko.xz:\n"); err == nil || !strings.Contains(err.Error(), "uncompressed") {
		t.Fatalf("compressed module: %v", err)
	}
}

// The newc format, byte for byte (buffer-format.rst): header, name with NUL, padding to 4, data,
// padding to 4, trailer.
func TestWriteCPIO(t *testing.T) {
	var b bytes.Buffer
	if err := writeCPIO(&b, []cpioFile{{name: "init", mode: cpioReg | 0o755, data: []byte("hello")}}); err != nil {
		t.Fatal(err)
	}
	want := "070701" + "00000001" + "000081ed" + "00000000" + "00000000" + "00000001" + "00000000" + "00000005" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000005" + "00000000" + "init\x00" + "\x00" + // 110+5 = 115, pad to 116
		"hello" + "\x00\x00\x00" +
		"070701" + "00000002" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000000" + "0000000b" + "00000000" + "TRAILER!!!\x00" + "\x00\x00\x00"
	if b.String() != want {
		t.Fatalf("archive\n%q\nwant\n%q", b.String(), want)
	}
	if b.Len()%4 != 0 {
		t.Fatalf("archive of %d bytes, not a multiple of 4", b.Len())
	}
}

func TestRecipeHash(t *testing.T) {
	a, b := StrongSwan(), StrongSwan()
	if a.Hash() != b.Hash() {
		t.Fatal("the same recipe hashes differently")
	}
	b.Packages = append(b.Packages, "curl")
	if a.Hash() == b.Hash() {
		t.Fatal("a changed package list keeps the hash (a stale image would be used)")
	}
	if StrongSwan().Hash() == Libreswan().Hash() {
		t.Fatal("two recipes share a hash")
	}
}

// FuzzParseModulesDep: modules.dep is read from the image tree; no input may panic the parser or
// the ordering.
func FuzzParseModulesDep(f *testing.F) {
	f.Add(modulesDep)
	f.Add("a.ko: a.ko\n")
	f.Add(":\n")
	f.Fuzz(func(t *testing.T, s string) {
		deps, byName, err := parseModulesDep(s)
		if err != nil {
			return
		}
		var names []string
		for n := range byName {
			names = append(names, n)
		}
		loadOrder(names, deps, byName)
	})
}
