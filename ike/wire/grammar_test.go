package wire

import "testing"

func TestCheckGrammar(t *testing.T) {
	var (
		sa      = &SA{}
		ke      = &KE{}
		nonce   = &Nonce{}
		idi     = &IDi{}
		idr     = &IDr{}
		cert    = &CERT{}
		certreq = &CERTREQ{}
		auth    = &AUTH{}
		tsi     = &TSi{}
		tsr     = &TSr{}
		eap     = &EAP{}
		cp      = &CP{}
		del     = &Delete{}
		vid     = &VendorID{}
		sk      = &Encrypted{}
		skf     = &EncryptedFragment{Number: 1, Total: 2}
		unknown = &Unknown{PayloadType: 200}
		n       = func(t NotifyType) *Notify { return &Notify{NotifyType: t} }
		pl      = func(ps ...Payload) []Payload { return ps }
	)
	const (
		req  = false
		resp = true
	)
	for _, c := range []struct {
		name     string
		exchange ExchangeType
		response bool
		outer    []Payload
		inner    []Payload
		err      string // "" for valid
	}{
		// IKE_SA_INIT (RFC 7296 §1.2)
		{"init request", ExchangeIKESAInit, req, pl(sa, ke, nonce, n(NATDetectionSourceIP), n(NATDetectionDestinationIP), vid), nil, ""},
		{"init request with cookie", ExchangeIKESAInit, req, pl(n(Cookie), sa, ke, nonce), nil, ""},
		{"init request, unknown payload ignored", ExchangeIKESAInit, req, pl(sa, ke, unknown, nonce), nil, ""},
		{"init response", ExchangeIKESAInit, resp, pl(sa, ke, nonce, certreq, certreq, n(FragmentationSupported)), nil, ""},
		{"init response asking for a cookie", ExchangeIKESAInit, resp, pl(n(Cookie)), nil, ""},
		{"init request without KE", ExchangeIKESAInit, req, pl(sa, nonce), nil,
			`IKE_SA_INIT request does not match "SA, KEi, Ni": missing KE`},
		{"init request with two nonces", ExchangeIKESAInit, req, pl(sa, ke, nonce, nonce), nil,
			`IKE_SA_INIT request does not match "SA, KEi, Ni": 2 Nonce payloads, at most 1 allowed`},
		{"init request with IDi", ExchangeIKESAInit, req, pl(sa, ke, nonce, idi), nil,
			`IKE_SA_INIT request does not match "SA, KEi, Ni": unexpected IDi`},
		{"init request encrypted", ExchangeIKESAInit, req, pl(sa, ke, nonce, sk), nil,
			`IKE_SA_INIT request does not match "SA, KEi, Ni": unexpected SK`},
		{"init request with inner payloads", ExchangeIKESAInit, req, pl(sa, ke, nonce), pl(idi),
			`IKE_SA_INIT request: inner payloads given for a message without SK`},
		{"init response without nonce", ExchangeIKESAInit, resp, pl(sa, ke), nil,
			`IKE_SA_INIT response does not match "SA, KEr, Nr, [CERTREQ]": missing Nonce`},

		// IKE_AUTH (RFC 7296 §1.2, §2.16; RFC 4739; RFC 6023)
		{"auth request", ExchangeIKEAuth, req, pl(sk), pl(idi, cert, certreq, idr, auth, n(InitialContact), sa, tsi, tsr), ""},
		{"auth request fragmented", ExchangeIKEAuth, req, pl(skf), pl(idi, auth, cp, sa, tsi, tsr), ""},
		{"auth request childless", ExchangeIKEAuth, req, pl(sk), pl(idi, auth), ""},
		{"auth request starting EAP", ExchangeIKEAuth, req, pl(sk), pl(idi, sa, tsi, tsr), ""},
		{"auth request EAP round", ExchangeIKEAuth, req, pl(sk), pl(eap), ""},
		{"auth request after EAP", ExchangeIKEAuth, req, pl(sk), pl(auth), ""},
		{"auth response", ExchangeIKEAuth, resp, pl(sk), pl(idr, cert, auth, sa, tsi, tsr), ""},
		{"auth response first EAP", ExchangeIKEAuth, resp, pl(sk), pl(idr, cert, auth, eap), ""},
		{"auth response final EAP", ExchangeIKEAuth, resp, pl(sk), pl(auth, cp, sa, tsi, tsr), ""},
		{"auth response failure", ExchangeIKEAuth, resp, pl(sk), pl(n(AuthenticationFailed)), ""},
		{"auth request notify outside SK", ExchangeIKEAuth, req, pl(n(InitialContact), sk), pl(idi, auth),
			`IKE_AUTH request does not match "SK": unexpected N`},
		{"auth request unencrypted", ExchangeIKEAuth, req, pl(idi, auth), nil,
			`IKE_AUTH request does not match "SK": missing SK; unexpected IDi; unexpected AUTH`},
		{"auth request without IDi", ExchangeIKEAuth, req, pl(sk), pl(auth, sa, tsi, tsr),
			`IKE_AUTH request (encrypted) does not match "IDi, [CERT+], [CERTREQ+], [IDr], [AUTH], [CP], [SA, TSi, TSr]": missing IDi`},
		{"auth request SA without TSr", ExchangeIKEAuth, req, pl(sk), pl(idi, auth, sa, tsi),
			`IKE_AUTH request (encrypted) does not match "IDi, [CERT+], [CERTREQ+], [IDr], [AUTH], [CP], [SA, TSi, TSr]": missing TSr (it goes with SA, TSi, TSr)`},
		{"auth response without AUTH", ExchangeIKEAuth, resp, pl(sk), pl(idr, sa, tsi, tsr),
			`IKE_AUTH response (encrypted) does not match "[IDr], [CERT+], AUTH, [EAP], [CP], [SA, TSi, TSr]": missing AUTH`},

		// CREATE_CHILD_SA (RFC 7296 §1.3)
		{"child request", ExchangeCreateChildSA, req, pl(sk), pl(n(RekeySA), sa, nonce, ke, tsi, tsr), ""},
		{"IKE rekey request", ExchangeCreateChildSA, req, pl(sk), pl(sa, nonce, ke), ""},
		{"child response refused", ExchangeCreateChildSA, resp, pl(sk), pl(n(NoProposalChosen)), ""},
		{"child request without nonce", ExchangeCreateChildSA, req, pl(sk), pl(sa, ke, tsi, tsr),
			`CREATE_CHILD_SA request (encrypted) does not match "SA, Ni, [KEi], [TSi, TSr]": missing Nonce`},
		{"child request TSi alone", ExchangeCreateChildSA, req, pl(sk), pl(sa, nonce, tsi),
			`CREATE_CHILD_SA request (encrypted) does not match "SA, Ni, [KEi], [TSi, TSr]": missing TSr (it goes with TSi, TSr)`},

		// INFORMATIONAL (RFC 7296 §1.4, §1.5)
		{"liveness check", ExchangeInformational, req, pl(sk), nil, ""},
		{"delete", ExchangeInformational, req, pl(sk), pl(del, del), ""},
		{"delete response", ExchangeInformational, resp, pl(sk), pl(del), ""},
		{"outside an IKE SA", ExchangeInformational, resp, pl(n(InvalidIKESPI)), nil, ""},
		{"informational with IDi", ExchangeInformational, req, pl(sk), pl(idi),
			`INFORMATIONAL request (encrypted) does not match "[D+], [CP]": unexpected IDi`},
		{"informational with two CPs", ExchangeInformational, req, pl(sk), pl(cp, cp),
			`INFORMATIONAL request (encrypted) does not match "[D+], [CP]": 2 CP payloads, at most 1 allowed`},

		// RFC 9242, RFC 9370
		{"intermediate request", ExchangeIKEIntermediate, req, pl(sk), pl(ke), ""},
		{"intermediate request empty", ExchangeIKEIntermediate, req, pl(sk), nil, ""},
		{"intermediate without SK", ExchangeIKEIntermediate, resp, pl(ke), nil,
			`IKE_INTERMEDIATE response does not match "SK": missing SK; unexpected KE`},
		{"followup request", ExchangeIKEFollowupKE, req, pl(sk), pl(ke, n(AdditionalKeyExchange)), ""},
		{"followup response", ExchangeIKEFollowupKE, resp, pl(sk), pl(ke), ""},
		{"followup request without notify", ExchangeIKEFollowupKE, req, pl(sk), pl(ke),
			`IKE_FOLLOWUP_KE request (encrypted) does not match "KEi": missing N`},

		{"unknown exchange", 99, req, pl(sk), nil, `no payload grammar for exchange exchange(99)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &Message{Header: Header{Exchange: c.exchange}, Payloads: c.outer}
			if c.response {
				m.Flags = FlagResponse
			}
			err := CheckGrammar(m, c.inner)
			if c.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			wantError(t, err, InvalidSyntax, -1, c.err)
		})
	}
}

// grammarHotPath is what every received IKE_AUTH response goes through.
func grammarHotPath() (*Message, []Payload) {
	m := &Message{Header: Header{Exchange: ExchangeIKEAuth, Flags: FlagResponse}, Payloads: []Payload{&Encrypted{}}}
	inner := []Payload{&IDr{}, &AUTH{}, &SA{}, &TSi{}, &TSr{}, &Notify{NotifyType: MultipleAuthSupported}}
	return m, inner
}

// A message that matches its grammar is checked without allocating: the check runs for every
// message received, so it sits on the handshake path of a loaded responder.
func TestCheckGrammarAllocatesNothing(t *testing.T) {
	m, inner := grammarHotPath()
	init := &Message{Header: Header{Exchange: ExchangeIKESAInit}, Payloads: []Payload{&SA{}, &KE{}, &Nonce{}, &Notify{NotifyType: NATDetectionSourceIP}}}
	if n := testing.AllocsPerRun(100, func() {
		if err := CheckGrammar(m, inner); err != nil {
			t.Fatal(err)
		}
		if err := CheckGrammar(init, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("CheckGrammar allocates %v times per valid message pair, want 0", n)
	}
}

func BenchmarkCheckGrammar(b *testing.B) {
	m, inner := grammarHotPath()
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckGrammar(m, inner); err != nil {
			b.Fatal(err)
		}
	}
}
