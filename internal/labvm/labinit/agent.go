package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/goipsec/goipsec/internal/labvm/agent"
)

// maxLine bounds one request line (a command with its standard input, base64-encoded).
const maxLine = 64 << 20

// maxOutput bounds what is kept of one command's stdout or stderr; the rest is dropped (and the
// response says so in Err) rather than filling the guest's memory.
const maxOutput = 16 << 20

// server runs the agent's requests.
type server struct {
	wmu sync.Mutex // guards enc: one response line at a time
	enc *json.Encoder

	mu   sync.Mutex // guards bg
	bg   map[string]*background
	port *os.File
}

// background is a command started with OpStart.
type background struct {
	cmd    *exec.Cmd
	out    *capBuffer
	errOut *capBuffer
	done   chan struct{}
	exit   int
}

func serveAgent() error {
	if len(os.Args) < 3 {
		return errors.New("usage: labinit agent PORT")
	}
	port, err := os.OpenFile(os.Args[2], os.O_RDWR, 0)
	if err != nil {
		return err
	}
	s := &server{enc: json.NewEncoder(port), bg: map[string]*background{}, port: port}
	sc := bufio.NewScanner(port)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var req agent.Request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			// A line that does not parse (a host that connected mid-line): say so, go on.
			s.reply(agent.Response{ID: req.ID, Exit: -1, Err: "bad request: " + err.Error()})
			continue
		}
		go s.handle(req)
	}
	return sc.Err()
}

func (s *server) reply(r agent.Response) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.enc.Encode(r); err != nil {
		logf("agent: write response %d: %v", r.ID, err)
	}
}

func (s *server) handle(req agent.Request) {
	resp := agent.Response{ID: req.ID}
	var err error
	switch req.Op {
	case agent.OpPing:
	case agent.OpRun:
		err = s.run(req, &resp)
	case agent.OpStart:
		err = s.start(req)
	case agent.OpWait:
		err = s.wait(req, &resp)
	case agent.OpOutput:
		err = s.output(req, &resp)
	case agent.OpSignal:
		err = s.signal(req)
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	if err != nil {
		resp.Exit, resp.Err = -1, err.Error()
	}
	s.reply(resp)
}

func command(req agent.Request) *exec.Cmd {
	cmd := exec.Command("/bin/sh", "-c", req.Cmd)
	// Own process group: a timeout or a signal reaches the whole pipeline, not just the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A daemon started in the background by the command keeps its output pipes open; without a
	// bound, the command would count as running until that daemon ends.
	cmd.WaitDelay = 2 * time.Second
	if req.Stdin != nil {
		cmd.Stdin = bytes.NewReader(req.Stdin)
	}
	return cmd
}

func exitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, err
}

func (s *server) run(req agent.Request, resp *agent.Response) error {
	cmd := command(req)
	out, errOut := &capBuffer{}, &capBuffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timeout <-chan time.Time
	if req.TimeoutMS > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMS) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	var werr error
	timedOut := false
	select {
	case werr = <-done:
	case <-timeout:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-done
		timedOut = true
	}
	resp.Stdout, resp.Stderr = out.Bytes(), errOut.Bytes()
	code, err := exitCode(werr)
	resp.Exit = code
	if timedOut {
		return fmt.Errorf("timed out after %d ms (killed)", req.TimeoutMS)
	}
	return err
}

func (s *server) start(req agent.Request) error {
	if req.Name == "" {
		return errors.New("start needs a name")
	}
	cmd := command(req)
	b := &background{cmd: cmd, out: &capBuffer{}, errOut: &capBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.out, b.errOut
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.bg[req.Name]; ok {
		select {
		case <-old.done:
		default:
			return fmt.Errorf("%q is still running", req.Name)
		}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.bg[req.Name] = b
	go func() {
		code, _ := exitCode(cmd.Wait())
		b.exit = code
		close(b.done)
	}()
	return nil
}

func (s *server) lookup(name string) (*background, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bg[name]
	if !ok {
		return nil, fmt.Errorf("no background command %q", name)
	}
	return b, nil
}

func (s *server) wait(req agent.Request, resp *agent.Response) error {
	b, err := s.lookup(req.Name)
	if err != nil {
		return err
	}
	var timeout <-chan time.Time
	if req.TimeoutMS > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMS) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-b.done:
		resp.Exit = b.exit
	case <-timeout:
		resp.Running = true
	}
	resp.Stdout, resp.Stderr = b.out.Bytes(), b.errOut.Bytes()
	return nil
}

func (s *server) output(req agent.Request, resp *agent.Response) error {
	b, err := s.lookup(req.Name)
	if err != nil {
		return err
	}
	select {
	case <-b.done:
		resp.Exit = b.exit
	default:
		resp.Running = true
	}
	resp.Stdout, resp.Stderr = b.out.Bytes(), b.errOut.Bytes()
	return nil
}

func (s *server) signal(req agent.Request) error {
	b, err := s.lookup(req.Name)
	if err != nil {
		return err
	}
	select {
	case <-b.done:
		return nil
	default:
	}
	return syscall.Kill(-b.cmd.Process.Pid, syscall.Signal(req.Signal))
}

// capBuffer is a goroutine-safe buffer that keeps at most maxOutput bytes.
type capBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	cut bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := maxOutput - c.b.Len()
	if len(p) > room {
		c.b.Write(p[:max(room, 0)])
		if !c.cut {
			c.cut = true
			c.b.WriteString("\n[labvm: output cut]\n")
		}
		return len(p), nil
	}
	return c.b.Write(p)
}

func (c *capBuffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.b.Bytes())
}
