package config

import (
	"fmt"
	"strings"
	"sync"

	"github.com/goipsec/goipsec/internal/suggest"
)

// Support says how goipsec treats a key.
type Support uint8

const (
	// Supported keys are read into the model and used.
	Supported Support = iota
	// NoEffect keys are accepted and their values checked, but they change nothing yet (for
	// example certificate options while only PSK authentication exists, or IKEv1-only options).
	NoEffect
	// DefaultOnly keys are accepted only with their default value: the feature they switch on is
	// not implemented, and a configuration that spells out the default should still load.
	DefaultOnly
	// NotSupported keys are refused whenever they appear.
	NotSupported
)

func (s Support) String() string {
	switch s {
	case Supported:
		return "supported"
	case NoEffect:
		return "accepted, no effect yet"
	case DefaultOnly:
		return "default only"
	case NotSupported:
		return "not supported yet"
	}
	return fmt.Sprintf("Support(%d)", uint8(s))
}

// Key describes one configuration key or section.
type Key struct {
	// Path in dotted notation with strongSwan's placeholders: <conn>, <child>, <name> stand for
	// any name; a trailing <suffix> (as in local<suffix>) matches any name starting with the part
	// before it.
	Path string
	// Section is true for "name { }" blocks, false for "key = value" settings.
	Section bool
	// Default is the value used when the key is absent or empty, as text; computed defaults are
	// described in words (e.g. "rekey_time + 10%").
	Default string
	Support Support
	// Doc is a one-line description for the reference documentation.
	Doc string
}

// Keys returns the table of every key goipsec knows, in documentation order. It is the one place
// that decides what is accepted, with which default, and what docs/configuration.md lists.
func Keys() []Key {
	out := make([]Key, len(keyTable))
	copy(out, keyTable[:])
	return out
}

// Abbreviations keep the table readable.
const (
	conn  = "connections.<conn>"
	child = "connections.<conn>.children.<child>"
	local = "connections.<conn>.local<suffix>"
	remot = "connections.<conn>.remote<suffix>"
	man   = "manual.<name>"
)

