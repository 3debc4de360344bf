package wire

import "strconv"

// NotifyType is the Notify Message Type of a Notify payload (RFC 7296
// §3.10.1; IANA "IKEv2 Notify Message Types", checked against the registry
// as of RFC 9593). Types below 16384 report errors, the rest status.
type NotifyType uint16

// Error notify types (RFC 7296 §3.10.1 unless noted).
const (
	UnsupportedCriticalPayload NotifyType = 1
	InvalidIKESPI              NotifyType = 4
	InvalidMajorVersion        NotifyType = 5
	InvalidSyntax              NotifyType = 7
	InvalidMessageID           NotifyType = 9
	InvalidSPI                 NotifyType = 11
	NoProposalChosen           NotifyType = 14
	InvalidKEPayload           NotifyType = 17
	AuthenticationFailed       NotifyType = 24
	SinglePairRequired         NotifyType = 34
	NoAdditionalSAs            NotifyType = 35
	InternalAddressFailure     NotifyType = 36
	FailedCPRequired           NotifyType = 37
	TSUnacceptable             NotifyType = 38
	InvalidSelectors           NotifyType = 39
	UnacceptableAddresses      NotifyType = 40 // RFC 4555
	UnexpectedNATDetected      NotifyType = 41 // RFC 4555
	UseAssignedHoA             NotifyType = 42 // RFC 5026
	TemporaryFailure           NotifyType = 43
	ChildSANotFound            NotifyType = 44
	InvalidGroupID             NotifyType = 45 // RFC 6407
	AuthorizationFailed        NotifyType = 46 // RFC 6407
	StateNotFound              NotifyType = 47 // RFC 9370
)

// Status notify types (RFC 7296 §3.10.1 unless noted).
const (
	InitialContact                NotifyType = 16384
	SetWindowSize                 NotifyType = 16385
	AdditionalTSPossible          NotifyType = 16386
	IPCompSupported               NotifyType = 16387
	NATDetectionSourceIP          NotifyType = 16388
	NATDetectionDestinationIP     NotifyType = 16389
	Cookie                        NotifyType = 16390
	UseTransportMode              NotifyType = 16391
	HTTPCertLookupSupported       NotifyType = 16392
	RekeySA                       NotifyType = 16393
	ESPTFCPaddingNotSupported     NotifyType = 16394
	NonFirstFragmentsAlso         NotifyType = 16395
	MOBIKESupported               NotifyType = 16396 // RFC 4555
	AdditionalIP4Address          NotifyType = 16397 // RFC 4555
	AdditionalIP6Address          NotifyType = 16398 // RFC 4555
	NoAdditionalAddresses         NotifyType = 16399 // RFC 4555
	UpdateSAAddresses             NotifyType = 16400 // RFC 4555
	Cookie2                       NotifyType = 16401 // RFC 4555
	NoNATsAllowed                 NotifyType = 16402 // RFC 4555
	AuthLifetime                  NotifyType = 16403 // RFC 4478
	MultipleAuthSupported         NotifyType = 16404 // RFC 4739
	AnotherAuthFollows            NotifyType = 16405 // RFC 4739
	RedirectSupported             NotifyType = 16406 // RFC 5685
	Redirect                      NotifyType = 16407 // RFC 5685
	RedirectedFrom                NotifyType = 16408 // RFC 5685
	TicketLTOpaque                NotifyType = 16409 // RFC 5723
	TicketRequest                 NotifyType = 16410 // RFC 5723
	TicketAck                     NotifyType = 16411 // RFC 5723
	TicketNack                    NotifyType = 16412 // RFC 5723
	TicketOpaque                  NotifyType = 16413 // RFC 5723
	LinkID                        NotifyType = 16414 // RFC 5739
	UseWESPMode                   NotifyType = 16415 // RFC 5840
	ROHCSupported                 NotifyType = 16416 // RFC 5857
	EAPOnlyAuthentication         NotifyType = 16417 // RFC 5998
	ChildlessIKEv2Supported       NotifyType = 16418 // RFC 6023
	QuickCrashDetection           NotifyType = 16419 // RFC 6290
	MsgIDSyncSupported            NotifyType = 16420 // RFC 6311
	ReplayCounterSyncSupported    NotifyType = 16421 // RFC 6311
	MsgIDSync                     NotifyType = 16422 // RFC 6311
	ReplayCounterSync             NotifyType = 16423 // RFC 6311
	SecurePasswordMethods         NotifyType = 16424 // RFC 6467
	PSKPersist                    NotifyType = 16425 // RFC 6631
	PSKConfirm                    NotifyType = 16426 // RFC 6631
	ERXSupported                  NotifyType = 16427 // RFC 6867
	IFOMCapability                NotifyType = 16428 // 3GPP TS 24.303
	SenderRequestID               NotifyType = 16429 // draft-yeung-g-ikev2
	FragmentationSupported        NotifyType = 16430 // RFC 7383
	SignatureHashAlgorithms       NotifyType = 16431 // RFC 7427
	CloneIKESASupported           NotifyType = 16432 // RFC 7791
	CloneIKESA                    NotifyType = 16433 // RFC 7791
	Puzzle                        NotifyType = 16434 // RFC 8019
	UsePPK                        NotifyType = 16435 // RFC 8784
	PPKIdentity                   NotifyType = 16436 // RFC 8784
	NoPPKAuth                     NotifyType = 16437 // RFC 8784
	IntermediateExchangeSupported NotifyType = 16438 // RFC 9242
	IP4Allowed                    NotifyType = 16439 // RFC 8983
	IP6Allowed                    NotifyType = 16440 // RFC 8983
	AdditionalKeyExchange         NotifyType = 16441 // RFC 9370
	UseAggfrag                    NotifyType = 16442 // RFC 9347
	SupportedAuthMethods          NotifyType = 16443 // RFC 9593
	UsePPKInt                     NotifyType = 16445 // RFC 9867
	PPKIdentityKey                NotifyType = 16446 // RFC 9867
)

