package wire

import (
	"fmt"
	"strings"
)

// many stands for "no upper bound" in a grammar rule.
const many = -1

// rule bounds how many payloads of one type a message form holds.
type rule struct {
	t        PayloadType
	min, max int
}

// form is one acceptable shape of a message (or of its encrypted part).
// Payload types without a rule are unexpected, except Notify and Vendor ID,
// which may appear anywhere and any number of times unless a rule names
// them (RFC 7296 §3.10, §3.12). together lists types that are all present
// or all absent (SA, TSi and TSr create a Child SA together).
type form struct {
	name     string
	rules    []rule
	together []PayloadType
}

// grammar is the shape of one exchange in one direction: forms for the
// unprotected payloads and, when those end in SK or SKF, forms for the
// decrypted inner payloads.
type grammar struct {
	exchange ExchangeType
	response bool
	outer    []form
	inner    []form
}

// Reusable forms.
var (
	// protectedOuter: everything is inside SK or SKF (RFC 7296 §1.2-1.5,
	// RFC 7383 §2.5); nothing travels unauthenticated beside it.
	protectedOuter = []form{
		{name: "SK", rules: []rule{{PayloadSK, 1, 1}, {PayloadNotify, 0, 0}, {PayloadVendorID, 0, 0}}},
		{name: "SKF", rules: []rule{{PayloadSKF, 1, 1}, {PayloadNotify, 0, 0}, {PayloadVendorID, 0, 0}}},
	}
	// notifyOnly is an error response: one or more Notify payloads.
	notifyOnly = form{name: "N+", rules: []rule{{PayloadNotify, 1, many}}}
	// childTogether: a Child SA needs its SA and both selectors.
	childTogether = []PayloadType{PayloadSA, PayloadTSi, PayloadTSr}
)