// keyTable is the table behind Keys.
var keyTable = [...]Key{
	{Path: "connections", Section: true, Doc: "IKEv2 connections, one subsection each."},
	{Path: conn, Section: true, Doc: "An IKE connection named <conn>."},
	{Path: conn + ".version", Default: "0", Doc: "IKE version: 2 (IKEv2 only), 1 (IKEv1 only: Main or Aggressive Mode with PSK, Quick Mode) or 0 (initiate IKEv2, accept IKEv1 and IKEv2)."},
	{Path: conn + ".local_addrs", Default: "%any", Doc: "Local addresses for IKE, comma separated: IP addresses, CIDR subnets, ranges a-b, host names or %any."},
	{Path: conn + ".remote_addrs", Default: "%any", Doc: "Remote addresses for IKE, same forms; initiating needs a specific address or host name."},
	{Path: conn + ".local_port", Default: "500", Support: DefaultOnly, Doc: "Local UDP port for IKE; goipsec uses daemon.ike_port for every connection."},
	{Path: conn + ".remote_port", Default: "500", Doc: "Remote UDP port for IKE."},
	{Path: conn + ".proposals", Default: "default", Doc: "IKE proposals, comma separated strongSwan keywords (see below)."},
	{Path: conn + ".encap", Default: "no", Doc: "yes: force UDP encapsulation of ESP (RFC 3948) by faking NAT detection (NAT-keepalives only when a real NAT is in front of us, as strongSwan; list-sas shows nat-fake); tcp: carry IKE and ESP in TCP (RFC 9329) to tcp_port from the start (goipsec's own value; without it an initiator falls back to TCP only when UDP gets no answer)."},
	{Path: conn + ".tcp_port", Default: "4500", Doc: "The peer's TCP port for IKE and ESP in TCP (RFC 9329): used with encap = tcp and by the fallback when UDP gets no answer."},
	{Path: conn + ".mobike", Default: "no", Doc: "MOBIKE (RFC 4555): announce it in IKE_AUTH and, when the peer does too, let the initiator move the IKE SA and its Child SAs to a new address (another interface or network, a new NAT mapping) with UPDATE_SA_ADDRESSES; ESP follows at once. IKE moves to port 4500 after IKE_SA_INIT. strongSwan's default is yes; goipsec's is no, so that site-to-site tunnels keep port 500."},
	{Path: conn + ".fragmentation", Default: "yes", Doc: "IKE fragmentation (RFC 7383): yes, accept (receive only) or no. force is IKEv1 only."},
	{Path: conn + ".dpd_delay", Default: "0s", Doc: "Interval of liveness checks when nothing was received; 0 disables them."},
	{Path: conn + ".dpd_timeout", Default: "150s", Doc: "IKEv1 only: a peer that answers no R-U-THERE (RFC 3706) for this long is dead; IKEv2 uses the retransmission timeout."},
	{Path: conn + ".keyingtries", Default: "1", Support: DefaultOnly, Doc: "Retransmission sequences when initiating; only 1 (dpd_action/close_action = restart re-initiate)."},
	{Path: conn + ".unique", Default: "no", Doc: "Uniqueness policy per remote identity: never (keep every IKE SA, send no INITIAL_CONTACT), no (a new IKE SA with INITIAL_CONTACT replaces older ones of the same identities), keep (refuse a second IKE SA of the remote identity from another address), replace (a new IKE SA replaces older ones of the remote identity)."},
	{Path: conn + ".rekey_time", Default: "4h (0 if reauth_time is set)", Doc: "Time to rekey the IKE SA."},
	{Path: conn + ".reauth_time", Default: "0s", Doc: "Re-authentication of the initiator with a new IKE SA (fresh IKE_SA_INIT and IKE_AUTH with the same Child SAs and virtual IPs), make-before-break: the old IKE SA is deleted once the new one is up; 0 disables. Setting it makes rekey_time default to 0."},
	{Path: conn + ".over_time", Support: NotSupported, Doc: "Hard IKE SA lifetime after a failed rekey; an IKE SA whose rekey fails is closed by the retransmission limit."},
	{Path: conn + ".rand_time", Support: NotSupported, Doc: "goipsec subtracts a random 0-10% of rekey_time against collisions; not configurable yet."},
	{Path: conn + ".send_certreq", Default: "yes", Doc: "Send certificate requests (CERTREQ with the SHA-1 hashes of the trusted CAs' keys) when the peer authenticates with a public key."},
	{Path: conn + ".send_cert", Default: "ifasked", Doc: "Send our certificate and the intermediate CA certificates we hold: always, never, or ifasked (when the peer sent a CERTREQ)."},
	{Path: conn + ".pull", Default: "yes", Support: DefaultOnly, Doc: "Mode Config pull mode; push mode does not exist in IKEv2."},
	{Path: conn + ".aggressive", Default: "no", Doc: "IKEv1: initiate Aggressive Mode instead of Main Mode. With a PSK its second message carries a hash an eavesdropper can attack offline; goipsec logs a warning."},
	{Path: conn + ".weak_algorithms", Default: "no", Doc: "goipsec extension, IKEv1 only (version = 1): allow 3des, sha1/prfsha1 and modp1024 in this connection's proposals and esp_proposals, for clients that offer nothing else (Windows' built-in L2TP/IPsec client). SAs using them are logged as weak."},
	{Path: conn + ".dscp", Default: "000000", Support: DefaultOnly, Doc: "DSCP for IKE packets."},
	{Path: conn + ".childless", Default: "allow", Doc: "Childless IKE SAs (RFC 6023): allow (accept them; initiate one only without children), prefer (also initiate childless when the peer supports it), force (only childless, both roles), never (refuse them)."},
	{Path: conn + ".vips", Default: "", Doc: "Virtual IPs to request from the gateway in a configuration payload (RFC 7296 §3.15), comma separated: 0.0.0.0 and :: ask for any IPv4 and IPv6 address, a specific address asks for that one. Received addresses are put on the TUN device, are the source of the tunnelled traffic (local_ts dynamic becomes the virtual IP), and received DNS servers are installed while the IKE SA is up."},
	{Path: conn + ".pools", Default: "", Doc: "Pools (pools section, or radius for Framed-IP-Address/Framed-Pool from RADIUS) to assign virtual IPs from, comma separated, tried in order per address family; a client asking for an address gets one lease per identity (its EAP identity when it authenticated with EAP). IKEv1 (version = 1) Mode Config leases from the IPv4 pools of the list, in order, by XAuth user name or identity; the L2TP server (l2tp.lns.pool) leases from the same pools, so IKEv2, IKEv1 and PPP clients never get the same address."},
	{Path: conn + ".redirect_to", Default: "", Doc: "goipsec extension: send every new client that supports redirects (RFC 5685) to this gateway (an address or a DNS name) in the IKE_SA_INIT response, for maintenance or load distribution. Established clients are moved with swanctl --redirect. As a client goipsec always follows redirects (at most 5 within 5 minutes)."},
	{Path: conn + ".if_id_in", Support: NotSupported, Doc: "XFRM interface ID for all children: set it per child (children.<child>.if_id_in)."},
	{Path: conn + ".if_id_out", Support: NotSupported, Doc: "XFRM interface ID for all children: set it per child (children.<child>.if_id_out)."},
	{Path: conn + ".mediation", Support: NotSupported, Doc: "IKEv2 mediation extension."},
	{Path: conn + ".mediated_by", Support: NotSupported, Doc: "IKEv2 mediation extension."},
	{Path: conn + ".mediation_peer", Support: NotSupported, Doc: "IKEv2 mediation extension."},
	{Path: conn + ".ppk_id", Default: "", Doc: "Identity of the post-quantum preshared key (RFC 8784) to mix into the IKE SA's keys; the key is a secrets.ppk<suffix> section with this id."},
	{Path: conn + ".ppk_required", Default: "no", Doc: "Refuse the IKE SA unless a post-quantum preshared key is used (RFC 9867 or RFC 8784): no fallback to NO_PPK_AUTH or to an IKE SA without it, in either role."},
	{Path: conn + ".ppk_intermediate", Default: "yes", Doc: "Offer and accept RFC 9867 (the PPK mixed in IKE_INTERMEDIATE, so it protects IKE_AUTH too) with peers that announce USE_PPK_INT; no: RFC 8784 only (the PPK in IKE_AUTH), for a peer whose RFC 9867 does not work with goipsec's. goipsec-specific."},
	{Path: conn + ".ocsp", Default: "reply", Support: DefaultOnly, Doc: "OCSP responses in IKE (RFC 4806); goipsec asks responders itself (remote.revocation)."},

	{Path: local, Section: true, Doc: "A local authentication round; several (local-1, local-2, ...) authenticate in several rounds (RFC 4739), ordered by round, then by name."},
	{Path: local + ".auth", Default: "pubkey", Doc: "Local authentication: pubkey (signature with the private key of local.certs or local.pubkeys), rsa, rsa/pss, ecdsa or ed25519 with optional hashes (pubkey-sha384, rsa/pss-sha256), psk, or eap (the method the gateway asks for) / eap-md5, eap-mschapv2, eap-tls, eap-ttls as EAP client (RFC 7296 §2.16) with the password of secrets.eap<suffix>. xauth is IKEv1 only."},
	{Path: local + ".round", Default: "0", Doc: "Order of this round among the local rounds."},
	{Path: local + ".eap_id", Default: "the IKE identity", Doc: "Our EAP identity (EAP-Identity answer, user name of MSCHAPv2/MD5/TTLS, the identity the password is found by)."},
	{Path: local + ".aaa_id", Default: "", Doc: "Identity the EAP server (EAP-TLS/TTLS server certificate) must have; default: the gateway's IKE identity."},
	{Path: local + ".id", Default: "the certificate's subject, else the local IP address", Doc: "Local IKE identity: IP address, FQDN, user@FQDN, a distinguished name (\"C=CH, O=Example, CN=gw\"), or typed (fqdn:, rfc822:, keyid:#hex, asn1dn:, …)."},
	{Path: local + ".certs", Default: "", Doc: "Our certificate (the first is used), a file in x509/ or an absolute path; empty: a certificate in x509/ holding local.id."},
	{Path: local + ".cert<suffix>", Section: true, Support: NotSupported, Doc: "Certificate on a token."},
	{Path: local + ".pubkeys", Default: "", Doc: "Our raw public key (the first is used) instead of a certificate, a file in pubkey/ or an absolute path; its private key must be loaded."},
	{Path: local + ".xauth_id", Support: NotSupported, Doc: "XAuth identity (IKEv1)."},

	{Path: remot, Section: true, Doc: "A remote authentication round; several (remote-1, remote-2) require several rounds of the peer (RFC 4739)."},
	{Path: remot + ".auth", Default: "pubkey", Doc: "Authentication expected from the peer: pubkey, or constraints on its key and signature (rsa, rsa-2048, rsa/pss, ecdsa-384, ed25519, pubkey-sha256-sha384, …-ike:rsa/pss-sha256), psk, or EAP as server: eap-md5, eap-mschapv2, eap-tls, eap-ttls (PAP or MSCHAPv2 inside), eap-dynamic (the client may pick among those), eap-radius (relay to the RADIUS servers of the radius section). IKEv1 (version = 1): a second remote round with auth = xauth asks for a user name and password after phase 1."},
	{Path: remot + ".round", Default: "0", Doc: "Order of this round among the remote rounds."},
	{Path: remot + ".id", Default: "%any", Doc: "Identity expected from the peer, same forms as local id; %any accepts any; a DN may use * values (\"CN=*, O=Example\") and an FQDN or e-mail a leading * (*.example.com)."},
	{Path: remot + ".groups", Support: NotSupported, Doc: "Authorization groups."},
	{Path: remot + ".cert_policy", Default: "", Doc: "Certificate policy OIDs the peer's certificate must carry, comma separated."},
	{Path: remot + ".certs", Default: "", Doc: "Pinned peer certificates (x509/ or absolute paths): the peer must use one of them, trusted as such."},
	{Path: remot + ".cert<suffix>", Section: true, Support: NotSupported, Doc: "Certificate on a token."},
	{Path: remot + ".cacerts", Default: "", Doc: "The peer's chain must lead to one of these CA certificates (x509ca/ or absolute paths)."},
	{Path: remot + ".cacert<suffix>", Section: true, Support: NotSupported, Doc: "CA certificate on a token."},
	{Path: remot + ".ca_id", Default: "", Doc: "Identity (usually the DN) of a CA that must be in the peer's trust chain."},
	{Path: remot + ".pubkeys", Default: "", Doc: "Raw public keys to accept from the peer instead of certificates (pubkey/ or absolute paths)."},
	{Path: remot + ".revocation", Default: "relaxed", Doc: "Certificate revocation checking (OCSP, CRL files, CRL distribution points over HTTP): strict (status must be known to be good), ifuri (fail when a URI gave no answer), relaxed (fail only when revoked)."},
	{Path: remot + ".eap_id", Default: "the IKE identity", Doc: "EAP identity expected from the client; %any asks for it with EAP-Identity first."},

	{Path: conn + ".children", Section: true, Doc: "The CHILD SAs of the connection, one subsection each."},
	{Path: child, Section: true, Doc: "A CHILD SA named <child>."},
	{Path: child + ".local_ts", Default: "dynamic", Doc: "Local traffic selectors, comma separated: CIDR, address, range a-b or dynamic, each optionally with [proto/port] such as [tcp/80] or [udp/1000-2000]."},
	{Path: child + ".remote_ts", Default: "dynamic", Doc: "Remote traffic selectors, same forms."},
	{Path: child + ".esp_proposals", Default: "default (unless ah_proposals is set)", Doc: "ESP proposals, comma separated strongSwan keywords; a key exchange method asks for PFS."},
	{Path: child + ".ah_proposals", Default: "", Doc: "AH proposals (integrity only, RFC 4302): with them the CHILD SA negotiates AH instead of ESP; with esp_proposals too, both are offered as alternatives in the order written (IKEv2 has no AH+ESP bundles). AH cannot cross a NAT (UDP encapsulation, RFC 3948, carries ESP only) nor travel in TCP (RFC 9329)."},
	{Path: child + ".mode", Default: "tunnel", Doc: "IPsec mode: tunnel or transport. transport_proxy, beet, iptfs (strongSwan 6), pass and drop are not supported yet."},
	{Path: child + ".start_action", Default: "none", Doc: "After loading: none, trap (negotiate on first packet) or start."},
	{Path: child + ".close_action", Default: "none", Doc: "When the peer closes the CHILD SA: none, trap or start."},
	{Path: child + ".dpd_action", Default: "clear", Doc: "When the peer is dead: clear, trap or restart."},
	{Path: child + ".rekey_time", Default: "1h", Doc: "Time to rekey the CHILD SA; 0 disables rekeying by time."},
	{Path: child + ".life_time", Default: "rekey_time + 10%", Doc: "Hard lifetime of the CHILD SA."},
	{Path: child + ".rand_time", Support: NotSupported, Doc: "goipsec subtracts a random 0-10% of rekey_time; not configurable yet."},
	{Path: child + ".rekey_bytes", Default: "0", Doc: "Bytes before rekeying; 0 disables it."},
	{Path: child + ".life_bytes", Default: "rekey_bytes + 10%", Doc: "Bytes before the CHILD SA is closed."},
	{Path: child + ".rand_bytes", Support: NotSupported, Doc: "Random bytes subtracted from rekey_bytes; not supported yet."},
	{Path: child + ".rekey_packets", Default: "0", Doc: "Packets before rekeying; 0 disables it."},
	{Path: child + ".life_packets", Default: "rekey_packets + 10%", Doc: "Packets before the CHILD SA is closed."},
	{Path: child + ".rand_packets", Support: NotSupported, Doc: "Random packets subtracted from rekey_packets; not supported yet."},
	{Path: child + ".replay_window", Default: "1024", Doc: "Anti-replay window in packets, 0 disables replay protection, at most 65536. (strongSwan's default is 32.)"},
	{Path: child + ".inactivity", Default: "0s", Support: DefaultOnly, Doc: "Closing idle CHILD SAs is not supported yet; only 0."},
	{Path: child + ".tfc_padding", Default: "0", Doc: "Pad ESP packets to at least this many bytes, or mtu; 0 disables it (RFC 4303 §2.7)."},
	{Path: child + ".mss_clamp", Default: "auto in tunnel mode, no in transport mode", Doc: "goipsec's own: TCP MSS clamping of SYNs entering and leaving the tunnel, so that full-sized segments fit the path once encapsulated. auto (or yes) lowers the MSS option to what fits the path MTU towards the peer after the IPsec and UDP overhead and the TUN MTU; a number of bytes (at least 88) caps it there; no leaves SYNs alone."},
	{Path: child + ".copy_df", Default: "no", Support: DefaultOnly, Doc: "Copying the inner DF bit to the outer header is not supported yet (the kernel sets the outer header); only no."},
	{Path: child + ".copy_ecn", Default: "no", Support: DefaultOnly, Doc: "ECN copying (RFC 6040) is not supported yet; only no."},
	{Path: child + ".copy_dscp", Default: "no", Support: DefaultOnly, Doc: "DSCP copying is not supported yet; only no."},
	{Path: child + ".hostaccess", Default: "no", Doc: "Passed to the updown script as PLUTO_HOST_ACCESS."},
	{Path: child + ".policies", Default: "yes", Doc: "Install policies for the CHILD SA; no installs its SAs only (something else steers traffic to them, e.g. policies of your own); needs daemon.dataplane = kernel, not with start_action = trap."},
	{Path: child + ".policies_fwd_out", Default: "no", Doc: "Also install forward policies for the outbound direction (for gateways whose forwarded traffic meets a drop policy); needs daemon.dataplane = kernel."},
	{Path: child + ".ipcomp", Default: "no", Support: DefaultOnly, Doc: "IP payload compression."},
	{Path: child + ".hw_offload", Default: "no", Support: DefaultOnly, Doc: "Kernel hardware offload."},
	{Path: child + ".per_cpu_sas", Default: "no", Support: DefaultOnly, Doc: "Per-CPU SAs (RFC 9611)."},
	{Path: child + ".sha256_96", Default: "no", Support: DefaultOnly, Doc: "Truncate HMAC-SHA-256 to 96 bits for old Linux peers."},
	{Path: child + ".reqid", Default: "0", Support: DefaultOnly, Doc: "Fixed kernel reqid."},
	{Path: child + ".priority", Default: "0", Doc: "Fixed policy priority (lower wins); 0 computes one from the selectors, more specific first."},
	{Path: child + ".updown", Default: "", Doc: "Script run (with strongSwan's PLUTO_* environment and the verb up-client, down-client, up-host, …) when the Child SA comes up, goes down or is rekeyed; at most daemon.updown_timeout, failures are logged."},
	{Path: child + ".interface", Default: "", Doc: "Restrict the outbound policies to traffic leaving through this network interface (as strongSwan, inbound policies are not restricted); needs daemon.dataplane = kernel."},
	{Path: child + ".mark_in", Default: "0/0x00000000", Doc: "Mark (value[/mask], mask default 0xffffffff) that inbound packets need to match the inbound policies (and the inbound SA with mark_in_sa); %unique: a value of its own for each Child SA (kept across rekeys), %unique-dir: also different from mark_out's; needs daemon.dataplane = kernel."},
	{Path: child + ".mark_in_sa", Default: "no", Doc: "Also put mark_in on the inbound SA (by default only the inbound policies carry it: the SA is found by SPI, so packets may be marked after decryption); needs daemon.dataplane = kernel."},
	{Path: child + ".mark_out", Default: "0/0x00000000", Doc: "Mark (value[/mask]) that outbound packets need to match the outbound policy and SA; %unique and %unique-dir as for mark_in; needs daemon.dataplane = kernel."},
	{Path: child + ".set_mark_in", Default: "0/0x00000000", Doc: "Mark (value[/mask]) the kernel puts on packets after the inbound SA decrypted them; %same[/mask]: mark_in's value (fixed or unique); needs daemon.dataplane = kernel (Linux 4.19 or later)."},
	{Path: child + ".set_mark_out", Default: "0/0x00000000", Doc: "Mark (value[/mask]) the kernel puts on packets after the outbound SA encrypted them (for policy routing of the ESP packets); %same[/mask]: mark_out's value; needs daemon.dataplane = kernel."},
	{Path: child + ".if_id_in", Default: "0", Doc: "XFRM interface ID of the inbound SA and policies (route-based VPNs over an xfrm interface); %unique: a value of its own for each Child SA (kept across rekeys), %unique-dir: also different from if_id_out's; needs daemon.dataplane = kernel."},
	{Path: child + ".if_id_out", Default: "0", Doc: "XFRM interface ID of the outbound SA and policy (no routes are installed for the Child SA then); %unique and %unique-dir as for if_id_in; needs daemon.dataplane = kernel."},
	{Path: child + ".label", Support: NotSupported, Doc: "Security labels."},
	{Path: child + ".label_mode", Support: NotSupported, Doc: "Security labels."},
	{Path: child + ".icmp", Default: "no", Support: DefaultOnly, Doc: "Forwarding ICMP errors from outside the traffic selectors (strongSwan 6) is not supported yet; only no."},

	{Path: "secrets", Section: true, Doc: "Credentials, one subsection each; the name's prefix gives the type."},
	{Path: "secrets.ike<suffix>", Section: true, Doc: "An IKE preshared key."},
	{Path: "secrets.ike<suffix>.id<suffix>", Default: "", Doc: "An identity the key belongs to (id, id-1, id_peer, …); without any the key matches every identity."},
	{Path: "secrets.ike<suffix>.secret", Default: "", Doc: "The key: text (quote it to keep spaces or #), 0x followed by hex, or 0s followed by base64."},
	{Path: "secrets.eap<suffix>", Section: true, Doc: "A user's password: EAP-MD5, EAP-MSCHAPv2 and TTLS-PAP as server (the users) and as client (our password); IKEv1 XAuth users and PPP users of the L2TP server (PAP, CHAP, MS-CHAPv2)."},
	{Path: "secrets.eap<suffix>.id<suffix>", Default: "", Doc: "The user name(s) (EAP identities) the password belongs to."},
	{Path: "secrets.eap<suffix>.secret", Default: "", Doc: "The password: text, 0x hex or 0s base64."},
	{Path: "secrets.xauth<suffix>", Section: true, Doc: "A user's password, as eap<suffix> (strongSwan's XAuth secrets serve EAP users too)."},
	{Path: "secrets.xauth<suffix>.id<suffix>", Default: "", Doc: "The user name(s) the password belongs to."},
	{Path: "secrets.xauth<suffix>.secret", Default: "", Doc: "The password: text, 0x hex or 0s base64."},
	{Path: "secrets.ntlm<suffix>", Section: true, Support: NotSupported, Doc: "NTLM secret."},
	{Path: "secrets.ppk<suffix>", Section: true, Doc: "A post-quantum preshared key (RFC 8784)."},
	{Path: "secrets.ppk<suffix>.id<suffix>", Default: "", Doc: "A PPK identity (ppk_id) the key belongs to; at least one is required."},
	{Path: "secrets.ppk<suffix>.secret", Default: "", Doc: "The key (as for IKE secrets); it should hold at least 256 bits of entropy (RFC 8784 §6)."},
	{Path: "secrets.private<suffix>", Section: true, Doc: "Passphrase of an encrypted private key in private/."},
	{Path: "secrets.private<suffix>.file", Default: "", Doc: "The key file, relative to private/ or absolute (required)."},
	{Path: "secrets.private<suffix>.secret", Default: "", Doc: "The passphrase, in the forms of secrets.ike.secret."},
	{Path: "secrets.rsa<suffix>", Section: true, Doc: "Passphrase of an encrypted key in rsa/."},
	{Path: "secrets.rsa<suffix>.file", Default: "", Doc: "The key file, relative to rsa/ or absolute (required)."},
	{Path: "secrets.rsa<suffix>.secret", Default: "", Doc: "The passphrase."},
	{Path: "secrets.ecdsa<suffix>", Section: true, Doc: "Passphrase of an encrypted key in ecdsa/."},
	{Path: "secrets.ecdsa<suffix>.file", Default: "", Doc: "The key file, relative to ecdsa/ or absolute (required)."},
	{Path: "secrets.ecdsa<suffix>.secret", Default: "", Doc: "The passphrase."},
	{Path: "secrets.pkcs8<suffix>", Section: true, Doc: "Passphrase of an encrypted PKCS#8 key in pkcs8/."},
	{Path: "secrets.pkcs8<suffix>.file", Default: "", Doc: "The key file, relative to pkcs8/ or absolute (required)."},
	{Path: "secrets.pkcs8<suffix>.secret", Default: "", Doc: "The passphrase."},
	{Path: "secrets.pkcs12<suffix>", Section: true, Doc: "Passphrase of a PKCS#12 container in pkcs12/."},
	{Path: "secrets.pkcs12<suffix>.file", Default: "", Doc: "The container, relative to pkcs12/ or absolute (required)."},
	{Path: "secrets.pkcs12<suffix>.secret", Default: "", Doc: "The passphrase."},
	{Path: "secrets.token<suffix>", Section: true, Support: NotSupported, Doc: "Key on a token."},

	{Path: "manual", Section: true, Doc: "goipsec's own section: manually keyed SAs, one subsection each (like ip xfrm state or setkey)."},
	{Path: man, Section: true, Doc: "A pair of manually keyed SAs (inbound and outbound) named <name>."},
	{Path: man + ".local_addrs", Default: "", Doc: "The local outer address: exactly one IP address (required)."},
	{Path: man + ".remote_addrs", Default: "", Doc: "The remote outer address: exactly one IP address of the same family (required)."},
	{Path: man + ".mode", Default: "tunnel", Doc: "tunnel or transport."},
	{Path: man + ".protocol", Default: "esp", Doc: "esp or ah."},
	{Path: man + ".encap", Default: "no", Doc: "ESP in UDP (RFC 3948); no sends raw IP protocol 50 or 51."},
	{Path: man + ".local_port", Default: "4500", Doc: "Local UDP port; only with encap = yes."},
	{Path: man + ".remote_port", Default: "4500", Doc: "Remote UDP port; only with encap = yes."},
	{Path: man + ".local_ts", Default: "dynamic", Doc: "Local traffic selectors as in children; dynamic is the local address."},
	{Path: man + ".remote_ts", Default: "dynamic", Doc: "Remote traffic selectors; dynamic is the remote address."},
	{Path: man + ".proposal", Default: "", Doc: "Exactly one algorithm of each kind in strongSwan keywords, no key exchange, e.g. aes256gcm16 or aes128-sha256 (required)."},
	{Path: man + ".esn", Default: "no", Doc: "Extended sequence numbers; may also be given as esn/noesn in the proposal."},
	{Path: man + ".replay_window", Default: "1024", Doc: "Anti-replay window of the inbound SA in packets, 0 disables it, at most 65536."},
	{Path: man + ".tfc_padding", Default: "0", Doc: "Pad outbound ESP packets to at least this many bytes, or mtu."},
	{Path: man + ".mss_clamp", Default: "auto in tunnel mode, no in transport mode", Doc: "TCP MSS clamping, as in children: auto (or yes), a number of bytes, or no."},
	{Path: man + ".outbound", Section: true, Doc: "The outbound SA (required)."},
	{Path: man + ".outbound.spi", Default: "", Doc: "SPI, 0x hex or decimal, at least 256 (RFC 4303 §2.1) (required)."},
	{Path: man + ".outbound.enc_key", Default: "", Doc: "Encryption key in hex (0x…, ':' separators allowed); AES-GCM and ChaCha20-Poly1305 keys end with the 4-byte salt."},
	{Path: man + ".outbound.integ_key", Default: "", Doc: "Integrity key in hex; only for non-AEAD proposals."},
	{Path: man + ".inbound", Section: true, Doc: "The inbound SA (required)."},
	{Path: man + ".inbound.spi", Default: "", Doc: "SPI, as for outbound."},
	{Path: man + ".inbound.enc_key", Default: "", Doc: "Encryption key, as for outbound."},
	{Path: man + ".inbound.integ_key", Default: "", Doc: "Integrity key, as for outbound."},

	{Path: "daemon", Section: true, Doc: "goipsec's own section: settings of the goipsec process."},
	{Path: "daemon.dataplane", Default: "userspace", Doc: "userspace (goipsec's own ESP/AH over a TUN device; runs anywhere) or kernel (Linux XFRM: the kernel's ESP/AH, needs the esp4/esp6 modules; see docs/kernel-dataplane.md)."},
	{Path: "daemon.tun_name", Default: "goipsec0", Doc: "Name of the TUN device (at most 15 bytes)."},
	{Path: "daemon.mtu", Default: "1400", Doc: "MTU of the TUN device, 576 to 65535. 1400 (as strongSwan's kernel-libipsec) keeps AEAD ESP in UDP over IPv6 (at most 85 bytes of overhead) inside a 1500-byte path; AES-CBC with a 32-byte ICV over IPv6 and UDP adds up to 121 bytes, so use 1376 for that (otherwise the kernel fragments the outer packets)."},
	{Path: "daemon.vici_socket", Default: "/run/goipsec/vici.sock", Doc: "Path of the VICI control socket; empty disables it."},
	{Path: "daemon.metrics_listen", Default: "", Doc: "host:port for the Prometheus metrics endpoint; empty disables it."},
	{Path: "daemon.state_dir", Default: "/var/lib/goipsec", Doc: "Directory for state kept across restarts (pool leases in leases.json); empty keeps it in memory only."},
	{Path: "daemon.resolv_conf", Default: "/etc/resolv.conf", Doc: "File the DNS servers received with a virtual IP are written to (the previous content is restored when the IKE SA goes); empty leaves DNS alone."},
	{Path: "daemon.updown_timeout", Default: "10s", Doc: "Longest time an updown script may run before it is killed (its failure is logged)."},
	{Path: "daemon.ike_port", Default: "500", Doc: "UDP port for IKE."},
	{Path: "daemon.tcp_listen", Default: "", Doc: "TCP ports to accept IKE and ESP in TCP on (RFC 9329), comma separated, e.g. 4500, 443; empty: none."},
	{Path: "daemon.natt_port", Default: "4500", Doc: "UDP port for IKE and ESP behind NAT (RFC 3948)."},
	{Path: "daemon.raw_esp_ring", Default: "yes", Doc: "With the userspace data plane, send raw ESP (encap = no) through an AF_PACKET TX ring where the route leads to an Ethernet-like interface with a resolved next hop (1.3-1.7x the throughput of the raw socket at about half its CPU per byte, see docs/performance.md); packets the ring cannot take still go through the raw socket; no sends every raw ESP packet through the raw IP socket, which also runs netfilter's OUTPUT and POSTROUTING hooks on it."},
	{Path: "daemon.raw_esp_xdp", Default: "no", Doc: "With the userspace data plane, receive raw ESP (encap = no) through AF_XDP: an XDP program on the interface towards each inbound raw ESP SA's peer hands ESP to the SAs' local addresses to the daemon in batches, skipping the kernel's IP input path (and netfilter's PREROUTING and INPUT hooks) for it; everything else, and ESP on interfaces where XDP cannot be attached, still reaches the raw socket. The program is removed when the daemon stops. See docs/performance.md."},
	{Path: "daemon.retransmit_timeout", Default: "4s", Doc: "First retransmission timeout of an IKE request."},
	{Path: "daemon.retransmit_base", Default: "1.8", Doc: "Each retransmission waits retransmit_base times longer than the one before (at least 1)."},
	{Path: "daemon.retransmit_tries", Default: "5", Doc: "Retransmissions before giving up."},
	{Path: "daemon.fragment_size", Default: "1280", Doc: "Largest IKE message (the UDP payload, without IP and UDP headers) sent whole when IKE fragmentation (RFC 7383) is on at both ends; larger ones, such as IKE_INTERMEDIATE with an ML-KEM-1024 key, leave in fragments of at most this size. 256 to 65535. Unlike strongSwan's charon.fragment_size it does not count the IP and UDP headers. Not used in TCP."},
	{Path: "daemon.retransmit_limit", Default: "0s", Doc: "Upper limit of a single retransmission timeout; 0 means no limit."},
	{Path: "daemon.fwmark", Default: "0x4500", Doc: "Mark on goipsec's own packets (IKE, ESP, bypassed), which keeps them out of the route table below; change it if 0x4500 is used otherwise."},
	{Path: "daemon.route_table", Default: "4500", Doc: "Routing table that points the remote traffic selectors at the TUN device."},
	{Path: "daemon.rule_priority", Default: "4500", Doc: "Priority of the routing rule \"not fwmark <fwmark> lookup <route_table>\"."},
	{Path: "daemon.log", Section: true, Doc: "Logging."},
	{Path: "daemon.log.level", Default: "info", Doc: "debug, info, warn or error."},
	{Path: "daemon.log.format", Default: "text", Doc: "text or json."},
	{Path: "daemon.log.cfg", Default: "", Doc: "Level of the configuration subsystem (loading, reloading, manual SAs); empty: daemon.log.level."},
	{Path: "daemon.log.ike", Default: "", Doc: "Level of IKE negotiation logs (exchanges, SAs, failures)."},
	{Path: "daemon.log.net", Default: "", Doc: "Level of IKE socket logs."},
	{Path: "daemon.log.enc", Default: "", Doc: "Level of IKE message encoding logs."},
	{Path: "daemon.log.esp", Default: "", Doc: "Level of ESP/AH processing logs."},
	{Path: "daemon.log.vici", Default: "", Doc: "Level of control socket (VICI) logs."},
	{Path: "daemon.log.dataplane", Default: "", Doc: "Level of data plane logs (TUN, routes, SA installation)."},
	{Path: "daemon.log.keylog_file", Default: "", Doc: "File to append IKE and ESP keys to, for Wireshark; empty disables it. Secret material: for debugging only."},

	{Path: "pools", Section: true, Doc: "Virtual IP address pools for remote clients (connections.<conn>.pools), one subsection each; leases survive reloads and restarts (daemon.state_dir)."},
	{Path: "pools.<name>", Section: true, Doc: "A pool named <name>."},
	{Path: "pools.<name>.addrs", Default: "", Doc: "The addresses: a subnet (10.3.0.0/24, fd00:3::/64: the network, broadcast and IPv6 subnet-router anycast addresses are left out), a range a-b, or one address (required)."},
	{Path: "pools.<name>.dns", Default: "", Doc: "DNS servers handed out (INTERNAL_IP4_DNS, INTERNAL_IP6_DNS), comma separated."},
	{Path: "pools.<name>.nbns", Default: "", Doc: "WINS servers (INTERNAL_IP4_NBNS)."},
	{Path: "pools.<name>.dhcp", Default: "", Doc: "DHCP servers (INTERNAL_IP4_DHCP, INTERNAL_IP6_DHCP)."},
	{Path: "pools.<name>.netmask", Default: "", Doc: "Netmask handed out (INTERNAL_IP4_NETMASK), e.g. 255.255.255.0."},
	{Path: "pools.<name>.server", Default: "", Doc: "Internal address of the gateway (INTERNAL_IP4_SERVER, INTERNAL_IP6_SERVER)."},
	{Path: "pools.<name>.subnet", Default: "", Doc: "Protected subnets announced to the client (INTERNAL_IP4_SUBNET, INTERNAL_IP6_SUBNET), comma separated."},
	{Path: "pools.<name>.split_include", Default: "", Doc: "Subnets the client should send through the tunnel; sent as INTERNAL_IP4_SUBNET/INTERNAL_IP6_SUBNET in IKEv2 (Cisco Unity split-include in IKEv1)."},
	{Path: "pools.<name>.split_exclude", Default: "", Support: NoEffect, Doc: "Cisco Unity split-exclude (IKEv1 only): accepted, IKEv2 has no such attribute."},
	{Path: "pools.<name>.<attr>", Default: "", Doc: "Any other configuration attribute by its number (1-32767): addresses, or 0x hex, or text."},
	{Path: "radius", Section: true, Doc: "goipsec's section for strongSwan's eap-radius plugin settings: RADIUS servers for remote.auth = eap-radius (EAP relayed, RFC 3579) and pools = radius (Framed-IP-Address, Framed-Pool), accounting (RFC 2866) and Disconnect/CoA (RFC 5176)."},
	{Path: "radius.nas_identifier", Default: "goipsec", Doc: "NAS-Identifier sent in every request."},
	{Path: "radius.accounting", Default: "no", Doc: "Send accounting Start, Interim-Update and Stop records for the IKE SAs of eap-radius connections, with byte and packet counters and the Class of the Access-Accept."},
	{Path: "radius.accounting_interval", Default: "0s", Doc: "Interval of Interim-Update records; 0 sends none."},
	{Path: "radius.timeout", Default: "3s", Doc: "How long one server gets to answer before the next is tried."},
	{Path: "radius.retry", Default: "1s", Doc: "Retransmission interval of a request to one server."},
	{Path: "radius.servers", Section: true, Doc: "The RADIUS servers, tried by preference; one that does not answer is held back for 30 s (failover)."},
	{Path: "radius.servers.<name>", Section: true, Doc: "A server named <name>."},
	{Path: "radius.servers.<name>.address", Default: "", Doc: "The server's IP address (required)."},
	{Path: "radius.servers.<name>.secret", Default: "", Doc: "The shared secret (required): text, 0x hex or 0s base64."},
	{Path: "radius.servers.<name>.auth_port", Default: "1812", Doc: "Port for Access-Requests."},
	{Path: "radius.servers.<name>.acct_port", Default: "1813", Doc: "Port for Accounting-Requests."},
	{Path: "radius.servers.<name>.preference", Default: "0", Doc: "Higher is tried first."},
	{Path: "radius.dae", Section: true, Doc: "Dynamic Authorization Extensions (RFC 5176): the server may end a session (Disconnect-Request) or give it a Session-Timeout (CoA-Request)."},
	{Path: "radius.dae.enable", Default: "no", Doc: "Listen for Disconnect and CoA requests."},
	{Path: "radius.dae.listen", Default: "0.0.0.0", Doc: "Address to listen on."},
	{Path: "radius.dae.port", Default: "3799", Doc: "UDP port to listen on."},
	{Path: "radius.dae.secret", Default: "", Doc: "Secret the requests are authenticated with (required)."},

	{Path: "l2tp", Section: true, Doc: "goipsec extension: the built-in L2TP/IPsec server and client (RFC 2661, PPP in userspace)."},
	{Path: "l2tp.lns", Section: true, Doc: "The L2TP server (LNS) on UDP 1701; protect it with a transport-mode IKEv1 connection whose child selectors are dynamic[udp/1701]."},
	{Path: "l2tp.lns.pool", Default: "", Doc: "Name of the pools entry client addresses come from (required)."},
	{Path: "l2tp.lns.local_ip", Default: "", Doc: "The server's own PPP address (default: the pool's last address, kept out of it)."},
	{Path: "l2tp.lns.auth", Default: "mschapv2, chap, pap", Doc: "PPP authentication protocols accepted, preferred first: mschapv2, chap, pap. Users come from secrets.eap<suffix>/xauth<suffix> or RADIUS (users)."},
	{Path: "l2tp.lns.users", Default: "secrets", Doc: "Where PPP users are checked: secrets (secrets.eap<suffix>/xauth<suffix>) or radius (the servers of the radius section, as pppd's radius plugin does: PAP as User-Password, CHAP as CHAP-Password/CHAP-Challenge, MS-CHAPv2 as the Microsoft attributes of RFC 2548; the check runs outside the L2TP service, which keeps serving other clients meanwhile)."},
	{Path: "l2tp.lns.mru", Default: "1360", Doc: "PPP MRU announced to clients: the TUN device's MTU (1400) less the UDP, L2TP and PPP headers (40 bytes), so that a client's full-sized packet crosses the tunnel unfragmented."},
	{Path: "l2tp.lns.port", Default: "1701", Doc: "UDP port of the server."},
	{Path: "l2tp.lac<suffix>", Section: true, Doc: "An L2TP client (LAC) connection dialling an L2TP server."},
	{Path: "l2tp.lac<suffix>.remote", Default: "", Doc: "host:port or address of the L2TP server (port 1701 when omitted)."},
	{Path: "l2tp.lac<suffix>.user", Default: "", Doc: "PPP user name; its password comes from secrets.eap<suffix>/xauth<suffix>."},
	{Path: "l2tp.lac<suffix>.auto", Default: "yes", Doc: "Dial when the configuration is loaded."},
	{Path: "authorities", Section: true, Doc: "Certification authorities: a CA certificate with where to find revocation information."},
	{Path: "authorities.<name>", Section: true, Doc: "An authority named <name>."},
	{Path: "authorities.<name>.cacert", Default: "", Doc: "The CA certificate, relative to x509ca/ or absolute (this or file is required)."},
	{Path: "authorities.<name>.file", Default: "", Doc: "The CA certificate file, relative to x509ca/ or absolute."},
	{Path: "authorities.<name>.crl_uris", Default: "", Doc: "CRL distribution points (http:// or https://), comma separated, for certificates this CA issued."},
	{Path: "authorities.<name>.ocsp_uris", Default: "", Doc: "OCSP responders (http:// or https://), comma separated."},
	{Path: "authorities.<name>.cert_uri_base", Default: "", Support: NoEffect, Doc: "Base URI of hash-and-URL certificates; accepted, not used (goipsec does not fetch certificates)."},
	{Path: "authorities.<name>.handle", Support: NotSupported, Doc: "CA certificate on a token."},
	{Path: "authorities.<name>.slot", Support: NotSupported, Doc: "CA certificate on a token."},
	{Path: "authorities.<name>.module", Support: NotSupported, Doc: "CA certificate on a token."},
}

