package labvm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultCacheDir holds built images, outside the repository; CacheEnv overrides it.
const DefaultCacheDir = "/var/cache/goipsec-lab"

// CacheEnv names the environment variable that moves the image cache.
const CacheEnv = "GOIPSEC_LAB_CACHE"

// Recipe describes one root file system: Debian 12 with Packages, plus Debian's own 6.1 kernel (the
// current linux-image-amd64 ABI, unsigned build) whose modules live in the tree. A recipe's hash
// names its cache entry, so editing a recipe builds a new image and never reuses a stale one.
type Recipe struct {
	Name     string
	Packages []string
	// Setup runs in the finished tree (chroot, /bin/sh -e) before the image is made.
	Setup string
}

// Packages every image has: what the harness itself and most tests use.
var basePackages = []string{"kmod", "iproute2", "iputils-ping", "procps", "iperf3", "tcpdump", "nftables", "xl2tpd", "ppp", "netcat-openbsd", "mount"}

// StrongSwan is Debian 12's strongSwan 5.9.8 with the kernel-netlink backend (part of charon).
func StrongSwan() Recipe {
	return Recipe{Name: "strongswan", Packages: append(append([]string(nil), basePackages...),
		"strongswan-charon", "strongswan-swanctl", "libcharon-extra-plugins",
		"libstrongswan-standard-plugins", "libstrongswan-extra-plugins")}
}

// Libreswan is Debian 12's Libreswan 4.10 (its package conflicts with strongSwan's: its own image).
// The NSS database it needs is created at build time.
func Libreswan() Recipe {
	return Recipe{Name: "libreswan", Packages: append(append([]string(nil), basePackages...), "libreswan"),
		Setup: "mkdir -p /var/lib/ipsec/nss && ipsec initnss --nssdir /var/lib/ipsec/nss >/dev/null"}
}

// recipeFormat changes whenever the way images are built changes, so that old cache entries are
// not used by a harness that expects something else of them.
const recipeFormat = "labvm-image-3"

// customizeScript runs on the host after mmdebstrap installed the packages, with the tree as $1.
// Debian's kernel package is unpacked rather than installed: installing it would run
// initramfs-tools for an initramfs the lab does not use. It is unpacked beside the tree and copied
// in, because unpacking its ./lib over the tree would replace bookworm's /lib -> usr/lib symlink. Module trees the lab never loads are
// removed to keep the image small.
const customizeScript = `set -eu
root=$1
chroot "$root" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -ec '
K=$(apt-cache depends linux-image-amd64 | sed -n "s/.*Depends: \(linux-image-[0-9][^ ]*-amd64\)\$/\1/p" | head -n1)
test -n "$K"
cd /tmp
apt-get download -q "${K}-unsigned" >/dev/null 2>&1
mkdir /tmp/k
dpkg-deb -x ${K}-unsigned_*.deb /tmp/k
cp -a /tmp/k/lib/modules /usr/lib/
cp -a /tmp/k/boot/. /boot/
rm -rf /tmp/k /tmp/*.deb
V=${K#linux-image-}
cd /lib/modules/$V/kernel
rm -rf sound drivers/gpu drivers/media drivers/infiniband drivers/net/wireless drivers/net/ethernet \
  drivers/scsi drivers/staging drivers/usb drivers/input drivers/hid drivers/bluetooth drivers/iio \
  drivers/mtd drivers/isdn drivers/nfc drivers/platform drivers/hwmon drivers/misc drivers/ata \
  drivers/md drivers/target drivers/watchdog drivers/thunderbolt drivers/pinctrl drivers/mfd \
  net/wireless net/mac80211 net/bluetooth net/nfc fs/nfs fs/nfsd fs/ocfs2 fs/btrfs fs/xfs fs/smb fs/ceph
depmod "$V"
echo "$V" > /etc/labvm-kernel
'
rm -f "$root"/boot/System.map-*
`