// grammars is the payload grammar of every exchange this package knows
// (RFC 7296 §1.2-1.5, RFC 9242 §3, RFC 9370 §2.2.2-2.2.4).
var grammars = []grammar{
	{exchange: ExchangeIKESAInit, response: false, outer: []form{
		// HDR, SA, KEi, Ni (with N(COOKIE) on a retry, §1.2, §2.6)
		{name: "SA, KEi, Ni", rules: []rule{{PayloadSA, 1, 1}, {PayloadKE, 1, 1}, {PayloadNonce, 1, 1}}},
	}},
	{exchange: ExchangeIKESAInit, response: true, outer: []form{
		// HDR, SA, KEr, Nr, [CERTREQ]
		{name: "SA, KEr, Nr, [CERTREQ]", rules: []rule{{PayloadSA, 1, 1}, {PayloadKE, 1, 1}, {PayloadNonce, 1, 1}, {PayloadCERTREQ, 0, many}}},
		// N(COOKIE), N(INVALID_KE_PAYLOAD), N(NO_PROPOSAL_CHOSEN)
		notifyOnly,
	}},
	{exchange: ExchangeIKEAuth, response: false, outer: protectedOuter, inner: []form{
		// SK {IDi, [CERT+], [CERTREQ+], [IDr], AUTH, [CP], SA, TSi, TSr}
		// with AUTH absent when EAP follows (§2.16) and SA/TSi/TSr absent
		// for childless initiation (RFC 6023).
		{name: "IDi, [CERT+], [CERTREQ+], [IDr], [AUTH], [CP], [SA, TSi, TSr]", rules: []rule{
			{PayloadIDi, 1, 1}, {PayloadCERT, 0, many}, {PayloadCERTREQ, 0, many}, {PayloadIDr, 0, 1},
			{PayloadAUTH, 0, 1}, {PayloadCP, 0, 1}, {PayloadSA, 0, 1}, {PayloadTSi, 0, 1}, {PayloadTSr, 0, 1},
		}, together: childTogether},
		// SK {EAP} during EAP (§1.2, §2.16)
		{name: "EAP", rules: []rule{{PayloadEAP, 1, 1}}},
		// SK {AUTH} after EAP succeeded (§2.16)
		{name: "AUTH", rules: []rule{{PayloadAUTH, 1, 1}}},
	}},
	{exchange: ExchangeIKEAuth, response: true, outer: protectedOuter, inner: []form{
		// SK {IDr, [CERT+], AUTH, [CP], SA, TSi, TSr}; IDr, CERT and EAP in
		// the first EAP round; no IDr in the final one (§2.16).
		{name: "[IDr], [CERT+], AUTH, [EAP], [CP], [SA, TSi, TSr]", rules: []rule{
			{PayloadIDr, 0, 1}, {PayloadCERT, 0, many}, {PayloadAUTH, 1, 1}, {PayloadEAP, 0, 1},
			{PayloadCP, 0, 1}, {PayloadSA, 0, 1}, {PayloadTSi, 0, 1}, {PayloadTSr, 0, 1},
		}, together: childTogether},
		{name: "EAP", rules: []rule{{PayloadEAP, 1, 1}}},
		// SK {IDr, [CERT+], EAP}: EAP-only authentication, no AUTH of the responder yet (RFC 5998 §3).
		{name: "IDr, [CERT+], EAP", rules: []rule{{PayloadIDr, 1, 1}, {PayloadCERT, 0, many}, {PayloadEAP, 1, 1}}},
		notifyOnly,
	}},
	{exchange: ExchangeCreateChildSA, response: false, outer: protectedOuter, inner: []form{
		// SK {[N(REKEY_SA)], SA, Ni, [KEi], TSi, TSr} for a Child SA,
		// SK {SA, Ni, KEi} to rekey the IKE SA (§1.3).
		{name: "SA, Ni, [KEi], [TSi, TSr]", rules: []rule{
			{PayloadSA, 1, 1}, {PayloadNonce, 1, 1}, {PayloadKE, 0, 1}, {PayloadTSi, 0, 1}, {PayloadTSr, 0, 1},
		}, together: []PayloadType{PayloadTSi, PayloadTSr}},
	}},
	{exchange: ExchangeCreateChildSA, response: true, outer: protectedOuter, inner: []form{
		{name: "SA, Nr, [KEr], [TSi, TSr]", rules: []rule{
			{PayloadSA, 1, 1}, {PayloadNonce, 1, 1}, {PayloadKE, 0, 1}, {PayloadTSi, 0, 1}, {PayloadTSr, 0, 1},
		}, together: []PayloadType{PayloadTSi, PayloadTSr}},
		notifyOnly,
	}},
	{exchange: ExchangeInformational, response: false, outer: informationalOuter(), inner: informationalInner()},
	{exchange: ExchangeInformational, response: true, outer: informationalOuter(), inner: informationalInner()},
	{exchange: ExchangeIKEIntermediate, response: false, outer: protectedOuter, inner: []form{
		// SK {KEi(n)} for an additional key exchange (RFC 9370 §2.2.2);
		// other extensions add only Notify payloads so far.
		{name: "[KEi]", rules: []rule{{PayloadKE, 0, 1}}},
	}},
	{exchange: ExchangeIKEIntermediate, response: true, outer: protectedOuter, inner: []form{
		{name: "[KEr]", rules: []rule{{PayloadKE, 0, 1}}},
	}},
	{exchange: ExchangeIKEFollowupKE, response: false, outer: protectedOuter, inner: []form{
		// SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)} (RFC 9370 §2.2.4)
		{name: "KEi", rules: []rule{{PayloadKE, 1, 1}, {PayloadNotify, 1, many}}},
	}},
	{exchange: ExchangeIKEFollowupKE, response: true, outer: protectedOuter, inner: []form{
		{name: "KEr", rules: []rule{{PayloadKE, 1, 1}}},
		notifyOnly,
	}},
}

// informationalOuter: protected, or outside any IKE SA a bare Notify such
// as INVALID_IKE_SPI (RFC 7296 §1.5).
func informationalOuter() []form {
	return append(protectedOuter[:len(protectedOuter):len(protectedOuter)],
		form{name: "N+ (outside an IKE SA)", rules: []rule{{PayloadNotify, 1, many}, {PayloadVendorID, 0, 0}}})
}

// informationalInner: SK {[N,] [D,] [CP,] ...}, possibly empty (§1.4).
func informationalInner() []form {
	return []form{{name: "[D+], [CP]", rules: []rule{{PayloadDelete, 0, many}, {PayloadCP, 0, 1}}}}
}

