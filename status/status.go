// Package status is the schema of goipsec's status snapshot: what `goipsec status --json` prints,
// what the goipsec-status VICI command returns, and what the metrics collector and `goipsec status
// --watch` read. It is a stable interface for scripts, documented field by field in
// docs/status-json.md (a test fails when the two disagree).
//
// Conventions, chosen so that scripts never need to know Go's encodings: keys are snake_case;
// SPIs are lower-case hex strings (16 digits for IKE, 8 for ESP/AH), as swanctl and `ip xfrm`
// print them; times are RFC 3339 timestamps with a "_at" suffix, absent when unknown; durations
// are whole seconds with a "_seconds" suffix; enumerations are lower-case words; counters are
// JSON numbers (uint64). Adding a field is a compatible change; renaming or removing one, or
// changing its type or meaning, raises SchemaVersion.
package status

import (
	"reflect"
	"slices"
	"time"
)

// SchemaVersion is the version of this schema, printed as schema_version.
const SchemaVersion = 1

// Status is one snapshot of the daemon.
type Status struct {
	SchemaVersion int          `json:"schema_version"`
	Daemon        Daemon       `json:"daemon"`
	Connections   []Connection `json:"connections"`
	Manual        []ManualSA   `json:"manual"`
	DataPlane     DataPlane    `json:"dataplane"`
	IKE           IKECounters  `json:"ike"`
	// Certificates are the loaded certificates and those peers authenticated with.
	Certificates []Certificate `json:"certificates"`
	// Users are the remote-access clients of this gateway; Pools its address pools.
	Users []User `json:"users"`
	Pools []Pool `json:"pools"`
	// L2TP lists the PPP sessions of goipsec's L2TP server and clients.
	L2TP []L2TPSession `json:"l2tp_sessions"`
}

// User is one remote client: an IKE SA we answered that authenticated with EAP or got a virtual
// IP from us.
type User struct {
	Connection  string    `json:"connection"`
	Identity    string    `json:"identity"`
	EAPIdentity string    `json:"eap_identity,omitempty"`
	VirtualIPs  []string  `json:"virtual_ips"`
	Remote      string    `json:"remote"`
	NAT         bool      `json:"nat"`
	Since       time.Time `json:"since_at"`
	BytesIn     uint64    `json:"bytes_in"`
	BytesOut    uint64    `json:"bytes_out"`
	SPIi        string    `json:"spi_i"`
	SPIr        string    `json:"spi_r"`
}

// Pool is an address pool and its leases.
type Pool struct {
	Name    string  `json:"name"`
	First   string  `json:"first"`
	Last    string  `json:"last"`
	Size    uint64  `json:"size"`
	Online  int     `json:"online"`
	Offline int     `json:"offline"`
	Leases  []Lease `json:"leases"`
}

// Lease is one address handed out.
type Lease struct {
	Address    string    `json:"address"`
	Identity   string    `json:"identity"`
	Online     bool      `json:"online"`
	ReleasedAt time.Time `json:"released_at,omitzero"`
}

// Certificate kinds.
const (
	CertEndEntity  = "end_entity"  // x509/: ours, intermediates to send, pinned peer certificates
	CertCA         = "ca"          // x509ca/, authorities: trust anchors
	CertAA         = "aa"          // x509aa/: attribute authorities
	CertOCSPSigner = "ocsp_signer" // x509ocsp/
	CertPeer       = "peer"        // a certificate a peer authenticated with, not loaded locally
)

// Certificate is one certificate.
type Certificate struct {
	Subject          string    `json:"subject"`
	Issuer           string    `json:"issuer"`
	Serial           string    `json:"serial"`
	Kind             string    `json:"kind"`
	Source           string    `json:"source"`
	NotBefore        time.Time `json:"not_before_at"`
	NotAfter         time.Time `json:"not_after_at"`
	ExpiresInSeconds int64     `json:"expires_in_seconds"`
	HasPrivateKey    bool      `json:"has_private_key"`
	AltNames         []string  `json:"alt_names"`
	UsedBy           []string  `json:"used_by"`
}

// L2TPSession is one PPP session carried by L2TP.
type L2TPSession struct {
	// Role is "lns" (a client of our server) or "lac:<name>" (our client connection <name>).
	Role string `json:"role"`
	// Peer is the L2TP peer's address and port.
	Peer string `json:"peer"`
	// User is the PPP user name (empty for our own client sessions).
	User string `json:"user"`
	// Address is the PPP client's address (for a LAC: the server's PPP address).
	Address string    `json:"address"`
	Since   time.Time `json:"since"`
}

// Daemon describes the running process.
type Daemon struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
}

// Connection states.
const (
	StateUp         = "up"         // an IKE SA is established and every child it should have is installed
	StateDegraded   = "degraded"   // an IKE SA is established but a Child SA is missing (see state_reason)
	StateConnecting = "connecting" // an IKE SA is being negotiated
	StateDown       = "down"       // no IKE SA
)

