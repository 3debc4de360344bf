package wire

import "strconv"

// PayloadType is the IKEv2 payload type carried in Next Payload fields
// (RFC 7296 §3.2; IANA "IKEv2 Payload Types").
type PayloadType uint8

// Payload types. PayloadNone ends a payload chain.
const (
	PayloadNone           PayloadType = 0
	PayloadSA             PayloadType = 33 // Security Association, §3.3
	PayloadKE             PayloadType = 34 // Key Exchange, §3.4
	PayloadIDi            PayloadType = 35 // Identification - Initiator, §3.5
	PayloadIDr            PayloadType = 36 // Identification - Responder, §3.5
	PayloadCERT           PayloadType = 37 // Certificate, §3.6
	PayloadCERTREQ        PayloadType = 38 // Certificate Request, §3.7
	PayloadAUTH           PayloadType = 39 // Authentication, §3.8
	PayloadNonce          PayloadType = 40 // Nonce (Ni, Nr), §3.9
	PayloadNotify         PayloadType = 41 // Notify, §3.10
	PayloadDelete         PayloadType = 42 // Delete, §3.11
	PayloadVendorID       PayloadType = 43 // Vendor ID, §3.12
	PayloadTSi            PayloadType = 44 // Traffic Selector - Initiator, §3.13
	PayloadTSr            PayloadType = 45 // Traffic Selector - Responder, §3.13
	PayloadSK             PayloadType = 46 // Encrypted and Authenticated, §3.14
	PayloadCP             PayloadType = 47 // Configuration, §3.15
	PayloadEAP            PayloadType = 48 // Extensible Authentication, §3.16
	PayloadGSPM           PayloadType = 49 // Generic Secure Password Methods, RFC 6467 (kept as Unknown)
	PayloadSKF            PayloadType = 53 // Encrypted and Authenticated Fragment, RFC 7383
	PayloadPuzzleSolution PayloadType = 54 // Puzzle Solution, RFC 8019 (kept as Unknown)
)

func (t PayloadType) String() string {
	switch t {
	case PayloadNone:
		return "none"
	case PayloadSA:
		return "SA"
	case PayloadKE:
		return "KE"
	case PayloadIDi:
		return "IDi"
	case PayloadIDr:
		return "IDr"
	case PayloadCERT:
		return "CERT"
	case PayloadCERTREQ:
		return "CERTREQ"
	case PayloadAUTH:
		return "AUTH"
	case PayloadNonce:
		return "Nonce"
	case PayloadNotify:
		return "N"
	case PayloadDelete:
		return "D"
	case PayloadVendorID:
		return "V"
	case PayloadTSi:
		return "TSi"
	case PayloadTSr:
		return "TSr"
	case PayloadSK:
		return "SK"
	case PayloadCP:
		return "CP"
	case PayloadEAP:
		return "EAP"
	case PayloadGSPM:
		return "GSPM"
	case PayloadSKF:
		return "SKF"
	case PayloadPuzzleSolution:
		return "PS"
	}
	return "payload(" + strconv.Itoa(int(t)) + ")"
}

// ExchangeType is the Exchange Type of the IKE header (RFC 7296 §3.1).
type ExchangeType uint8

// Exchange types.
const (
	ExchangeIKESAInit        ExchangeType = 34
	ExchangeIKEAuth          ExchangeType = 35
	ExchangeCreateChildSA    ExchangeType = 36
	ExchangeInformational    ExchangeType = 37
	ExchangeIKESessionResume ExchangeType = 38 // RFC 5723
	ExchangeIKEIntermediate  ExchangeType = 43 // RFC 9242
	ExchangeIKEFollowupKE    ExchangeType = 44 // RFC 9370
)

func (t ExchangeType) String() string {
	switch t {
	case ExchangeIKESAInit:
		return "IKE_SA_INIT"
	case ExchangeIKEAuth:
		return "IKE_AUTH"
	case ExchangeCreateChildSA:
		return "CREATE_CHILD_SA"
	case ExchangeInformational:
		return "INFORMATIONAL"
	case ExchangeIKESessionResume:
		return "IKE_SESSION_RESUME"
	case ExchangeIKEIntermediate:
		return "IKE_INTERMEDIATE"
	case ExchangeIKEFollowupKE:
		return "IKE_FOLLOWUP_KE"
	}
	return "exchange(" + strconv.Itoa(int(t)) + ")"
}

// Flags is the Flags octet of the IKE header (RFC 7296 §3.1). Bits other
// than the three defined ones are kept as received so that decoding and
// re-encoding reproduce the message; senders set them to zero.
type Flags uint8

// Header flags.
const (
	FlagInitiator Flags = 0x08 // sent by the original initiator of the IKE SA
	FlagVersion   Flags = 0x10 // sender can speak a higher major version
	FlagResponse  Flags = 0x20 // this message is a response
)

// ProtocolID names the IPsec protocol of a proposal, Notify or Delete
// (RFC 7296 §3.3.1).
type ProtocolID uint8

// Protocol IDs. ProtoNone is used by Notify payloads that concern no SA.
const (
	ProtoNone ProtocolID = 0
	ProtoIKE  ProtocolID = 1
	ProtoAH   ProtocolID = 2
	ProtoESP  ProtocolID = 3
)