// notifyErrorLimit: types below it are errors (RFC 7296 §3.10.1).
const notifyErrorLimit NotifyType = 16384

// IsError reports whether t is in the error range; an unrecognized error
// type in a response means the request failed (RFC 7296 §3.10.1).
func (t NotifyType) IsError() bool { return t < notifyErrorLimit }

// String returns the IANA name, or the number for unassigned types.
func (t NotifyType) String() string {
	switch t {
	case UnsupportedCriticalPayload:
		return "UNSUPPORTED_CRITICAL_PAYLOAD"
	case InvalidIKESPI:
		return "INVALID_IKE_SPI"
	case InvalidMajorVersion:
		return "INVALID_MAJOR_VERSION"
	case InvalidSyntax:
		return "INVALID_SYNTAX"
	case InvalidMessageID:
		return "INVALID_MESSAGE_ID"
	case InvalidSPI:
		return "INVALID_SPI"
	case NoProposalChosen:
		return "NO_PROPOSAL_CHOSEN"
	case InvalidKEPayload:
		return "INVALID_KE_PAYLOAD"
	case AuthenticationFailed:
		return "AUTHENTICATION_FAILED"
	case SinglePairRequired:
		return "SINGLE_PAIR_REQUIRED"
	case NoAdditionalSAs:
		return "NO_ADDITIONAL_SAS"
	case InternalAddressFailure:
		return "INTERNAL_ADDRESS_FAILURE"
	case FailedCPRequired:
		return "FAILED_CP_REQUIRED"
	case TSUnacceptable:
		return "TS_UNACCEPTABLE"
	case InvalidSelectors:
		return "INVALID_SELECTORS"
	case UnacceptableAddresses:
		return "UNACCEPTABLE_ADDRESSES"
	case UnexpectedNATDetected:
		return "UNEXPECTED_NAT_DETECTED"
	case UseAssignedHoA:
		return "USE_ASSIGNED_HoA"
	case TemporaryFailure:
		return "TEMPORARY_FAILURE"
	case ChildSANotFound:
		return "CHILD_SA_NOT_FOUND"
	case InvalidGroupID:
		return "INVALID_GROUP_ID"
	case AuthorizationFailed:
		return "AUTHORIZATION_FAILED"
	case StateNotFound:
		return "STATE_NOT_FOUND"
	case InitialContact:
		return "INITIAL_CONTACT"
	case SetWindowSize:
		return "SET_WINDOW_SIZE"
	case AdditionalTSPossible:
		return "ADDITIONAL_TS_POSSIBLE"
	case IPCompSupported:
		return "IPCOMP_SUPPORTED"
	case NATDetectionSourceIP:
		return "NAT_DETECTION_SOURCE_IP"
	case NATDetectionDestinationIP:
		return "NAT_DETECTION_DESTINATION_IP"
	case Cookie:
		return "COOKIE"
	case UseTransportMode:
		return "USE_TRANSPORT_MODE"
	case HTTPCertLookupSupported:
		return "HTTP_CERT_LOOKUP_SUPPORTED"
	case RekeySA:
		return "REKEY_SA"
	case ESPTFCPaddingNotSupported:
		return "ESP_TFC_PADDING_NOT_SUPPORTED"
	case NonFirstFragmentsAlso:
		return "NON_FIRST_FRAGMENTS_ALSO"
	case MOBIKESupported:
		return "MOBIKE_SUPPORTED"
	case AdditionalIP4Address:
		return "ADDITIONAL_IP4_ADDRESS"
	case AdditionalIP6Address:
		return "ADDITIONAL_IP6_ADDRESS"
	case NoAdditionalAddresses:
		return "NO_ADDITIONAL_ADDRESSES"
	case UpdateSAAddresses:
		return "UPDATE_SA_ADDRESSES"
	case Cookie2:
		return "COOKIE2"
	case NoNATsAllowed:
		return "NO_NATS_ALLOWED"
	case AuthLifetime:
		return "AUTH_LIFETIME"
	case MultipleAuthSupported:
		return "MULTIPLE_AUTH_SUPPORTED"
	case AnotherAuthFollows:
		return "ANOTHER_AUTH_FOLLOWS"
	case RedirectSupported:
		return "REDIRECT_SUPPORTED"
	case Redirect:
		return "REDIRECT"
	case RedirectedFrom:
		return "REDIRECTED_FROM"
	case TicketLTOpaque:
		return "TICKET_LT_OPAQUE"
	case TicketRequest:
		return "TICKET_REQUEST"
	case TicketAck:
		return "TICKET_ACK"
	case TicketNack:
		return "TICKET_NACK"
	case TicketOpaque:
		return "TICKET_OPAQUE"
	case LinkID:
		return "LINK_ID"
	case UseWESPMode:
		return "USE_WESP_MODE"
	case ROHCSupported:
		return "ROHC_SUPPORTED"
	case EAPOnlyAuthentication:
		return "EAP_ONLY_AUTHENTICATION"
	case ChildlessIKEv2Supported:
		return "CHILDLESS_IKEV2_SUPPORTED"
	case QuickCrashDetection:
		return "QUICK_CRASH_DETECTION"
	case MsgIDSyncSupported:
		return "IKEV2_MESSAGE_ID_SYNC_SUPPORTED"
	case ReplayCounterSyncSupported:
		return "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED"
	case MsgIDSync:
		return "IKEV2_MESSAGE_ID_SYNC"
	case ReplayCounterSync:
		return "IPSEC_REPLAY_COUNTER_SYNC"
	case SecurePasswordMethods:
		return "SECURE_PASSWORD_METHODS"
	case PSKPersist:
		return "PSK_PERSIST"
	case PSKConfirm:
		return "PSK_CONFIRM"
	case ERXSupported:
		return "ERX_SUPPORTED"
	case IFOMCapability:
		return "IFOM_CAPABILITY"
	case SenderRequestID:
		return "SENDER_REQUEST_ID"
	case FragmentationSupported:
		return "IKEV2_FRAGMENTATION_SUPPORTED"
	case SignatureHashAlgorithms:
		return "SIGNATURE_HASH_ALGORITHMS"
	case CloneIKESASupported:
		return "CLONE_IKE_SA_SUPPORTED"
	case CloneIKESA:
		return "CLONE_IKE_SA"
	case Puzzle:
		return "PUZZLE"
	case UsePPK:
		return "USE_PPK"
	case PPKIdentity:
		return "PPK_IDENTITY"
	case NoPPKAuth:
		return "NO_PPK_AUTH"
	case IntermediateExchangeSupported:
		return "INTERMEDIATE_EXCHANGE_SUPPORTED"
	case IP4Allowed:
		return "IP4_ALLOWED"
	case IP6Allowed:
		return "IP6_ALLOWED"
	case AdditionalKeyExchange:
		return "ADDITIONAL_KEY_EXCHANGE"
	case UseAggfrag:
		return "USE_AGGFRAG"
	case UsePPKInt:
		return "USE_PPK_INT"
	case PPKIdentityKey:
		return "PPK_IDENTITY_KEY"
	case SupportedAuthMethods:
		return "SUPPORTED_AUTH_METHODS"
	}
	return "notify(" + strconv.Itoa(int(t)) + ")"
}
