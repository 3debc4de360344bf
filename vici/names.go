package vici

import "slices"

// strongSwanCommands are the commands charon 5.9.8's vici plugin registers (README "Client-initiated
// commands"), each with whether swanctl 5.9.8 prints the errmsg of a failed response.
//
// That flag decides how a goipsec server answers a command it has no handler for (Registry): with
// {success = no, errmsg} where swanctl shows errmsg, and with CMD_UNKNOWN where it does not, because
// swanctl ignores success for those and would print empty output and exit 0, while CMD_UNKNOWN makes
// it print "<command> request failed: ..." and exit non-zero. Checked by running swanctl 5.9.8
// against both answers (TestSwanctlNotImplemented).
var strongSwanCommands = [...]commandInfo{
	{"version", false},
	{"stats", false},
	{"reload-settings", true},
	{"initiate", true},
	{"terminate", true},
	{"rekey", true},
	{"redirect", true},
	{"install", true},
	{"uninstall", true},
	{"list-sas", false},
	{"list-policies", false},
	{"list-conns", false},
	{"get-conns", false},
	{"list-certs", false},
	{"list-authorities", false},
	{"get-authorities", false},
	{"load-conn", true},
	{"unload-conn", true},
	{"load-cert", true},
	{"load-key", true},
	{"unload-key", true},
	{"get-keys", false},
	{"load-token", true},
	{"load-shared", true},
	{"unload-shared", true},
	{"get-shared", false},
	{"flush-certs", false},
	// swanctl --load-creds --clear ignores a failed clear-creds and carries on; CMD_UNKNOWN makes it
	// stop with "clear-creds request failed" instead of pretending credentials were cleared.
	{"clear-creds", false},
	{"load-authority", true},
	{"unload-authority", true},
	{"load-pool", true},
	{"unload-pool", true},
	{"get-pools", false},
	{"get-algorithms", false},
	{"get-counters", true},
	{"reset-counters", true},
}

// strongSwanEvents are the event names charon 5.9.8 accepts registrations for (README "Server-issued
// events"). The first six are streamed during a command to the client that issued it; the others are
// raised asynchronously to every registered client.
var strongSwanEvents = [...]string{
	"control-log", "list-sa", "list-policy", "list-conn", "list-cert", "list-authority",
	"log", "ike-updown", "ike-rekey", "ike-update", "child-updown", "child-rekey",
}

// StrongSwanCommands returns the command names strongSwan 5.9.8 defines.
func StrongSwanCommands() []string {
	names := make([]string, len(strongSwanCommands))
	for i, c := range strongSwanCommands {
		names[i] = c.name
	}
	return names
}

// StrongSwanEvents returns the event names strongSwan 5.9.8 defines.
func StrongSwanEvents() []string { return slices.Clone(strongSwanEvents[:]) }

// IsStrongSwanCommand reports whether strongSwan 5.9.8 defines the command name.
func IsStrongSwanCommand(name string) bool {
	_, ok := lookupCommand(name)
	return ok
}

// IsStrongSwanEvent reports whether strongSwan 5.9.8 defines the event name.
func IsStrongSwanEvent(name string) bool { return slices.Contains(strongSwanEvents[:], name) }

// SwanctlShowsErrmsg reports whether swanctl 5.9.8 prints the errmsg of a failed response to the
// command name (false for unknown names).
func SwanctlShowsErrmsg(name string) bool {
	c, _ := lookupCommand(name)
	return c.swanctlShowsErrmsg
}

type commandInfo struct {
	name               string
	swanctlShowsErrmsg bool
}

func lookupCommand(name string) (commandInfo, bool) {
	for _, c := range strongSwanCommands {
		if c.name == name {
			return c, true
		}
	}
	return commandInfo{}, false
}