// keyParent returns the parent pattern and the last element of a table path.
func keyParent(p string) (parent, last string) {
	// Placeholders contain no dots, so the last dot separates the element.
	i := strings.LastIndexByte(p, '.')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// lookupKey finds the table entry for a child called name of a section whose pattern path is
// parent. An exact name beats a <suffix> prefix, which beats a <placeholder>.
func lookupKey(parent, name string) (Key, bool) {
	best, bestRank := Key{}, 0
	for _, e := range keysByParent()[parent] {
		k, last := e.key, e.last
		rank := 0
		switch {
		case last == name:
			rank = 3
		case strings.HasSuffix(last, "<suffix>") && strings.HasPrefix(name, strings.TrimSuffix(last, "<suffix>")):
			rank = 2
		case strings.HasPrefix(last, "<") && strings.HasSuffix(last, ">"):
			rank = 1
		}
		if rank > bestRank {
			best, bestRank = k, rank
		}
	}
	return best, bestRank > 0
}

type keyEntry struct {
	key  Key
	last string
}

// keysByParent groups the key table by parent pattern path: lookups touch only the keys of one
// section instead of the whole table (a derived, immutable view of keyTable).
var keysByParent = sync.OnceValue(func() map[string][]keyEntry {
	m := map[string][]keyEntry{}
	for _, k := range keyTable {
		kp, last := keyParent(k.Path)
		m[kp] = append(m[kp], keyEntry{key: k, last: last})
	}
	return m
})

// childNames returns the names allowed directly under a pattern path, for suggestions:
// placeholders are skipped and <suffix> names are given without the suffix.
func childNames(parent string) []string {
	var out []string
	for _, k := range keyTable {
		kp, last := keyParent(k.Path)
		if kp != parent || strings.HasPrefix(last, "<") {
			continue
		}
		out = append(out, strings.TrimSuffix(last, "<suffix>"))
	}
	return out
}

// suggestName returns the name in candidates closest to name, or "" when none is close.
func suggestName(name string, candidates []string) string { return suggest.Closest(name, candidates) }

// Reference renders the key table as the Markdown that docs/configuration.md embeds between its
// "generated" markers; a test keeps the two identical.
func Reference() string {
	var b strings.Builder
	top := ""
	for _, k := range keyTable {
		if !strings.Contains(k.Path, ".") {
			top = k.Path
			fmt.Fprintf(&b, "\n### `%s`", top)
			if k.Support == NotSupported {
				b.WriteString(" (not supported yet)")
			}
			fmt.Fprintf(&b, "\n\n%s\n", k.Doc)
			if k.Support != NotSupported {
				b.WriteString("\n| Key | Default | Support | Meaning |\n|---|---|---|---|\n")
			}
			continue
		}
		name := "`" + strings.TrimPrefix(k.Path, top+".") + "`"
		if k.Section {
			name += " { }"
		}
		def := ""
		switch {
		case strings.Contains(k.Default, " "):
			def = k.Default // a computed default, described in words
		case k.Default != "":
			def = "`" + k.Default + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdEscape(name), mdEscape(def), k.Support, mdEscape(k.Doc))
	}
	return b.String()
}

// mdEscape keeps table cells intact and stops <conn> from being read as HTML.
func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	var b strings.Builder
	inCode := false
	for _, r := range s {
		switch {
		case r == '`':
			inCode = !inCode
			b.WriteRune(r)
		case !inCode && r == '<':
			b.WriteString("&lt;")
		case !inCode && r == '>':
			b.WriteString("&gt;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
