package esp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test vector: %v", err)
	}
	return b
}

// packetVector is one published ESP packet: the SA, the inputs of Seal and the expected bytes.
type packetVector struct {
	name      string
	enc       Encryption
	encKey    string // with salt for AEADs
	spi       uint32
	seq       uint64
	esn       bool
	iv        string
	plaintext string // payload|padding|Pad Length|Next Header as published
	packet    string // SPI through ICV
}

// splitTrailer recovers Seal's inputs from a published plaintext: the payload and Next Header.
func splitTrailer(t *testing.T, plain []byte) (payload []byte, nextHeader byte) {
	t.Helper()
	n := len(plain)
	padLen := int(plain[n-2])
	return plain[:n-2-padLen], plain[n-1]
}

func runPacketVector(t *testing.T, v packetVector, allowUnauthenticated bool) {
	t.Helper()
	sa, err := newSA(new(SA), Params{SPI: v.spi, Encryption: v.enc, EncKey: unhex(t, v.encKey), ESN: v.esn}, allowUnauthenticated)
	if err != nil {
		t.Fatalf("newSA: %v", err)
	}
	plain := unhex(t, v.plaintext)
	want := unhex(t, v.packet)
	payload, nh := splitTrailer(t, plain)

	got, err := sa.seal(nil, v.seq, nh, payload, 0, unhex(t, v.iv))
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("seal:\n got %x\nwant %x", got, want)
	}
	if n := sa.Overhead(len(payload)) + len(payload); n != len(want) {
		t.Fatalf("Overhead predicts %d bytes, packet has %d", n, len(want))
	}

	// The receiver's window must sit just behind the packet for ESN to infer the high bits.
	if v.seq > 1 {
		sa.window.Commit(v.seq - 1)
	}
	pkt := append([]byte(nil), want...)
	gotPayload, gotNH, gotSeq, err := sa.Open(pkt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(gotPayload, payload) || gotNH != nh || gotSeq != v.seq {
		t.Fatalf("Open = %x, nh %d, seq %#x; want %x, nh %d, seq %#x", gotPayload, gotNH, gotSeq, payload, nh, v.seq)
	}
}

// RFC 7634 Appendix A: ESP packet protected with ChaCha20-Poly1305.
func TestRFC7634AppendixA(t *testing.T) {
	runPacketVector(t, packetVector{
		enc:    EncrChaCha20Poly1305,
		encKey: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3",
		spi:    0x01020304, seq: 5,
		iv: "1011121314151617",
		plaintext: "45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec10" +
			"0007362708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223" +
			"2425262728292a2b2c2d2e2f303132333435363701020204",
		packet: "0102030400000005 1011121314151617" +
			"24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6" +
			"14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3" +
			"cbec163fac469b502773f6fb94e664da9165b82829f641e0" +
			"76aaa8266b7fb0f7b11b369907e1ad43",
	}, false)
}

// gcmCase is a draft-mcgrew-gcm-test-01 §4 test case: the key and salt, the SPI and (E)SN from
// its AAD, the explicit IV from its nonce, the plaintext and ciphertext||tag.
type gcmCase struct {
	name       string
	key, salt  string
	aad        string // SPI || [seq high] || seq low: 8 bytes, or 12 with ESN
	iv         string
	plaintext  string
	ciphertext string
	tag        string
}

