package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	govici "github.com/strongswan/govici/vici"

	"github.com/goipsec/goipsec/daemon/control"
	"github.com/goipsec/goipsec/status"
	"github.com/goipsec/goipsec/vici"
)

// The control commands talk to a running `goipsec run` over its VICI socket, the same socket
// strongSwan's swanctl uses, with strongSwan's own Go client library (govici): a second,
// independent implementation of the protocol checks goipsec's server every time the CLI runs.
// Streaming commands (up's progress, the paged status) are the exception: they go through
// vici.CallStreaming, because govici 0.8.0 can drop events that wait beside the response.

const defaultSocket = "/run/goipsec/vici.sock"

// socketEnv names the environment variable that overrides the default control socket, so that an
// operator with a second daemon need not repeat --socket.
const socketEnv = "GOIPSEC_SOCKET"

// client is a connection to the daemon's control socket.
type client struct {
	path string
	s    *govici.Session
}

// socketFor is the socket the CLI uses: --socket, else $GOIPSEC_SOCKET, else the default.
func socketFor(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv(socketEnv); env != "" {
		return env
	}
	return defaultSocket
}

func dial(ctx context.Context, path string) (*client, error) {
	path = strings.TrimPrefix(path, "unix://")
	s, err := govici.NewSession(govici.WithSocketPath(path))
	if err != nil {
		var hint string
		switch {
		case errors.Is(err, os.ErrNotExist):
			hint = "no such socket: is `goipsec run` running, with this daemon.vici_socket?"
		case errors.Is(err, os.ErrPermission):
			hint = "permission denied: the control socket is for root (mode 0600)"
		default:
			hint = "is `goipsec run` running?"
		}
		return nil, fmt.Errorf("cannot reach the goipsec daemon at %s: %s", path, hint)
	}
	return &client{path: path, s: s}, nil
}

func (c *client) Close() error { return c.s.Close() }

// commandError is a command the daemon answered with success = no: its errmsg, without the
// client library's prefix, is what the operator reads.
type commandError struct{ msg string }

func (e *commandError) Error() string { return e.msg }

// failure turns a govici result into an error an operator can read.
func (c *client) failure(cmd string, resp *govici.Message, err error) error {
	if err == nil {
		return nil
	}
	if resp != nil {
		if msg, ok := resp.Get("errmsg").(string); ok && msg != "" {
			return &commandError{msg: msg}
		}
		return &commandError{msg: cmd + " failed"}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the daemon at %s did not answer %s in time", c.path, cmd)
	}
	return fmt.Errorf("lost the connection to the daemon at %s during %s: %v", c.path, cmd, err)
}

// call runs a command with its arguments as key/value pairs.
func (c *client) call(ctx context.Context, cmd string, args map[string]string) (*govici.Message, error) {
	req := govici.NewMessage()
	for k, v := range args {
		if err := req.Set(k, v); err != nil {
			return nil, err
		}
	}
	resp, err := c.s.Call(ctx, cmd, req)
	return resp, c.failure(cmd, resp, err)
}

// stream runs a command and hands each event it streams to fn. It reads on a connection of its
// own through vici.CallStreaming, which keeps every event (govici 0.8.0 can lose the last ones).
func (c *client) stream(ctx context.Context, cmd, event string, args map[string]string, fn func(*vici.Message)) error {
	req := vici.NewMessage()
	for k, v := range args {
		req.Set(k, v)
	}
	resp, err := vici.CallStreaming(ctx, c.path, cmd, event, req, fn)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the daemon at %s did not answer %s in time", c.path, cmd)
	case err != nil:
		return fmt.Errorf("lost the connection to the daemon at %s during %s: %v", c.path, cmd, err)
	case resp.Err() != nil:
		if msg := resp.Get("errmsg"); msg != "" {
			return &commandError{msg: msg}
		}
		return &commandError{msg: cmd + " failed"}
	}
	return nil
}

// status fetches the snapshot (of one connection when name is set).
func (c *client) status(ctx context.Context, name string) (*status.Status, error) {
	args := map[string]string{}
	if name != "" {
		args["ike"] = name
	}
	js, err := control.FetchStatus(ctx, c.path, args)
	if err != nil {
		var ce *control.CommandError
		if errors.As(err, &ce) {
			return nil, &commandError{msg: ce.Msg}
		}
		return nil, err
	}
	var st status.Status
	if err := json.Unmarshal(js, &st); err != nil {
		return nil, fmt.Errorf("malformed status from the daemon: %w", err)
	}
	if st.SchemaVersion != status.SchemaVersion {
		return nil, fmt.Errorf("the daemon speaks status schema %d, this goipsec %d: use the goipsec binary that runs the daemon", st.SchemaVersion, status.SchemaVersion)
	}
	return &st, nil
}

func str(m *govici.Message, key string) string {
	s, _ := m.Get(key).(string)
	return s
}