// CheckGrammar checks that m, and inner (the decrypted payloads of its SK
// payload, or of its reassembled SKF fragments), have the payloads the
// exchange and direction of m's header call for. Unknown payloads are
// ignored (their critical bit was honoured by Decode). The error maps to
// INVALID_SYNTAX and names the missing or unexpected payload.
func CheckGrammar(m *Message, inner []Payload) error {
	g := findGrammar(m.Exchange, m.IsResponse())
	if g == nil {
		return &Error{Notify: InvalidSyntax, Offset: -1, Msg: fmt.Sprintf("no payload grammar for exchange %v", m.Exchange)}
	}
	// where names the message in errors; it is built only then, since every received message is
	// checked and the check is on the IKE hot path.
	where := func() string { return fmt.Sprintf("%v %s", m.Exchange, direction(m.IsResponse())) }
	if err := matchForms(where, "", g.outer, m.Payloads); err != nil {
		return err
	}
	protected := false
	if n := len(m.Payloads); n > 0 {
		switch m.Payloads[n-1].(type) {
		case *Encrypted, *EncryptedFragment:
			protected = true
		}
	}
	if !protected {
		if len(inner) != 0 {
			return &Error{Notify: InvalidSyntax, Offset: -1, Msg: where() + ": inner payloads given for a message without SK"}
		}
		return nil
	}
	return matchForms(where, " (encrypted)", g.inner, inner)
}

func direction(response bool) string {
	if response {
		return "response"
	}
	return "request"
}

func findGrammar(x ExchangeType, response bool) *grammar {
	for i := range grammars {
		if grammars[i].exchange == x && grammars[i].response == response {
			return &grammars[i]
		}
	}
	return nil
}

// payloadCounts counts the payloads of a message by type; an array indexed
// by the 8-bit type, so that counting and checking allocate nothing.
type payloadCounts [256]int

// matchForms accepts ps if any form matches; otherwise it reports the
// complaints against the form that came closest (fewest complaints, the
// earlier form on a tie). The message is named by where() + suffix.
func matchForms(where func() string, suffix string, forms []form, ps []Payload) error {
	var counts payloadCounts
	for _, p := range ps {
		if _, unknown := p.(*Unknown); !unknown {
			counts[p.Type()]++
		}
	}
	var best []string
	bestForm := ""
	for _, f := range forms {
		complaints := f.check(&counts)
		if len(complaints) == 0 {
			return nil
		}
		if best == nil || len(complaints) < len(best) {
			best, bestForm = complaints, f.name
		}
	}
	return &Error{
		Notify: InvalidSyntax,
		Offset: -1,
		Msg:    fmt.Sprintf("%s%s does not match %q: %s", where(), suffix, bestForm, strings.Join(best, "; ")),
	}
}

// check lists what keeps counts from matching f, in a fixed order: rule
// violations in rule order, then unexpected types by type number, then
// broken togetherness.
func (f *form) check(counts *payloadCounts) []string {
	var complaints []string
	var ruled [256]bool
	for _, r := range f.rules {
		ruled[r.t] = true
		n := counts[r.t]
		switch {
		case n < r.min:
			complaints = append(complaints, fmt.Sprintf("missing %v", r.t))
		case r.max != many && n > r.max && r.max == 0:
			complaints = append(complaints, fmt.Sprintf("unexpected %v", r.t))
		case r.max != many && n > r.max:
			complaints = append(complaints, fmt.Sprintf("%d %v payloads, at most %d allowed", n, r.t, r.max))
		}
	}
	for t := range 256 {
		pt := PayloadType(t)
		if counts[pt] == 0 || ruled[pt] || pt == PayloadNotify || pt == PayloadVendorID {
			continue
		}
		complaints = append(complaints, fmt.Sprintf("unexpected %v", pt))
	}
	if len(f.together) > 0 {
		present := 0
		for _, t := range f.together {
			if counts[t] > 0 {
				present++
			}
		}
		if present != 0 && present != len(f.together) {
			for _, t := range f.together {
				if counts[t] == 0 {
					complaints = append(complaints, fmt.Sprintf("missing %v (it goes with %v)", t, togetherNames(f.together)))
				}
			}
		}
	}
	return complaints
}

func togetherNames(ts []PayloadType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	return strings.Join(names, ", ")
}