// SPI sizes RFC 7296 §3.3.1 and §3.11 give for each protocol.
const (
	spiSizeIKE   = 8 // rekeying an IKE SA in CREATE_CHILD_SA
	spiSizeChild = 4 // AH and ESP
)

// TransformType is the Transform Type of a transform substructure
// (RFC 7296 §3.3.2, RFC 9370 §2.2.1).
type TransformType uint8

// Transform types.
const (
	TransformENCR   TransformType = 1 // encryption algorithm
	TransformPRF    TransformType = 2 // pseudorandom function
	TransformINTEG  TransformType = 3 // integrity algorithm
	TransformKE     TransformType = 4 // key exchange method (formerly Diffie-Hellman group)
	TransformESN    TransformType = 5 // extended sequence numbers
	TransformADDKE1 TransformType = 6 // additional key exchange 1 (RFC 9370)
	TransformADDKE7 TransformType = 12
)

// AttributeType is the type of a transform attribute, without the AF bit
// (RFC 7296 §3.3.5).
type AttributeType uint16

// AttrKeyLength is the only transform attribute RFC 7296 defines; it is
// sent in TV format and gives the key length in bits.
const AttrKeyLength AttributeType = 14

// IDType is the ID Type of an IDi or IDr payload (RFC 7296 §3.5).
type IDType uint8

// Identification types.
const (
	IDIPv4Addr   IDType = 1
	IDFQDN       IDType = 2
	IDRFC822Addr IDType = 3
	IDIPv6Addr   IDType = 5
	IDDERASN1DN  IDType = 9
	IDDERASN1GN  IDType = 10
	IDKeyID      IDType = 11
	IDFCName     IDType = 12 // RFC 4595
	IDNull       IDType = 13 // RFC 7619
)

// CertEncoding is the Cert Encoding of CERT and CERTREQ payloads
// (RFC 7296 §3.6).
type CertEncoding uint8

// Certificate encodings.
const (
	CertPKCS7           CertEncoding = 1
	CertPGP             CertEncoding = 2
	CertDNSSignedKey    CertEncoding = 3
	CertX509Signature   CertEncoding = 4
	CertKerberosToken   CertEncoding = 6
	CertCRL             CertEncoding = 7
	CertARL             CertEncoding = 8
	CertSPKI            CertEncoding = 9
	CertX509Attribute   CertEncoding = 10
	CertRawRSAKey       CertEncoding = 11
	CertHashURLX509     CertEncoding = 12
	CertHashURLX509Bund CertEncoding = 13
	CertOCSPContent     CertEncoding = 14 // RFC 4806
	CertRawPublicKey    CertEncoding = 15 // RFC 7670
)

// AuthMethod is the Auth Method of an AUTH payload (RFC 7296 §3.8).
type AuthMethod uint8

// Authentication methods.
const (
	AuthRSASignature     AuthMethod = 1
	AuthSharedKeyMIC     AuthMethod = 2
	AuthDSSSignature     AuthMethod = 3
	AuthECDSASHA256P256  AuthMethod = 9  // RFC 4754
	AuthECDSASHA384P384  AuthMethod = 10 // RFC 4754
	AuthECDSASHA512P521  AuthMethod = 11 // RFC 4754
	AuthGenericPassword  AuthMethod = 12 // RFC 6467
	AuthNull             AuthMethod = 13 // RFC 7619
	AuthDigitalSignature AuthMethod = 14 // RFC 7427
)

// TSType is the TS Type of a traffic selector (RFC 7296 §3.13.1).
type TSType uint8

// Traffic selector types.
const (
	TSIPv4AddrRange TSType = 7
	TSIPv6AddrRange TSType = 8
)

// CFGType is the CFG Type of a Configuration payload (RFC 7296 §3.15).
type CFGType uint8

// Configuration payload types.
const (
	CFGRequest CFGType = 1
	CFGReply   CFGType = 2
	CFGSet     CFGType = 3
	CFGAck     CFGType = 4
)

// CPAttributeType is the type of a configuration attribute, without the
// reserved top bit (RFC 7296 §3.15.1).
type CPAttributeType uint16

// Configuration attributes (RFC 7296 §3.15.1 and IANA "IKEv2 Configuration
// Payload Attribute Types"). 5 and 9 are withdrawn.
const (
	InternalIP4Address  CPAttributeType = 1
	InternalIP4Netmask  CPAttributeType = 2
	InternalIP4DNS      CPAttributeType = 3
	InternalIP4NBNS     CPAttributeType = 4
	InternalIP4DHCP     CPAttributeType = 6
	ApplicationVersion  CPAttributeType = 7
	InternalIP6Address  CPAttributeType = 8
	InternalIP6DNS      CPAttributeType = 10
	InternalIP6DHCP     CPAttributeType = 12
	InternalIP4Subnet   CPAttributeType = 13
	SupportedAttributes CPAttributeType = 14
	InternalIP6Subnet   CPAttributeType = 15
	InternalDNSDomain   CPAttributeType = 25 // RFC 8598
)

// EAP codes (RFC 3748 §4). Request and Response carry a Type octet.
const (
	EAPRequest  uint8 = 1
	EAPResponse uint8 = 2
	EAPSuccess  uint8 = 3
	EAPFailure  uint8 = 4
)
