// Package ike implements IKEv2 (RFC 7296) as state machines that do no I/O: an SA holds the state
// of one IKE SA, and each exchange (IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL) builds
// request payloads and processes responses, or processes a request and builds its response. The
// driver in package ike/engine owns sockets, message IDs, retransmission and timers; randomness and
// the clock are injected, so two SAs can be run against each other in one process, in virtual time.
//
// Hand-written: there is no maintained Go IKEv2 implementation to build on. Message encoding is in
// ike/wire, cryptography in ike/suite.
package ike
