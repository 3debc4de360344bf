package labvm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goipsec/goipsec/internal/labvm/agent"
)

// Options configure one VM.
type Options struct {
	Image *Image
	// Netns is the host network namespace that gets the VM's tap device ("" = the caller's).
	Netns string
	// Tap is the name of the tap device created in Netns for the guest's eth0; empty: no network.
	// The device is removed when the VM ends.
	Tap string
	// MAC of the guest's eth0 (default 52:54:00:12:34:56).
	MAC string
	// Share is a host directory the guest mounts at /mnt/host (9p): binaries, configs, results.
	Share string
	// MemoryMB (default 768) and CPUs (default 1) of the guest.
	MemoryMB, CPUs int
	// Modules are loaded in the guest before the agent starts (esp4, xfrm_user, ...).
	Modules []string
	// Console receives the guest's kernel console and labinit's messages (optional).
	Console io.Writer
	// BootTimeout bounds the time until the agent answers (default 3 minutes: TCG on a loaded
	// machine).
	BootTimeout time.Duration
	// InitBinary is a prebuilt labinit (default: built from this module with the go command).
	InitBinary string
}

// DefaultModules are the kernel modules tests usually need: ESP, AH and IPComp for IPv4 and IPv6,
// XFRM netlink and interfaces, TUN and veth, L2TP and PPP, netem.
var DefaultModules = []string{"xfrm_user", "esp4", "esp6", "ah4", "ah6", "xfrm_interface", "xfrm4_tunnel",
	"xfrm6_tunnel", "tun", "veth", "l2tp_ppp", "l2tp_ip", "pppox", "ppp_generic", "sch_netem",
	"authenc", "authencesn", "gcm", "seqiv", "echainiv", "ghash-generic", "chacha20poly1305", "cbc",
	"hmac", "sha256_generic", "sha512_generic", "af_key"}

// VM is a running lab VM.
type VM struct {
	cmd     *exec.Cmd
	dir     string
	tap     string
	netns   string
	console *lockedBuffer
	exited  chan struct{}
	waitErr error

	conn net.Conn
	wmu  sync.Mutex // guards enc
	enc  *json.Encoder

	mu      sync.Mutex // guards pending, nextID, readErr
	pending map[uint64]chan agent.Response
	nextID  uint64
	readErr error

	BootTime time.Duration // from starting QEMU to the agent's first answer
}

// Result is a finished guest command.
type Result struct {
	Stdout, Stderr string
	Exit           int
}