// The AES-GCM-ESP cases of draft-mcgrew-gcm-test-01 §4, numbered in the order the draft lists
// them (it does not number them; #15 is its AES-GMAC-ESP case, in TestDraftMcGrewGMAC): 16-byte
// ICVs and 128-, 192- (#7) and 256-bit AES keys. Cases with a 12-byte AAD use extended sequence
// numbers.
var gcmCases = []gcmCase{
	{name: "case 1 (AES-128, ESN)", key: "4c80cdefbb5d10da906ac73c3613a634", salt: "2e443b68",
		aad: "000043218765432100000000", iv: "4956ed7e3b244cfe",
		plaintext: "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000" +
			"00000000045f736970045f756470037369700963796265726369747902646b00" +
			"0021000101020201",
		ciphertext: "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34" +
			"cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce" +
			"61bc17d768fd9732",
		tag: "459018148f6cbe722fd04796562dfdb4"},
	{name: "case 2 (AES-128)", key: "feffe9928665731c6d6a8f9467308308", salt: "cafebabe",
		aad: "0000a5f80000000a", iv: "facedbaddecaf888",
		plaintext: "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100" +
			"0001000000000000037369700963796265726369747902646b00000100010001",
		ciphertext: "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c" +
			"3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1",
		tag: "83b70d3aa8bc6ee4c309e9d85a41ad4a"},
	{name: "case 3 (AES-256)", key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab", salt: "11223344",
		aad: "4a2cbfe300000002", iv: "0102030405060708",
		plaintext: "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000" +
			"7002400020bf0000020405b40101040201020201",
		ciphertext: "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763" +
			"748a637985771d347f0545659f14e99def842d8e",
		tag: "b335f4eecfdbf831824b4c4915956c96"},
	{name: "case 4 (AES-128)", key: "00000000000000000000000000000000", salt: "00000000",
		aad: "0000000000000001", iv: "0000000000000000",
		plaintext: "4500003c99c500008001cb7a40679318010101010800075c0200440061626364" +
			"65666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
		ciphertext: "4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284" +
			"456476492719ffb64de7d9dca1e1d894bc3bd57873ed4d181d19d4d5c8c18af3",
		tag: "f821d496eeb096e98ad2b69e4799c71d"},
	{name: "case 5 (AES-128, ESN)", key: "3de09874b388e6491988d0c3607eae1f", salt: "57690e43",
		aad: "42f67e3f1010101010101010", iv: "4e280000a2fca1a3",
		plaintext: "4500003c99c300008001cb7c40679318010101010800085c0200430061626364" +
			"65666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
		ciphertext: "fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c357917" +
			"65acbd8701ad79845bf9fe3fba487bc91755e6662b4c8d0d1f5e22739530320a",
		tag: "e0d731cc978ecafaeae88f00e80d6e48"},
	{name: "case 6 (AES-128, ESN)", key: "3de09874b388e6491988d0c3607eae1f", salt: "57690e43",
		aad: "42f67e3f1010101010101010", iv: "4e280000a2fca1a3",
		plaintext:  "4500001c42a200008001441f406793b6e00000020a00f5ff01020201",
		ciphertext: "fba2ca845e5df9f0f22c3e6e86dd831e1fc65792cd1af9130e1379ed",
		tag:        "369f071f35e034be95f112e4e7d05d35"},
	{name: "case 7 (AES-192)", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c", salt: "cafebabe",
		aad: "0000a5f80000000a", iv: "facedbaddecaf888",
		plaintext: "45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e" +
			"501016d075680001",
		ciphertext: "a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0" +
			"315b27452144cc77",
		tag: "95457b9652037f5318027b5b4cd7a636"},
	{name: "case 8 (AES-128, ESN)", key: "abbccddef00112233445566778899aab", salt: "decaf888",
		aad: "000001000000000000000001", iv: "cafedebaceface74",
		plaintext: "4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d5" +
			"00004e20001e8c18d75b81dc91baa0476b91b924b280389d92c963bac046ec95" +
			"9b6266c04722b14923010101",
		ciphertext: "18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f" +
			"9190feebaf2cb01984e65863965d7472b79da345e0e780191f0d2f0e0f496c22" +
			"6f2127b27db35724e7845d68",
		tag: "651f57e65f354f75ff17015769623436"},
	{name: "case 9 (AES-256, ESN)", key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab", salt: "73616c74",
		aad: "17405e67156f3126dd0db99b", iv: "616e640169766563",
		plaintext: "45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb712602" +
			"50101f646d540001",
		ciphertext: "f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57f" +
			"f4d3a31ce673119e",
		tag: "451626c2415771e3b7eebca614c89b35"},
	{name: "case 10 (AES-128, ESN)", key: "3de09874b388e6491988d0c3607eae1f", salt: "57690e43",
		aad: "42f67e3f1010101010101010", iv: "4e280000a2fca1a3",
		plaintext: "45000049333e00007f119182c3fb1d10c2b1d326c02831ce0035cb458003025b" +
			"000001e0001e8c18d65759d52284a0352c71475c8880391c764d6e5ee0496b32" +
			"5ae270c03899493915010101",
		ciphertext: "fba2cad12fc1f9f00d3cebf305410db83d7784b607323d220f24b0a97d541828" +
			"00cadb0f68d99ef0e0c0c89ae9bea8884e52d65bc1afd0740f742444747b5b39" +
			"ab533163aad4550ee5160975",
		tag: "cdb608c5769189609763b8e18caa81e2"},
	{name: "case 11 (AES-256, ESN)", key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab", salt: "73616c74",
		aad: "17405e67156f3126dd0db99b", iv: "616e640169766563",
		plaintext: "636973636f0172756c657301746865016e6574776501646566696e6501746865" +
			"746563686e6f6c6f67696573017468617477696c6c01646566696e65746f6d6f" +
			"72726f7701020201",
		ciphertext: "d4b7ed86a1777f2ea13d6973d324c69e7b43f826fb56831226508bebd2dceb18" +
			"d0a6df10e5487df074113e14c641024e3e6773d91a62ee429b043a10e3efe6b0" +
			"12a49363412364f8",
		tag: "c0cac587f249e56b11e24f30e44ccc76"},
	{name: "case 12 (AES-128)", key: "7d773d00c144c525ac619d18c84a3f47", salt: "d9664267",
		aad: "335467aeffffffff", iv: "43457e9182443bc6",
		plaintext: "01020201", ciphertext: "437f866b",
		tag: "cb3f699fe9b0822bac961c4504bef270"},
	{name: "case 13 (AES-128, ESN)", key: "abbccddef00112233445566778899aab", salt: "decaf888",
		aad: "000001000000000000000001", iv: "cafedebaceface74",
		plaintext:  "746f016265016f72016e6f7401746f0162650001",
		ciphertext: "29c9fc69a197d038ccdd14e2ddfcaa0543332164",
		tag:        "412503524303ed3c6c5f283843af8c3e"},
	{name: "case 14 (AES-256, ESN)", key: "6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961", salt: "7475726e",
		aad: "796b6963ffffffffffffffff", iv: "333021696765746d",
		plaintext: "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364" +
			"65666768696a6b6c6d6e6f707172737401020201",
		ciphertext: "f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a86" +
			"4cd3d78ca4ae68a32b42458fb57dbe821dcc63b9",
		tag: "d0937ba2945f669368661a329fb4c053"},
	{name: "case 16 (AES-128, ESN)", key: "3de09874b388e6491988d0c3607eae1f", salt: "57690e43",
		aad: "3f7ef6421010101010101010", iv: "4e280000a2fca1a3",
		plaintext: "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364" +
			"65666768696a6b6c6d6e6f707172737401020201",
		ciphertext: "fba2caa8c6c5f9f0f22ca54a061210ad3f6e5791cf1aca210d117cec9c357917" +
			"65acbd8701ad79845bf9fe3fba487bc963219306",
		tag: "84eecadb56912546e7a95c9740d7cb05"},
	{name: "case 17 (AES-128, ESN)", key: "4c80cdefbb5d10da906ac73c3613a634", salt: "22433c64",
		aad: "000043218765432100000007", iv: "4855ec7d3a234bfd",
		plaintext:  "0800c6cd020007006162636465666768696a6b6c6d6e6f707172737401020201",
		ciphertext: "74752e8aeb5d873cd7c0f4acc36c4bff84b7d7b98f0ca8b6acda6894bc619069",
		tag:        "ef9cbc28fe1b56a7c4e0d58c86cd2bc0"},
}

