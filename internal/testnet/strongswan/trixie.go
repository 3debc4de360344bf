package strongswan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
)

// strongSwan 6 as a peer. Debian 12 ships strongSwan 5.9.8, which knows neither IKE_INTERMEDIATE
// (RFC 9242) nor multiple key exchanges (RFC 9370); Debian 13 ("trixie") ships 6.0.1, which does
// both with classical methods as additional key exchanges (its openssl plugin has no ML-KEM). So
// the tests that need it run charon 6.0.1 from a Debian 13 root file system, built once with
// mmdebstrap (about a minute, ~200 MB) and cached outside the repository.

// TrixieCacheEnv moves the cache of the Debian 13 root (default DefaultTrixieCache).
const TrixieCacheEnv = "GOIPSEC_STRONGSWAN6_CACHE"

// DefaultTrixieCache is where the Debian 13 root is kept between test runs.
const DefaultTrixieCache = "/var/cache/goipsec-strongswan6"

// trixiePackages are installed into the root: charon, swanctl, kernel-libipsec
// (libcharon-extra-plugins), openssl, curve25519 and chapoly (the two plugin packages), and the
// tools the tests call inside it.
var trixiePackages = []string{"strongswan-charon", "strongswan-swanctl", "libcharon-extra-plugins",
	"libstrongswan-extra-plugins", "libstrongswan-standard-plugins", "iproute2", "iputils-ping"}

// trixieRecipe names the build; a change of the package list or of how the root is made yields a
// new cache entry instead of reusing a stale one.
func trixieRecipe() string {
	h := sha256.Sum256([]byte("v1 mmdebstrap --variant=apt trixie " + strings.Join(trixiePackages, ",")))
	return "trixie-" + hex.EncodeToString(h[:6])
}

// trixieBuildTimeout bounds the mmdebstrap run (downloads included).
const trixieBuildTimeout = 15 * time.Minute

// Trixie returns the Debian 13 root with strongSwan 6.0.1, building it first when the cache has
// none. Concurrent callers (parallel tests, several test binaries) wait for one build under a
// file lock. It fails t when mmdebstrap is missing or the build fails (skips under -short unless
// integration tests are required, like testnet.Require).
func Trixie(t testing.TB) string {
	t.Helper()
	testnet.Require(t, "mmdebstrap", "chroot")
	cache := os.Getenv(TrixieCacheEnv)
	if cache == "" {
		cache = DefaultTrixieCache
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatalf("strongswan: %v", err)
	}
	root := filepath.Join(cache, trixieRecipe())
	if ready(root) {
		return root
	}
	lock, err := os.OpenFile(filepath.Join(cache, "build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("strongswan: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("strongswan: lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if ready(root) {
		return root
	}
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	t.Logf("strongswan: building a Debian 13 root with strongSwan 6 in %s (once; about a minute)", root)
	start := time.Now()
	cmd := exec.Command("timeout", fmt.Sprint(int(trixieBuildTimeout.Seconds())), "mmdebstrap", "--variant=apt",
		"--include="+strings.Join(trixiePackages, ","), "trixie", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		t.Fatalf("strongswan: mmdebstrap trixie: %v\n%s", err, testnet.Tail(string(out), 40))
	}
	if _, err := os.Stat(filepath.Join(tmp, strings.TrimPrefix(CharonPath, "/"))); err != nil {
		os.RemoveAll(tmp)
		t.Fatalf("strongswan: the Debian 13 root has no charon: %v", err)
	}
	if err := os.Rename(tmp, root); err != nil {
		t.Fatalf("strongswan: %v", err)
	}
	// Older builds of other recipes are no longer used.
	old, _ := filepath.Glob(filepath.Join(cache, "trixie-*"))
	for _, o := range old {
		if o != root && !strings.HasSuffix(o, ".tmp") {
			os.RemoveAll(o)
		}
	}
	t.Logf("strongswan: Debian 13 root built in %s", time.Since(start).Round(time.Second))
	return root
}

// ready reports whether a root was completely built (it is renamed into place only then).
func ready(root string) bool {
	_, err := os.Stat(filepath.Join(root, strings.TrimPrefix(CharonPath, "/")))
	return err == nil
}

// inner turns a host path below the instance's root into the path charon sees.
func (c *Charon) inner(p string) string {
	if c.root == "" {
		return p
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(p, c.root), "/")
}