// Boot starts QEMU (TCG: KVM is not usable on the lab machines) with Debian's kernel, an
// initramfs holding labinit, the image's root read-only under a tmpfs overlay, a virtio-serial
// port for the agent, an optional 9p share and an optional tap network device, and waits until the
// agent answers.
func Boot(ctx context.Context, opts Options) (*VM, error) {
	if opts.Image == nil {
		return nil, errors.New("labvm: no image")
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 768
	}
	if opts.CPUs == 0 {
		opts.CPUs = 1
	}
	if opts.MAC == "" {
		opts.MAC = "52:54:00:12:34:56"
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 3 * time.Minute
	}
	dir, err := os.MkdirTemp("", "goipsec-labvm-")
	if err != nil {
		return nil, err
	}
	v := &VM{dir: dir, console: &lockedBuffer{w: opts.Console}, exited: make(chan struct{}), pending: map[uint64]chan agent.Response{}, netns: opts.Netns}
	ok := false
	defer func() {
		if !ok {
			v.Close()
		}
	}()
	initBin := opts.InitBinary
	if initBin == "" {
		initBin = filepath.Join(dir, "labinit")
		if err := BuildInit(initBin); err != nil {
			return nil, err
		}
	}
	initrd := filepath.Join(dir, "initramfs.cpio")
	if err := writeInitramfs(initrd, initBin, opts.Image); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "agent.sock")
	appendLine := "console=ttyS0 panic=-1 quiet loglevel=4 random.trust_cpu=on net.ifnames=0 rdinit=/init"
	if len(opts.Modules) > 0 {
		appendLine += " labvm.modules=" + strings.Join(opts.Modules, ",")
	}
	args := []string{"-accel", "tcg", "-cpu", "max", "-m", fmt.Sprint(opts.MemoryMB), "-smp", fmt.Sprint(opts.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
		"-kernel", opts.Image.Kernel, "-initrd", initrd, "-append", appendLine,
		"-drive", "file=" + opts.Image.Root + ",format=raw,if=virtio,readonly=on",
		"-device", "virtio-rng-pci",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent,path=" + sock + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=" + agent.AgentPortName,
	}
	if opts.Share != "" {
		args = append(args, "-fsdev", "local,id=share,path="+opts.Share+",security_model=none",
			"-device", "virtio-9p-pci,fsdev=share,mount_tag="+agent.ShareTag)
	}
	if opts.Tap != "" {
		if err := ipIn(opts.Netns, "tuntap", "add", "dev", opts.Tap, "mode", "tap"); err != nil {
			return nil, err
		}
		v.tap = opts.Tap
		if err := ipIn(opts.Netns, "link", "set", opts.Tap, "up"); err != nil {
			return nil, err
		}
		args = append(args, "-netdev", "tap,id=n0,ifname="+opts.Tap+",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n0,mac="+opts.MAC)
	}
	name := "qemu-system-x86_64"
	if opts.Netns != "" {
		args = append([]string{"netns", "exec", opts.Netns, name}, args...)
		name = "ip"
	}
	start := time.Now()
	v.cmd = exec.Command(name, args...)
	v.cmd.Stdout, v.cmd.Stderr = v.console, v.console
	// Killed with the test binary, so that no emulator outlives the run that started it.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the thread that started QEMU ends, not the process: Go may end a thread
	// at any time (a goroutine locked to it returns). QEMU is therefore started and waited for on
	// a goroutine locked to its thread, which lives exactly as long as QEMU.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := v.cmd.Start(); err != nil {
			started <- err
			close(v.exited)
			return
		}
		started <- nil
		v.waitErr = v.cmd.Wait()
		close(v.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("labvm: start QEMU: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, opts.BootTimeout)
	defer cancel()
	if err := v.connect(bctx, sock); err != nil {
		return nil, err
	}
	for {
		pctx, pcancel := context.WithTimeout(bctx, 2*time.Second)
		_, err := v.call(pctx, agent.Request{Op: agent.OpPing})
		pcancel()
		if err == nil {
			break
		}
		if bctx.Err() != nil {
			return nil, fmt.Errorf("labvm: the guest agent did not answer within %v (%v); console:\n%s", opts.BootTimeout, err, v.Console())
		}
		if v.Exited() {
			return nil, fmt.Errorf("labvm: QEMU exited during boot (%v); console:\n%s", v.waitErr, v.Console())
		}
	}
	v.BootTime = time.Since(start)
	ok = true
	return v, nil
}

// BuildInit builds labinit (static: it runs as the guest's PID 1 before any library is reachable).
func BuildInit(out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	// Built from the source beside this file, so that it works from any working directory.
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", out, ".")
	cmd.Dir = filepath.Join(filepath.Dir(self), "labinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("labvm: build labinit: %v: %s", err, b)
	}
	return nil
}

func ipIn(netns string, args ...string) error {
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	if b, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("labvm: ip %s: %v: %s", strings.Join(args, " "), err, b)
	}
	return nil
}

// connect dials the agent's socket once QEMU has created it, and starts the reader.
func (v *VM) connect(ctx context.Context, sock string) error {
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			v.conn = c
			v.enc = json.NewEncoder(c)
			go v.read()
			return nil
		}
		if v.Exited() {
			return fmt.Errorf("labvm: QEMU exited (%v); output:\n%s", v.waitErr, v.Console())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("labvm: agent socket: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (v *VM) read() {
	sc := bufio.NewScanner(v.conn)
	sc.Buffer(make([]byte, 64<<10), 128<<20)
	for sc.Scan() {
		var r agent.Response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // not an answer (a half line from before the agent started)
		}
		v.mu.Lock()
		ch := v.pending[r.ID]
		delete(v.pending, r.ID)
		v.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	v.mu.Lock()
	v.readErr = errors.New("agent connection closed")
	if err := sc.Err(); err != nil {
		v.readErr = err
	}
	for id, ch := range v.pending {
		close(ch)
		delete(v.pending, id)
	}
	v.mu.Unlock()
}

// call sends req and waits for its response.
func (v *VM) call(ctx context.Context, req agent.Request) (agent.Response, error) {
	ch := make(chan agent.Response, 1)
	v.mu.Lock()
	if v.readErr != nil {
		err := v.readErr
		v.mu.Unlock()
		return agent.Response{}, err
	}
	v.nextID++
	req.ID = v.nextID
	v.pending[req.ID] = ch
	v.mu.Unlock()
	v.wmu.Lock()
	err := v.enc.Encode(req)
	v.wmu.Unlock()
	if err != nil {
		return agent.Response{}, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return agent.Response{}, fmt.Errorf("labvm: %v", v.readErr)
		}
		return r, nil
	case <-ctx.Done():
		v.mu.Lock()
		delete(v.pending, req.ID)
		v.mu.Unlock()
		return agent.Response{}, ctx.Err()
	case <-v.exited:
		return agent.Response{}, fmt.Errorf("labvm: QEMU exited (%v)", v.waitErr)
	}
}

