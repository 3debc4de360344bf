package wire

import "fmt"

// NotifyType is an ISAKMP notify message type (RFC 2408 §3.14.1) or an IPsec DOI status (RFC 2407
// §4.6.3) or an extension's (RFC 3706 DPD).
type NotifyType uint16

// Error types (RFC 2408 §3.14.1).
const (
	InvalidPayloadType      NotifyType = 1
	DOINotSupported         NotifyType = 2
	SituationNotSupported   NotifyType = 3
	InvalidCookie           NotifyType = 4
	InvalidMajorVersion     NotifyType = 5
	InvalidMinorVersion     NotifyType = 6
	InvalidExchangeType     NotifyType = 7
	InvalidFlags            NotifyType = 8
	InvalidMessageID        NotifyType = 9
	InvalidProtocolID       NotifyType = 10
	InvalidSPI              NotifyType = 11
	InvalidTransformID      NotifyType = 12
	AttributesNotSupported  NotifyType = 13
	NoProposalChosen        NotifyType = 14
	BadProposalSyntax       NotifyType = 15
	PayloadMalformed        NotifyType = 16
	InvalidKeyInformation   NotifyType = 17
	InvalidIDInformation    NotifyType = 18
	InvalidCertEncoding     NotifyType = 19
	InvalidCertificate      NotifyType = 20
	CertTypeUnsupported     NotifyType = 21
	InvalidCertAuthority    NotifyType = 22
	InvalidHashInformation  NotifyType = 23
	AuthenticationFailed    NotifyType = 24
	InvalidSignature        NotifyType = 25
	AddressNotification     NotifyType = 26
	NotifySALifetime        NotifyType = 27
	CertificateUnavailable  NotifyType = 28
	UnsupportedExchangeType NotifyType = 29
	UnequalPayloadLengths   NotifyType = 30
)

// Status types.
const (
	Connected        NotifyType = 16384 // RFC 2408 §3.14.1 (answer to the commit bit)
	ResponderLife    NotifyType = 24576 // RFC 2407 §4.6.3.1 RESPONDER-LIFETIME
	ReplayStatus     NotifyType = 24577 // RFC 2407 §4.6.3.2
	InitialContact   NotifyType = 24578 // RFC 2407 §4.6.3.3
	RUThere          NotifyType = 36136 // RFC 3706 §5.1 R-U-THERE
	RUThereAck       NotifyType = 36137 // RFC 3706 §5.1 R-U-THERE-ACK
	UnityLoadBalance NotifyType = 40501 // Cisco Unity, ignored
)

// IsError reports whether the type is an error (below 8192, RFC 2408 §3.14.1).
func (n NotifyType) IsError() bool { return n < 8192 }

var notifyNames = map[NotifyType]string{
	InvalidPayloadType: "INVALID_PAYLOAD_TYPE", DOINotSupported: "DOI_NOT_SUPPORTED", SituationNotSupported: "SITUATION_NOT_SUPPORTED",
	InvalidCookie: "INVALID_COOKIE", InvalidMajorVersion: "INVALID_MAJOR_VERSION", InvalidMinorVersion: "INVALID_MINOR_VERSION",
	InvalidExchangeType: "INVALID_EXCHANGE_TYPE", InvalidFlags: "INVALID_FLAGS", InvalidMessageID: "INVALID_MESSAGE_ID",
	InvalidProtocolID: "INVALID_PROTOCOL_ID", InvalidSPI: "INVALID_SPI", InvalidTransformID: "INVALID_TRANSFORM_ID",
	AttributesNotSupported: "ATTRIBUTES_NOT_SUPPORTED", NoProposalChosen: "NO_PROPOSAL_CHOSEN", BadProposalSyntax: "BAD_PROPOSAL_SYNTAX",
	PayloadMalformed: "PAYLOAD_MALFORMED", InvalidKeyInformation: "INVALID_KEY_INFORMATION", InvalidIDInformation: "INVALID_ID_INFORMATION",
	InvalidCertEncoding: "INVALID_CERT_ENCODING", InvalidCertificate: "INVALID_CERTIFICATE", CertTypeUnsupported: "CERT_TYPE_UNSUPPORTED",
	InvalidCertAuthority: "INVALID_CERT_AUTHORITY", InvalidHashInformation: "INVALID_HASH_INFORMATION",
	AuthenticationFailed: "AUTHENTICATION_FAILED", InvalidSignature: "INVALID_SIGNATURE", AddressNotification: "ADDRESS_NOTIFICATION",
	NotifySALifetime: "NOTIFY_SA_LIFETIME", CertificateUnavailable: "CERTIFICATE_UNAVAILABLE",
	UnsupportedExchangeType: "UNSUPPORTED_EXCHANGE_TYPE", UnequalPayloadLengths: "UNEQUAL_PAYLOAD_LENGTHS",
	Connected: "CONNECTED", ResponderLife: "RESPONDER_LIFETIME", ReplayStatus: "REPLAY_STATUS", InitialContact: "INITIAL_CONTACT",
	RUThere: "R_U_THERE", RUThereAck: "R_U_THERE_ACK", UnityLoadBalance: "UNITY_LOAD_BALANCE",
}

func (n NotifyType) String() string {
	if s, ok := notifyNames[n]; ok {
		return s
	}
	return fmt.Sprintf("NOTIFY(%d)", uint16(n))
}

// Error is a decoding failure: where it was found and the notify type that describes it.
type Error struct {
	Offset int
	Msg    string
	Notify NotifyType
}

func (e *Error) Error() string {
	return fmt.Sprintf("ikev1/wire: %s (offset %d)", e.Msg, e.Offset)
}

func errorf(off int, format string, args ...any) *Error {
	return &Error{Offset: off, Msg: fmt.Sprintf(format, args...), Notify: PayloadMalformed}
}