// TestDraftMcGrewGCM seals and opens every AES-GCM-ESP packet of draft-mcgrew-gcm-test-01 as
// ENCR_AES_GCM_16, and again as ENCR_AES_GCM_12 with the ICV cut to its first 12 bytes: NIST SP
// 800-38D §7.1 (step 6, T = MSB_t(...)) defines a t-bit GCM tag as the leading t bits of the
// full one, and RFC 4106 §6 makes a 12-octet ICV the GCM tag of that length, so the truncated
// packets are ENCR_AES_GCM_12 known answers. TestGCM12CAVP adds NIST's published 96-bit tags.
func TestDraftMcGrewGCM(t *testing.T) {
	for _, c := range gcmCases {
		for _, enc := range []Encryption{EncrAESGCM16, EncrAESGCM12} {
			t.Run(fmt.Sprintf("%s %v", c.name, enc), func(t *testing.T) {
				aad := unhex(t, c.aad)
				v := packetVector{
					enc: enc, encKey: c.key + c.salt,
					spi: binary.BigEndian.Uint32(aad), esn: len(aad) == 12,
					iv: c.iv, plaintext: c.plaintext,
				}
				if v.esn {
					v.seq = binary.BigEndian.Uint64(aad[4:])
				} else {
					v.seq = uint64(binary.BigEndian.Uint32(aad[4:]))
				}
				tag := c.tag[:2*aeadTagLen(enc)]
				v.packet = hex.EncodeToString(aad[:4]) + hex.EncodeToString(aad[len(aad)-4:]) + c.iv + c.ciphertext + tag
				runPacketVector(t, v, false)
			})
		}
	}
}