func result(r agent.Response) Result {
	return Result{Stdout: string(r.Stdout), Stderr: string(r.Stderr), Exit: r.Exit}
}

// Run runs cmd with /bin/sh -c in the guest, at most timeout (0: no limit), and returns its output
// and exit status. An error means the command could not run to its end (not started, timed out,
// agent gone); a non-zero exit status is not an error.
func (v *VM) Run(ctx context.Context, timeout time.Duration, cmd string) (Result, error) {
	return v.RunStdin(ctx, timeout, cmd, nil)
}

// RunStdin is Run with stdin as the command's standard input.
func (v *VM) RunStdin(ctx context.Context, timeout time.Duration, cmd string, stdin []byte) (Result, error) {
	r, err := v.call(ctx, agent.Request{Op: agent.OpRun, Cmd: cmd, Stdin: stdin, TimeoutMS: timeout.Milliseconds()})
	if err != nil {
		return Result{}, err
	}
	if r.Err != "" {
		return result(r), fmt.Errorf("labvm: %s: %s", cmd, r.Err)
	}
	return result(r), nil
}

// Start runs cmd in the background under name (a later Start may reuse a name once it ended).
func (v *VM) Start(ctx context.Context, name, cmd string) error {
	r, err := v.call(ctx, agent.Request{Op: agent.OpStart, Name: name, Cmd: cmd})
	if err == nil && r.Err != "" {
		err = fmt.Errorf("labvm: start %s: %s", name, r.Err)
	}
	return err
}

// Wait waits at most timeout for the background command name; running reports that it has not
// ended yet. The output is what it printed so far.
func (v *VM) Wait(ctx context.Context, name string, timeout time.Duration) (res Result, running bool, err error) {
	r, err := v.call(ctx, agent.Request{Op: agent.OpWait, Name: name, TimeoutMS: max(timeout.Milliseconds(), 1)})
	if err == nil && r.Err != "" {
		err = fmt.Errorf("labvm: wait %s: %s", name, r.Err)
	}
	return result(r), r.Running, err
}

// Output is what the background command name printed so far.
func (v *VM) Output(ctx context.Context, name string) (Result, bool, error) {
	r, err := v.call(ctx, agent.Request{Op: agent.OpOutput, Name: name})
	if err == nil && r.Err != "" {
		err = fmt.Errorf("labvm: output %s: %s", name, r.Err)
	}
	return result(r), r.Running, err
}

// Signal sends sig to the background command name's process group.
func (v *VM) Signal(ctx context.Context, name string, sig syscall.Signal) error {
	r, err := v.call(ctx, agent.Request{Op: agent.OpSignal, Name: name, Signal: int(sig)})
	if err == nil && r.Err != "" {
		err = fmt.Errorf("labvm: signal %s: %s", name, r.Err)
	}
	return err
}

// Console is the guest's console output so far.
func (v *VM) Console() string { return v.console.String() }

// ExitErr is QEMU's exit status once it has ended (nil before, and after a clean exit).
func (v *VM) ExitErr() error {
	if !v.Exited() {
		return nil
	}
	return v.waitErr
}

// Exited reports whether QEMU has ended.
func (v *VM) Exited() bool {
	select {
	case <-v.exited:
		return true
	default:
		return false
	}
}

// Close stops the VM (the guest keeps nothing: its root is a tmpfs overlay) and removes the tap
// device and the VM's temporary files.
func (v *VM) Close() error {
	if v.conn != nil {
		v.conn.Close()
	}
	if v.cmd != nil && v.cmd.Process != nil && !v.Exited() {
		syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		<-v.exited
	}
	var err error
	if v.tap != "" {
		err = ipIn(v.netns, "link", "del", v.tap)
		v.tap = ""
	}
	os.RemoveAll(v.dir)
	return err
}

// lockedBuffer keeps the console and copies it to w.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	w  io.Writer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		l.w.Write(p)
	}
	// Keep the last 1 MiB: enough to see a boot failure, bounded for a long-running VM.
	if l.b.Len() > 1<<20 {
		rest := bytes.Clone(l.b.Bytes()[l.b.Len()-512<<10:])
		l.b.Reset()
		l.b.Write(rest)
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
