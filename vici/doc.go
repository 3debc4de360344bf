// Package vici speaks strongSwan's Versatile IKE Control Interface (VICI) as a server: the wire
// codec and a server that lets Debian's own swanctl drive the goipsec daemon.
//
// Clients use strongSwan's own Go library, github.com/strongswan/govici: goipsec's CLI does, and
// so do this package's tests, so that an implementation of the protocol independent of this one
// checks the server. govici has no server side, which is why the codec here exists; the tests use
// the codec directly only for what no client sends (protocol violations) and for streamed
// commands with many events, where govici v0.8.0 may lose events that are still queued when the
// response arrives (it selects between its event and response channels at random).
//
// The codec follows the protocol description in strongSwan's src/libcharon/plugins/vici/README.md
// (5.9.8):
//
//   - Transport: each segment is a 4-byte big-endian length followed by that many bytes; a segment
//     holds at most MaxSegmentSize bytes (strongSwan's limit, 512 KiB).
//   - Packet: the first byte of a segment is the PacketType. Named types (CMD_REQUEST,
//     EVENT_REGISTER, EVENT_UNREGISTER, EVENT) continue with a 1-byte name length and the name.
//     CMD_REQUEST, CMD_RESPONSE and EVENT carry a Message in the rest of the segment; the other
//     types carry nothing.
//   - Message: a sequence of elements (SECTION_START, SECTION_END, KEY_VALUE, LIST_START, LIST_ITEM,
//     LIST_END); names have a 1-byte length, values a 2-byte big-endian length.
//
// Message keeps its items in wire order, because swanctl prints them in order and some commands
// (auth rounds in load-conn, for example) depend on it. Decoding is strict: sections and lists must
// be balanced, lists are not nested and hold only items, every length must fit exactly, and nesting
// is limited to MaxDepth. Malformed input yields a *DecodeError, never a panic.
//
// The Server gives each connection a reader goroutine, a writer goroutine and, while a command runs,
// a goroutine for that command; commands on a connection run one at a time (VICI has no request
// IDs), and every write goes through the connection's writer, so streamed events, responses and
// published events never interleave. The reader keeps reading during a command, so a client that
// disconnects cancels its command's context.
//
// docs/vici.md lists the request, response and event layouts swanctl 5.9.8 sends and understands,
// as checked by the interop tests that run Debian's swanctl against this package's server.
package vici