// Connection is one configured IKE connection and its SAs.
type Connection struct {
	Name        string        `json:"name"`
	File        string        `json:"file"`
	Line        int           `json:"line"`
	State       string        `json:"state"`
	StateReason string        `json:"state_reason,omitempty"`
	LocalAddrs  []string      `json:"local_addrs"`
	RemoteAddrs []string      `json:"remote_addrs"`
	LocalID     string        `json:"local_id"`
	RemoteID    string        `json:"remote_id"`
	Proposals   []string      `json:"proposals"`
	DPDDelay    int64         `json:"dpd_delay_seconds"`
	Children    []ChildConfig `json:"children"`
	IKESAs      []IKESA       `json:"ike_sas"`
	LastFailure *Failure      `json:"last_failure,omitempty"`
}

// Failure is a connection's last failed negotiation.
type Failure struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// ChildConfig is a configured child (not an SA).
type ChildConfig struct {
	Name         string   `json:"name"`
	Mode         string   `json:"mode"`
	StartAction  string   `json:"start_action"`
	LocalTS      []string `json:"local_ts"`
	RemoteTS     []string `json:"remote_ts"`
	ESPProposals []string `json:"esp_proposals"`
	AHProposals  []string `json:"ah_proposals"`
}

// IKESA is one IKE SA.
type IKESA struct {
	// Version is the IKE version: 2, or 1 for an IKEv1 ISAKMP SA (whose SPIs are its cookies).
	Version      int    `json:"version"`
	SPIInitiator string `json:"spi_i"`
	SPIResponder string `json:"spi_r"`
	Initiator    bool   `json:"initiator"`
	State        string `json:"state"`
	Local        string `json:"local"`
	Remote       string `json:"remote"`
	LocalID      string `json:"local_id"`
	RemoteID     string `json:"remote_id"`
	Proposal     string `json:"proposal"`
	NATLocal     bool   `json:"nat_local"`
	NATRemote    bool   `json:"nat_remote"`
	// Transport is "udp", or "tcp" for IKE and ESP in TCP (RFC 9329), whose connection TCP shows.
	Transport string    `json:"transport"`
	TCP       *TCPState `json:"tcp,omitempty"`
	// PPK: a post-quantum preshared key is mixed into the keys (RFC 9867 or RFC 8784).
	PPK            bool      `json:"ppk"`
	EstablishedAt  time.Time `json:"established_at,omitzero"`
	RekeyAt        time.Time `json:"rekey_at,omitzero"`
	LastReceivedAt time.Time `json:"last_received_at,omitzero"`
	Children       []ChildSA `json:"child_sas"`
}

// TCPState is the TCP connection of an IKE SA in TCP (RFC 9329).
type TCPState struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// Originator: we opened the connection (and reopen it when it breaks).
	Originator bool      `json:"originator"`
	Since      time.Time `json:"since,omitzero"`
	BytesIn    uint64    `json:"bytes_in"`
	BytesOut   uint64    `json:"bytes_out"`
	ESPIn      uint64    `json:"esp_in"`
	ESPOut     uint64    `json:"esp_out"`
	// Connected is false while there is no connection (the originator is reconnecting).
	Connected bool `json:"connected"`
}

// ChildSA is one installed Child SA: a pair of ESP (or AH) SAs.
type ChildSA struct {
	Name        string    `json:"name"`
	SPIIn       string    `json:"spi_in"`
	SPIOut      string    `json:"spi_out"`
	Mode        string    `json:"mode"`
	Protocol    string    `json:"protocol"` // esp or ah
	UDPEncap    bool      `json:"udp_encap"`
	Proposal    string    `json:"proposal"`
	LocalTS     []string  `json:"local_ts"`
	RemoteTS    []string  `json:"remote_ts"`
	InstalledAt time.Time `json:"installed_at"`
	RekeyAt     time.Time `json:"rekey_at,omitzero"`
	ExpireAt    time.Time `json:"expire_at,omitzero"`
	In          Traffic   `json:"in"`
	Out         Traffic   `json:"out"`
}

// Traffic counts one direction of an SA. Drops are counted inbound only (the data plane drops
// outbound packets before they belong to an SA); Drops is the sum of DropsByReason.
type Traffic struct {
	Bytes         uint64            `json:"bytes"`
	Packets       uint64            `json:"packets"`
	Drops         uint64            `json:"drops"`
	DropsByReason map[string]uint64 `json:"drops_by_reason"`
}

