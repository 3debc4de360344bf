// Package agent is the wire protocol between the lab VM harness (package labvm) and its guest agent
// (cmd labinit).
package agent

// The host and the guest agent (cmd labinit) talk over one virtio-serial port with JSON lines: the
// host writes Requests, the agent answers each with exactly one Response carrying the same ID.
// Requests are independent: the agent runs each in its own goroutine, so a long command (a daemon
// waiting for traffic) never blocks a short one (ip xfrm state). JSON keeps the channel robust
// against any byte a command prints ([]byte fields travel as base64) and a line that does not
// parse is answered with an error instead of wedging the stream.

// Op is what a Request asks for.
type Op string

const (
	// OpRun runs Cmd with /bin/sh -c, waits for it (at most TimeoutMS) and returns its output.
	OpRun Op = "run"
	// OpStart starts Cmd in the background under the handle Name; output is collected.
	OpStart Op = "start"
	// OpWait waits (at most TimeoutMS) for the background command Name and returns its output
	// and exit status; Running is set when it has not ended yet.
	OpWait Op = "wait"
	// OpSignal sends Signal to the process group of the background command Name.
	OpSignal Op = "signal"
	// OpOutput returns what the background command Name printed so far.
	OpOutput Op = "output"
	// OpPing answers at once: the agent is up.
	OpPing Op = "ping"
)

// Request is one line from the host.
type Request struct {
	ID        uint64 `json:"id"`
	Op        Op     `json:"op"`
	Cmd       string `json:"cmd,omitempty"`
	Stdin     []byte `json:"stdin,omitempty"`
	Name      string `json:"name,omitempty"`
	Signal    int    `json:"signal,omitempty"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
}

// Response is the agent's answer to the Request with the same ID.
type Response struct {
	ID      uint64 `json:"id"`
	Stdout  []byte `json:"stdout,omitempty"`
	Stderr  []byte `json:"stderr,omitempty"`
	Exit    int    `json:"exit"`
	Running bool   `json:"running,omitempty"`
	// Err is set when the agent could not do what was asked (no such handle, a command that could
	// not start, a timeout); Exit is then -1.
	Err string `json:"err,omitempty"`
}

// AgentPortName is the virtio-serial port's name, as QEMU's virtserialport name= gives it and the
// guest sees it in /sys/class/virtio-ports/*/name.
const AgentPortName = "org.goipsec.labvm.agent"

// ShareTag is the 9p mount tag of the host directory shared with the guest at GuestShare.
const ShareTag = "labshare"

// GuestShare is where the guest mounts the host's shared directory.
const GuestShare = "/mnt/host"
