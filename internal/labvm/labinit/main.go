// Command labinit is the lab VM's /init and guest agent. As PID 1 inside the initramfs it loads the
// few modules needed to reach the root image (virtio, ext4, overlay, 9p, virtio-serial), mounts the
// read-only root image under a tmpfs overlay (so every boot starts from the same clean tree and
// several VMs can share one image), switches into it, preloads the IPsec modules, starts itself
// again as the agent and then only reaps orphans. The agent serves agent.Requests from the host on
// a virtio-serial port. Booting this way skips systemd entirely, which is what keeps a boot under
// TCG emulation to seconds.
//
// It is built by package labvm (CGO_ENABLED=0) and placed in the initramfs; it is not a user tool.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/internal/labvm/agent"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		if err := serveAgent(); err != nil {
			fmt.Fprintf(os.Stderr, "labinit agent: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "labinit: runs as PID 1 in the lab VM only")
		os.Exit(2)
	}
	if err := boot(); err != nil {
		fmt.Fprintf(os.Stderr, "labinit: boot failed: %v\n", err)
	}
	poweroff()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "labinit: "+format+"\n", args...)
}

// boot prepares the root and runs the agent; it returns when the agent has ended.
func boot() error {
	for _, m := range []struct{ src, dst, typ, opts string }{
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
	} {
		if err := mount(m.src, m.dst, m.typ, 0, m.opts); err != nil {
			return err
		}
	}
	if err := loadModules("/modules"); err != nil {
		return err
	}
	if err := waitFor("/dev/vda", 20*time.Second); err != nil {
		return err
	}
	for _, m := range []struct {
		src, dst, typ string
		flags         uintptr
		opts          string
	}{
		{"/dev/vda", "/lower", "ext4", unix.MS_RDONLY, ""},
		{"tmpfs", "/rw", "tmpfs", 0, "mode=0755"},
	} {
		if err := mount(m.src, m.dst, m.typ, m.flags, m.opts); err != nil {
			return err
		}
	}
	for _, d := range []string{"/rw/upper", "/rw/work", "/newroot"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := mount("overlay", "/newroot", "overlay", 0, "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work"); err != nil {
		return err
	}
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if err := os.MkdirAll("/newroot"+d, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(d, "/newroot"+d, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s: %w", d, err)
		}
	}
	// switch_root: make the overlay the root of the mount namespace (the initramfs stays beneath
	// it, unreachable; it is small).
	if err := unix.Chdir("/newroot"); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	for _, m := range []struct{ src, dst, typ, opts string }{
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"devpts", "/dev/pts", "devpts", "ptmxmode=0666"},
		{"tmpfs", "/dev/shm", "tmpfs", "mode=1777"},
	} {
		if err := mount(m.src, m.dst, m.typ, 0, m.opts); err != nil {
			return err
		}
	}
	os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	os.Setenv("HOME", "/root")
	unix.Sethostname([]byte("labvm"))
	if err := mount(agent.ShareTag, agent.GuestShare, "9p", 0, "trans=virtio,version=9p2000.L,msize=262144,cache=none"); err != nil {
		logf("no host share: %v", err)
	}
	run("ip", "link", "set", "lo", "up")
	// Modules the tests use, loaded now instead of on demand: the kernel's own request_module runs
	// modprobe from the initial root, which is the initramfs, not this tree.
	if mods := cmdlineValue("labvm.modules"); mods != "" {
		args := append([]string{"-a"}, strings.Split(mods, ",")...)
		run("modprobe", args...)
	}
	port, err := findPort(agent.AgentPortName, 20*time.Second)
	if err != nil {
		return err
	}
	ag := exec.Command("/proc/self/exe", "agent", port)
	ag.Stdout, ag.Stderr = os.Stderr, os.Stderr
	if err := ag.Start(); err != nil {
		return err
	}
	logf("agent started on %s", port)
	reap(ag.Process.Pid)
	return nil
}

// reap waits for every child of PID 1 (orphaned daemons included) until the agent ends.
func reap(agentPID int) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid == agentPID {
			logf("agent ended (%v)", ws)
			return
		}
	}
}

func poweroff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func mount(src, dst, typ string, flags uintptr, opts string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, typ, flags, opts); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", src, dst, typ, err)
	}
	return nil
}

// loadModules loads dir/order's modules, one file name a line, in order (the host wrote them
// dependencies first).
func loadModules(dir string) error {
	f, err := os.Open(filepath.Join(dir, "order"))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		m, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(m.Fd()), "", 0)
		m.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("load %s: %w", name, err)
		}
	}
	return sc.Err()
}

func waitFor(path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v", path, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findPort returns the device of the virtio-serial port called name.
func findPort(name string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err == nil && strings.TrimSpace(string(b)) == name {
				dev := "/dev/" + filepath.Base(filepath.Dir(n))
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("virtio-serial port %q did not appear within %v", name, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func cmdlineValue(key string) string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

func run(name string, args ...string) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		logf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
