// Package testnet builds real Linux network namespaces for tests: namespaces joined by veth pairs,
// background processes inside them, Go code running inside them (Do), NAT and packet loss through
// nftables, packet captures with tcpdump, and tshark decryption of captured IKEv2 and ESP traffic.
//
// Everything a test creates is removed by t.Cleanup, also when the test fails or panics. Namespace
// names start with NamePrefix followed by the creating process's PID, so SweepStale can remove what a
// killed test binary left behind without touching namespaces of test binaries still running.
//
// The namespace plumbing is hand-written on top of the ip(8), nft(8), tcpdump and tshark commands and
// setns(2) (golang.org/x/sys/unix); shelling out to the same tools an operator would use keeps failures easy to reproduce by hand.
//
// Tests using this package need root. Require fails the test when something is missing, and skips it
// only under -short, so a CI run without -short fails loudly instead of silently testing nothing.
package testnet