// ManualSA is one manually keyed SA pair (manual { } in the configuration).
type ManualSA struct {
	Name     string   `json:"name"`
	Mode     string   `json:"mode"`
	Proposal string   `json:"proposal"`
	Local    string   `json:"local"`
	Remote   string   `json:"remote"`
	LocalTS  []string `json:"local_ts"`
	RemoteTS []string `json:"remote_ts"`
	SPIIn    string   `json:"spi_in"`
	SPIOut   string   `json:"spi_out"`
	In       Traffic  `json:"in"`
	Out      Traffic  `json:"out"`
}

// DataPlane holds the data plane's engine-wide counters.
type DataPlane struct {
	// Drops counts packets dropped outside any SA, by reason; every reason is present.
	Drops      map[string]uint64 `json:"drops"`
	TunPackets uint64            `json:"tun_packets"`
	NetPackets uint64            `json:"net_packets"`
	IKEPackets uint64            `json:"ike_packets"`
	Keepalives uint64            `json:"keepalives"`
	Dummy      uint64            `json:"dummy_packets"`
	Bypassed   uint64            `json:"bypassed_packets"`
	// XDP is present with daemon.raw_esp_xdp = yes: raw ESP received through AF_XDP.
	XDP *XDP `json:"xdp,omitempty"`
	// TXRing is present when raw ESP leaves through AF_PACKET TX rings (the userspace data plane
	// with daemon.raw_esp_ring = yes, the default).
	TXRing *TXRing `json:"tx_ring,omitempty"`
}

// TXRing holds the counters of raw ESP sent through the AF_PACKET TX rings.
type TXRing struct {
	Rings   int    `json:"rings"`
	Sent    uint64 `json:"sent_packets"`
	Sendtos uint64 `json:"sendto_calls"`
	// Retries counts sendto calls that found the send buffer or device queue full.
	Retries uint64 `json:"retries"`
	// Broken counts rings given up after a failed sendto; Recovered the packets taken back from
	// them and sent through the raw socket.
	Broken    uint64 `json:"broken"`
	Recovered uint64 `json:"recovered_packets"`
	// RawSocket counts raw ESP packets sent through the raw socket instead of a ring.
	RawSocket uint64 `json:"raw_socket_packets"`
}

// XDP holds the counters of raw ESP received through AF_XDP.
type XDP struct {
	// Interfaces maps each interface with the XDP program to its mode, native or generic.
	Interfaces map[string]string `json:"interfaces"`
	Received   uint64            `json:"received_packets"`
	Batches    uint64            `json:"batches"`
	// Drops counts frames discarded before SA lookup, by reason.
	Drops map[string]uint64 `json:"drops"`
	// KernelDrops are the AF_XDP sockets' own counters (struct xdp_statistics): "dropped",
	// "rx_ring_full", "fill_ring_empty".
	KernelDrops map[string]uint64 `json:"kernel_drops"`
}

// IKECounters are the IKE engine's counters since the start.
type IKECounters struct {
	HandshakesOK     uint64 `json:"handshakes"`
	HandshakesFailed uint64 `json:"handshakes_failed"`
	Rekeys           uint64 `json:"rekeys"`
	Retransmits      uint64 `json:"retransmits"`
	InvalidMessages  uint64 `json:"invalid_messages"`
	// Drops counts dropped IKE messages by reason (their sum is InvalidMessages).
	Drops       map[string]uint64 `json:"drops"`
	CookiesSent uint64            `json:"cookies_sent"`
	// HalfOpen is the number of responder IKE SAs waiting for IKE_AUTH.
	HalfOpen int64 `json:"half_open"`
	// Failures counts failed negotiations by reason (the same labels as the metric).
	Failures map[string]uint64 `json:"failures"`
}

// Connection returns the named connection, or nil.
func (s *Status) Connection(name string) *Connection {
	i := slices.IndexFunc(s.Connections, func(c Connection) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &s.Connections[i]
}

// Names lists the configured connections' names.
func (s *Status) Names() []string {
	var out []string
	for _, c := range s.Connections {
		out = append(out, c.Name)
	}
	return out
}

// FindChild returns the Child SA with inbound SPI spi (hex), or nil.
func (s *Status) FindChild(spi string) *ChildSA {
	for i := range s.Connections {
		for j := range s.Connections[i].IKESAs {
			sa := &s.Connections[i].IKESAs[j]
			for k := range sa.Children {
				if sa.Children[k].SPIIn == spi {
					return &sa.Children[k]
				}
			}
		}
	}
	return nil
}

// Up reports whether the connection's tunnels carry traffic as configured.
func (c *Connection) Up() bool { return c.State == StateUp }

// Normalize replaces nil lists and maps with empty ones, everywhere in s, so that the JSON never
// holds null where the documentation promises a list or an object.
func (s *Status) Normalize() { normalize(reflect.ValueOf(s).Elem()) }

func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normalize(v.Field(i))
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Slice:
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
		for i := range v.Len() {
			normalize(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
	}
}
