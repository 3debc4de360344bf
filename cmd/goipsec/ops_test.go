package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "goipsec "+version+"\n") {
		t.Fatalf("--version printed %q", out.String())
	}
}

const checkConf = `connections {
    site {
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2, peer.invalid
        local { auth = psk
                id = gw1 }
        remote { auth = psk
                 id = gw2 }
        children {
            net {
                local_ts = 10.1.0.0/24
                remote_ts = 10.2.0.0/24
                start_action = start
            }
        }
    }
}
secrets {
    ike-x { id = someone-else
            secret = "0123456789abcdef" }
}
daemon {
    log { keylog_file = /nonexistent/dir/keys.log }
}
`

// TestCheck: check reports every problem with file:line and a level, and counts them.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "goipsec.conf")
	writeFile(t, path, checkConf)
	env := checkEnv{
		localAddrs: func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil },
		resolve: func(_ context.Context, _, host string) ([]netip.Addr, error) {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		},
	}
	var out bytes.Buffer
	n := checkConfig(context.Background(), &out, path, env)
	for _, want := range []string{
		path + ":2: error: connections.site: no ike secret names gw1 or gw2",
		path + ":2: warning: connections.site starts itself but has no dpd_delay",
		path + ":2: warning: connections.site.local_addrs: 192.0.2.1 is not an address of this host",
		path + ":2: warning: connections.site.remote_addrs: peer.invalid does not resolve",
		path + ": error: daemon.log.keylog_file: the directory of /nonexistent/dir/keys.log does not exist",
		path + ": test failed: 2 errors, 3 warnings",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
	if n != 2 {
		t.Errorf("check counted %d errors", n)
	}
	// Syntax errors: all of them, each with its line, and no semantic checks on a broken file.
	writeFile(t, path, "connections {\n  a : base {\n  }\n  b {\n    bogus = 1\n  }\n}\n")
	out.Reset()
	if n := checkConfig(context.Background(), &out, path, checkEnv{}); n < 2 || !strings.Contains(out.String(), path+":2: error: section references") ||
		!strings.Contains(out.String(), path+":5: error: unknown key \"bogus\"") {
		t.Errorf("syntax errors (%d):\n%s", n, out.String())
	}
	// A good file passes.
	writeFile(t, path, strings.Replace(strings.Replace(checkConf, "id = someone-else", "id = gw2", 1), "/nonexistent/dir", dir, 1))
	out.Reset()
	if n := checkConfig(context.Background(), &out, path, checkEnv{}); n != 0 || !strings.Contains(out.String(), "test is successful") {
		t.Errorf("good file (%d errors):\n%s", n, out.String())
	}
}

// TestCheckExitCode runs the binary: exit 1 on errors, 0 otherwise, as nginx -t.
func TestCheckExitCode(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: builds the binary")
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	writeFile(t, bad, "connections {\n  x {\n    frobnicate = 1\n  }\n")
	out, err := exec.Command(goipsecBinary(t), "check", "--offline", "-c", bad).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), bad+":") || strings.Contains(string(out), "goipsec: configuration check failed") {
		t.Fatalf("check of a bad file: %v\n%s", err, out)
	}
	good := filepath.Join(dir, "good.conf")
	writeFile(t, good, "daemon {\n  mtu = 1400\n}\n")
	if out, err := exec.Command(goipsecBinary(t), "check", "--offline", "-c", good).CombinedOutput(); err != nil {
		t.Fatalf("check of a good file: %v\n%s", err, out)
	}
}

// TestManPagesAreCurrent: docs/man holds exactly what `goipsec man` generates from the code (CI
// runs this test); GOIPSEC_UPDATE_DOCS=1 rewrites the pages, as `make man` does.
func TestManPagesAreCurrent(t *testing.T) {
	for _, p := range manPages(newRootCommand()) {
		path := filepath.Join("..", "..", "docs", "man", p.Name)
		if os.Getenv("GOIPSEC_UPDATE_DOCS") != "" {
			if err := os.WriteFile(path, []byte(p.Content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		have, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(have) != p.Content {
			t.Errorf("%s is out of date with the code: run `make man` (or GOIPSEC_UPDATE_DOCS=1 go test ./cmd/goipsec -run TestManPagesAreCurrent)", path)
		}
	}
}

// TestManPagesRender: man(1) formats both pages without warnings, and they mention every command
// and a few keys.
func TestManPagesRender(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		if os.Getenv("GOIPSEC_INTEGRATION") == "require" {
			t.Fatal("man is missing: scripts/deps.sh installs man-db")
		}
		t.Skip("man is not installed")
	}
	dir := t.TempDir()
	for _, p := range manPages(newRootCommand()) {
		path := filepath.Join(dir, p.Name)
		writeFile(t, path, p.Content)
		cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", path)
		cmd.Env = append(os.Environ(), "MANWIDTH=100", "MAN_KEEP_FORMATTING=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Fatalf("man %s: %v\n%s", p.Name, err, stderr.String())
		}
		// Bold and underline come as overstrikes (c BACKSPACE c): keep the last character.
		text := regexp.MustCompile(".\b").ReplaceAllString(string(out), "")
		var wants []string
		if p.Name == "goipsec.8" {
			wants = []string{"status", "doctor", "check", "--socket", "GOIPSEC_SOCKET", "EXIT STATUS"}
		} else {
			wants = []string{"connections.<conn>.remote_addrs", "daemon.vici_socket", "not supported"}
		}
		for _, w := range wants {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", p.Name, w, text)
			}
		}
	}
}

// TestStaticBinary: `go install ./cmd/goipsec` gives a static binary whether cgo is on (the
// default where a C compiler is installed: static_cgo.go asks the linker for it) or off, and only
// the standard library's net package would use cgo otherwise.
func TestStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: builds the binary")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .CgoFiles}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != "net" && pkg != "runtime/cgo" && pkg != "os/user" && pkg != "github.com/goipsec/goipsec/cmd/goipsec" {
			t.Errorf("%s uses cgo: goipsec must build without it", pkg)
		}
	}
	for _, cgo := range []string{"0", "1"} {
		bin := filepath.Join(t.TempDir(), "goipsec")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("CGO_ENABLED=%s go build: %v\n%s", cgo, err, out)
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("CGO_ENABLED=%s: the binary has an ELF interpreter: it is dynamically linked", cgo)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("CGO_ENABLED=%s: the binary needs shared libraries %v", cgo, libs)
		}
		f.Close()
		v, err := exec.Command(bin, "version").Output()
		if err != nil || !strings.Contains(string(v), "CGO_ENABLED: "+cgo) {
			t.Fatalf("goipsec version does not report CGO_ENABLED=%s: %v\n%s", cgo, err, v)
		}
	}
}

// TestSocketFree: run refuses a control socket another server answers on, with advice, and takes
// over a stale one.
func TestSocketFree(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "vici.sock")
	if err := socketFree(path); err != nil {
		t.Fatalf("absent socket: %v", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	err = socketFree(path)
	if err == nil || !strings.Contains(err.Error(), "another daemon already serves the control socket "+path) || !strings.Contains(err.Error(), "--socket") {
		t.Fatalf("live socket: %v", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if err := socketFree(path); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
}