// TestDraftMcGrewGMAC: the AES-GMAC-ESP packet of draft-mcgrew-gcm-test-01 §4 (its 15th case),
// RFC 4543's ENCR_NULL_AUTH_AES_GMAC with a 128-bit key: the payload in the clear, the nonce
// 22433c64|0000000000000000 (salt and an all-zero IV), the 16-byte ICV over SPI, sequence
// number, IV and payload.
func TestDraftMcGrewGMAC(t *testing.T) {
	runPacketVector(t, packetVector{
		enc:    EncrNullAESGMAC,
		encKey: "4c80cdefbb5d10da906ac73c3613a634 22433c64",
		spi:    0x4321, seq: 7,
		iv: "0000000000000000",
		plaintext: "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364" +
			"65666768696a6b6c6d6e6f707172737401020201",
		packet: "00004321000000070000000000000000" +
			"45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364" +
			"65666768696a6b6c6d6e6f707172737401020201" +
			"f2a9a836e155106aa8dcd618e4099aaa",
	}, false)
}

// RFC 3602 §4 cases 5-8: AES-CBC ESP packets without integrity protection, which only the
// internal constructor accepts. They exercise encryption, IV placement and padding.
func TestRFC3602Cases(t *testing.T) {
	for _, v := range []packetVector{
		{name: "case 5", encKey: "90d382b410eeba7ad938c46cec1a82bf", spi: 0x4321, seq: 1,
			iv: "e96e8c08ab465763fd098d45dd3ff893",
			plaintext: "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f1011121314151617" +
				"18191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637" +
				"0102030405060708090a0b0c0d0e0e01",
			packet: "0000432100000001e96e8c08ab465763fd098d45dd3ff893" +
				"f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856" +
				"a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874a" +
				"a269add047ad2d5913ac19b7cfbad4a6"},
		{name: "case 6", encKey: "90d382b410eeba7ad938c46cec1a82bf", spi: 0x4321, seq: 8,
			iv:        "69d08df7d203329db093fc4924e5bd80",
			plaintext: "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777 01020201",
			packet: "000043210000000869d08df7d203329db093fc4924e5bd80" +
				"f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75"},
		{name: "case 7", encKey: "0123456789abcdef0123456789abcdef", spi: 0x8765, seq: 2,
			iv: "f4e765244f6407adf13dc1380f673f37",
			plaintext: "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d" +
				"02a2040008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223" +
				"2425262728292a2b2c2d2e2f3031323334353637 0102030405060708090a0a04",
			packet: "0000876500000002f4e765244f6407adf13dc1380f673f37" +
				"773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93013c1b0ea1a0cf70f8" +
				"e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d2decd136e5" +
				"c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d"},
		{name: "case 8", encKey: "0123456789abcdef0123456789abcdef", spi: 0x8765, seq: 5,
			iv: "85d47224b5f3dd5d2101d4ea8dffab22",
			plaintext: "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083d" +
				"a3de0300ffffffffffffffffffffffffffffffffffffffffffffffffffffffff" +
				"ffffffff 0102030405060708090a0a04",
			packet: "000087650000000585d47224b5f3dd5d2101d4ea8dffab22" +
				"15b92683819596a8047232cc00f7048fe45318e11f8a0f62ede3c3fc61203bb5" +
				"0f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de435e7207ed971ef3" +
				"d2726d9b5ef6affc6d17a0decbb13892"},
	} {
		t.Run(v.name, func(t *testing.T) {
			v.enc = EncrAESCBC
			runPacketVector(t, v, true)
		})
	}
}
