package labvm

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// cpioFile is one entry of an initramfs.
type cpioFile struct {
	name string
	mode uint32 // full st_mode: type and permissions
	data []byte
}

const (
	cpioDir = 0o040000
	cpioReg = 0o100000
)

// writeCPIO writes files as a "newc" cpio archive, the format the kernel unpacks into its initial
// root (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header per
// entry ("070701", then thirteen 8-digit hex fields), the NUL-terminated name padded to 4 bytes,
// the data padded to 4 bytes, and a final entry named "TRAILER!!!".
func writeCPIO(w io.Writer, files []cpioFile) error {
	ino := uint32(1)
	pad := func(n int) []byte { return make([]byte, (4-n%4)%4) }
	entry := func(f cpioFile) error {
		nlink := uint32(1)
		if f.mode&cpioDir != 0 {
			nlink = 2
		}
		hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			ino, f.mode, 0, 0, nlink, 0, len(f.data), 0, 0, 0, 0, len(f.name)+1, 0)
		ino++
		if _, err := io.WriteString(w, hdr+f.name+"\x00"); err != nil {
			return err
		}
		if _, err := w.Write(pad(len(hdr) + len(f.name) + 1)); err != nil {
			return err
		}
		if _, err := w.Write(f.data); err != nil {
			return err
		}
		_, err := w.Write(pad(len(f.data)))
		return err
	}
	for _, f := range files {
		if err := entry(f); err != nil {
			return err
		}
	}
	return entry(cpioFile{name: "TRAILER!!!"})
}

// writeInitramfs writes the lab's initramfs to path: init (the labinit binary) and the modules
// directory of img.
func writeInitramfs(path, initBinary string, img *Image) error {
	init, err := os.ReadFile(initBinary)
	if err != nil {
		return err
	}
	files := []cpioFile{
		{name: "dev", mode: cpioDir | 0o755},
		{name: "init", mode: cpioReg | 0o755, data: init},
		{name: "modules", mode: cpioDir | 0o755},
	}
	names, err := os.ReadDir(img.Modules)
	if err != nil {
		return err
	}
	sort.Slice(names, func(i, j int) bool { return names[i].Name() < names[j].Name() })
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(img.Modules, n.Name()))
		if err != nil {
			return err
		}
		files = append(files, cpioFile{name: "modules/" + n.Name(), mode: cpioReg | 0o644, data: b})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeCPIO(f, files); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
