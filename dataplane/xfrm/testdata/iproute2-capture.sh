#!/bin/sh
# Records the XFRM netlink messages iproute2 sends for the commands below, as golden messages for
# msg_test.go (which builds the same SAs and policies with this package and compares). Run it in the
# lab VM from the repository root:
#   go run ./internal/labvm/labctl run strongswan 'sh /mnt/host/dataplane/xfrm/testdata/iproute2-capture.sh'
# The order of the commands is the order of the messages in iproute2.pcap; keep msg_test.go in step.
set -e
out=/mnt/host/dataplane/xfrm/testdata/iproute2.pcap
modprobe nlmon
ip link add nlmon0 type nlmon
ip link set nlmon0 up
tcpdump -i nlmon0 -U -w /tmp/cap.pcap >/dev/null 2>&1 &
tcpdump=$!
sleep 1
K20=0x0102030405060708090a0b0c0d0e0f1011121314
K16=0x2122232425262728292a2b2c2d2e2f30
K32=0x3132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f50
# 1: tunnel mode AES-GCM, replay window 32 (the legacy field), any inner family.
ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 mode tunnel flag af-unspec replay-window 32 aead 'rfc4106(gcm(aes))' $K20 128
# 2: transport mode AES-CBC + HMAC-SHA-256-128, ESN, window 1024, ESP in UDP 4500/4500.
ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x2000 mode transport flag esn replay-window 1024 enc 'cbc(aes)' $K16 auth-trunc 'hmac(sha256)' $K32 128 encap espinudp 4500 4500 0.0.0.0
# 3: AH transport HMAC-SHA-256-128 with byte and packet limits, IPv6.
ip xfrm state add src 2001:db8::1 dst 2001:db8::2 proto ah spi 0x3000 mode transport replay-window 64 auth-trunc 'hmac(sha256)' $K32 128 limit byte-soft 1000000 limit byte-hard 2000000 limit packet-soft 1000 limit packet-hard 2000
# 4: an outbound tunnel-mode policy naming SA 0x1000.
ip xfrm policy add src 203.0.113.0/24 dst 198.51.100.0/24 dir out priority 199600 tmpl src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 mode tunnel
# 5: an inbound transport-mode policy for TCP to port 22 (any SA).
ip xfrm policy add src 192.0.2.2/32 dst 192.0.2.1/32 proto 6 dport 22 dir in priority 100 tmpl proto esp mode transport
# 6, 7: deletions.
ip xfrm state delete src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000
ip xfrm policy delete src 203.0.113.0/24 dst 198.51.100.0/24 dir out
# 8: marks: the SA's own mark, an output mark (set_mark_in/out) with its mask, an interface ID.
ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x4000 mode tunnel flag af-unspec replay-window 32 aead 'rfc4106(gcm(aes))' $K20 128 mark 0x7 mask 0xff output-mark 0x500 mask 0xf00 if_id 9
sleep 1
kill $tcpdump
sleep 0.5
cp /tmp/cap.pcap "$out"