// Hash identifies the recipe's image: its packages, setup, the build steps and the format.
func (r Recipe) Hash() string {
	pk := append([]string(nil), r.Packages...)
	sort.Strings(pk)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s", recipeFormat, r.Name, strings.Join(pk, ","), r.Setup, customizeScript)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Image is a built recipe in the cache.
type Image struct {
	Recipe  Recipe
	Dir     string
	Kernel  string // vmlinuz
	Root    string // ext4 image of the tree (mounted read-only by the guest)
	Modules string // directory of the modules the initramfs needs, with their load order
	Version string // kernel release, e.g. 6.1.0-57-amd64
}

// initramfsModules are loaded by labinit before the root is mounted (the rest load from the root).
var initramfsModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio_rng",
	"crc32c_generic", "ext4", "overlay", "9p", "9pnet_virtio"}

// CacheDir is where images are kept: $GOIPSEC_LAB_CACHE or DefaultCacheDir.
func CacheDir() string {
	if d := os.Getenv(CacheEnv); d != "" {
		return d
	}
	return DefaultCacheDir
}

// Build returns the recipe's image from the cache, building it first when it is not there.
// Concurrent callers (test binaries of several packages) wait for one build through a lock file.
// Progress and tool output go to log.
func Build(ctx context.Context, r Recipe, log io.Writer) (*Image, error) {
	cache := CacheDir()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, r.Name+"-"+r.Hash())
	lock, err := os.OpenFile(filepath.Join(cache, r.Name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if img, err := loadImage(r, dir); err == nil {
		return img, nil
	}
	start := time.Now()
	fmt.Fprintf(log, "labvm: building image %s (%s) in %s\n", r.Name, r.Hash(), dir)
	if err := build(ctx, r, dir, log); err != nil {
		return nil, fmt.Errorf("labvm: build image %s: %w", r.Name, err)
	}
	fmt.Fprintf(log, "labvm: image %s built in %v\n", r.Name, time.Since(start).Round(time.Second))
	removeStale(cache, r)
	return loadImage(r, dir)
}

func loadImage(r Recipe, dir string) (*Image, error) {
	v, err := os.ReadFile(filepath.Join(dir, "ok"))
	if err != nil {
		return nil, err
	}
	img := &Image{Recipe: r, Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Root: filepath.Join(dir, "root.img"),
		Modules: filepath.Join(dir, "modules"), Version: strings.TrimSpace(string(v))}
	for _, p := range []string{img.Kernel, img.Root, filepath.Join(img.Modules, "order")} {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// removeStale deletes older builds of the same recipe name (a changed recipe leaves its
// predecessor behind otherwise).
func removeStale(cache string, r Recipe) {
	old, _ := filepath.Glob(filepath.Join(cache, r.Name+"-*"))
	for _, d := range old {
		if filepath.Base(d) != r.Name+"-"+r.Hash() && !strings.HasSuffix(d, ".lock") {
			os.RemoveAll(d)
		}
	}
}

func build(ctx context.Context, r Recipe, dir string, log io.Writer) error {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	hook := filepath.Join(tmp, "customize.sh")
	if err := os.WriteFile(hook, []byte(customizeScript), 0o644); err != nil {
		return err
	}
	tree := filepath.Join(tmp, "tree")
	args := []string{"--variant=apt", "--quiet",
		"--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
		"--include=" + strings.Join(r.Packages, ","),
		"--customize-hook=sh " + hook + ` "$1"`,
	}
	if r.Setup != "" {
		setup := filepath.Join(tmp, "setup.sh")
		if err := os.WriteFile(setup, []byte("set -e\n"+r.Setup+"\n"), 0o644); err != nil {
			return err
		}
		args = append(args, "--customize-hook=cp "+setup+` "$1/tmp/labvm-setup.sh" && chroot "$1" /bin/sh -e /tmp/labvm-setup.sh && rm "$1/tmp/labvm-setup.sh"`)
	}
	args = append(args, "bookworm", tree)
	if err := runLogged(ctx, log, "mmdebstrap", args...); err != nil {
		return err
	}
	ver, err := os.ReadFile(filepath.Join(tree, "etc/labvm-kernel"))
	if err != nil {
		return err
	}
	version := strings.TrimSpace(string(ver))
	if err := copyFile(filepath.Join(tree, "boot", "vmlinuz-"+version), filepath.Join(tmp, "vmlinuz")); err != nil {
		return err
	}
	if err := collectModules(filepath.Join(tree, "lib/modules", version), filepath.Join(tmp, "modules"), initramfsModules); err != nil {
		return err
	}
	// The image holds the tree and some room (the guest mounts it read-only under an overlay).
	size, err := treeSize(tree)
	if err != nil {
		return err
	}
	img := filepath.Join(tmp, "root.img")
	mb := size*5/4/(1<<20) + 64
	if err := runLogged(ctx, log, "mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "labroot", "-E", "root_owner=0:0",
		"-d", tree, img, strconv.FormatInt(mb, 10)+"M"); err != nil {
		return err
	}
	if err := os.RemoveAll(tree); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "ok"), []byte(version+"\n"), 0o644); err != nil {
		return err
	}
	os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

func runLogged(ctx context.Context, log io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func treeSize(root string) (int64, error) {
	var total int64
	err := filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		total += fi.Size() + 4096
		return nil
	})
	return total, err
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// collectModules copies want and their dependencies (from modules.dep) from the module tree
// moddir to out, and writes out/order: one file name a line, every module after its dependencies.
func collectModules(moddir, out string, want []string) error {
	dep, err := os.ReadFile(filepath.Join(moddir, "modules.dep"))
	if err != nil {
		return err
	}
	deps, byName, err := parseModulesDep(string(dep))
	if err != nil {
		return err
	}
	order, err := loadOrder(want, deps, byName)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var names []string
	for _, rel := range order {
		name := filepath.Base(rel)
		if err := copyFile(filepath.Join(moddir, rel), filepath.Join(out, name)); err != nil {
			return err
		}
		names = append(names, name)
	}
	return os.WriteFile(filepath.Join(out, "order"), []byte(strings.Join(names, "\n")+"\n"), 0o644)
}

// moduleName is the name modprobe uses for a module file: base name without .ko, '-' as '_'.
func moduleName(path string) string {
	base := filepath.Base(path)
	base = strings.TrimSuffix(base, ".ko")
	return strings.ReplaceAll(base, "-", "_")
}

// parseModulesDep reads depmod's modules.dep: "path.ko: dep.ko dep2.ko" a line.
func parseModulesDep(text string) (deps map[string][]string, byName map[string]string, err error) {
	deps, byName = map[string][]string{}, map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, nil, fmt.Errorf("modules.dep:%d: no colon", i+1)
		}
		if !strings.HasSuffix(mod, ".ko") {
			return nil, nil, fmt.Errorf("modules.dep:%d: %s is not an uncompressed module (labinit loads .ko files only)", i+1, mod)
		}
		deps[mod] = strings.Fields(rest)
		byName[moduleName(mod)] = mod
	}
	return deps, byName, nil
}

// loadOrder lists the module files for want, dependencies first, each once.
func loadOrder(want []string, deps map[string][]string, byName map[string]string) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	var visit func(path string)
	visit = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		// modules.dep lists every (transitive) dependency; visiting them depth-first puts
		// each before its users.
		for _, d := range deps[path] {
			visit(d)
		}
		order = append(order, path)
	}
	for _, w := range want {
		p, ok := byName[strings.ReplaceAll(w, "-", "_")]
		if !ok {
			return nil, errors.New("module " + w + " not in modules.dep")
		}
		visit(p)
	}
	return order, nil
}
