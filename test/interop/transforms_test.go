package interop

import (
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// transformCases are the ESP transforms beyond interopCases that strongSwan 5.9.8's
// kernel-libipsec implements: AES-GCM with a 12-byte ICV, AES-192 and AES-CTR. libipsec has no
// AES-CCM, AES-GMAC, AES-XCBC or AES-CMAC ("unsupported integrity algorithm AES_XCBC_96") and no
// extended sequence numbers; those are covered by the published test vectors in packages esp,
// ah and internal/aesmac, and (AES-CTR, XCBC, CMAC) by tshark. The IKE SA uses AES-192 too.
var transformCases = []interopCase{
	{"aes192gcm16-prfsha384-ecp384", "aes128gcm12", "AES_GCM_16-192/PRF_HMAC_SHA2_384/ECP_384", "AES_GCM_12-128"},
	{"aes256gcm16-prfsha256-x25519", "aes192gcm16", "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-192"},
	{"aes192-sha256-x25519", "aes192-sha512", "AES_CBC-192/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519", "AES_CBC-192/HMAC_SHA2_512_256"},
	{"aes256gcm16-prfsha256-x25519", "aes256ctr-sha256", "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_CTR-256/HMAC_SHA2_256_128"},
	{"aes256gcm16-prfsha256-x25519", "aes192ctr-sha384", "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_CTR-192/HMAC_SHA2_384_192"},
}

// TestStrongSwanInteropTransforms negotiates each transform with charon (goipsec initiating every
// other case) and moves ping and byte-checked TCP traffic both ways through the Child SA.
func TestStrongSwanInteropTransforms(t *testing.T) {
	for i, tc := range transformCases {
		goipsecInitiates := i%2 == 0
		role := "goipsec-responder"
		if goipsecInitiates {
			role = "goipsec-initiator"
		}
		t.Run(tc.esp+"/"+role, func(t *testing.T) {
			_, left, right := setup(t)
			c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: charonConf(rightOuter, leftOuter, tc.ike, tc.esp, !goipsecInitiates, "")})
			cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
				ikeProposal: tc.ike, espProposal: tc.esp,
				localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6}
			if goipsecInitiates {
				cc.startAction = "start"
			}
			g := startGoipsec(t, left, cc.String())
			if !goipsecInitiates {
				c.Initiate(t, "net")
			}
			c.WaitEstablished(t, "gt", 30*time.Second)
			g.waitLog(t, "Child SA established", 10*time.Second)
			sas := c.ListSAs(t)
			for _, want := range []string{"ESTABLISHED", "INSTALLED", tc.wantIKE, tc.wantESP} {
				if !strings.Contains(sas, want) {
					t.Fatalf("swanctl --list-sas lacks %q:\n%s", want, sas)
				}
			}
			checkTraffic(t, left, right)
		})
	}
}
