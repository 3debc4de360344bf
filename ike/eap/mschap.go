package eap

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/goipsec/goipsec/ike/eap/mschapv2"
)

// EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2-02 §2): the Type-Data is an MS-CHAPv2 packet,
// OpCode | MS-CHAPv2-ID | MS-Length | value, MS-Length counting from the OpCode.
const (
	msOpChallenge = 1
	msOpResponse  = 2
	msOpSuccess   = 3
	msOpFailure   = 4
	msHeaderLen   = 4
)

func msPacket(op, id uint8, value []byte) []byte {
	b := make([]byte, msHeaderLen, msHeaderLen+len(value))
	b[0], b[1] = op, id
	binary.BigEndian.PutUint16(b[2:], uint16(msHeaderLen+len(value)))
	return append(b, value...)
}

type mschapServer struct {
	s         *Server
	msID      uint8
	challenge []byte
	msk       []byte
	succeeded bool
}

func newMSCHAPv2Server(s *Server) *mschapServer { return &mschapServer{s: s} }

func (m *mschapServer) start() ([]byte, error) {
	m.challenge = make([]byte, mschapv2.ChallengeLen)
	var id [1]byte
	if _, err := io.ReadFull(m.s.cfg.Rand, m.challenge); err != nil {
		return nil, err
	}
	io.ReadFull(m.s.cfg.Rand, id[:])
	m.msID = id[0]
	name := m.s.cfg.ServerName
	if name == "" {
		name = "goipsec"
	}
	value := append([]byte{mschapv2.ChallengeLen}, m.challenge...)
	return msPacket(msOpChallenge, m.msID, append(value, name...)), nil
}

func (m *mschapServer) process(data []byte) ([]byte, bool, []byte, error) {
	if len(data) < 1 {
		return nil, false, nil, errors.New("empty EAP-MSCHAPv2 response")
	}
	switch data[0] {
	case msOpResponse:
		if m.succeeded {
			return nil, false, nil, errors.New("EAP-MSCHAPv2 response after success")
		}
		// Value-Size 49, Response (Peer-Challenge 16, reserved 8, NT-Response 24, Flags 1), Name.
		if len(data) < msHeaderLen+1+mschapv2.ResponseLen || data[4] != mschapv2.ResponseLen || data[1] != m.msID {
			return nil, false, nil, errors.New("malformed EAP-MSCHAPv2 response")
		}
		resp := data[5 : 5+mschapv2.ResponseLen]
		peerChallenge := resp[:mschapv2.ChallengeLen]
		var nt [mschapv2.NTResponseLen]byte
		copy(nt[:], resp[24:48])
		// The user is the name in the packet (RFC 2759 §4); it must be the EAP identity.
		user := string(data[5+mschapv2.ResponseLen:])
		if user != m.s.identity {
			return nil, false, nil, fmt.Errorf("EAP-MSCHAPv2 user %q differs from EAP identity %q", user, m.s.identity)
		}
		pw, err := m.s.password()
		if err != nil {
			return nil, false, nil, err
		}
		want := mschapv2.GenerateNTResponse(m.challenge, peerChallenge, user, pw)
		if subtle.ConstantTimeCompare(want[:], nt[:]) != 1 {
			return nil, false, nil, fmt.Errorf("EAP-MSCHAPv2 response of %q does not verify: wrong password", user)
		}
		ar := mschapv2.AuthenticatorResponse(m.challenge, peerChallenge, user, pw, nt)
		m.msk = mschapv2.MSK(pw, nt)
		m.succeeded = true
		return msPacket(msOpSuccess, m.msID, []byte(ar+" M=Welcome")), false, nil, nil
	case msOpSuccess:
		if !m.succeeded || len(data) != 1 {
			return nil, false, nil, errors.New("unexpected EAP-MSCHAPv2 success response")
		}
		return nil, true, m.msk, nil
	case msOpFailure:
		return nil, false, nil, errors.New("client ended EAP-MSCHAPv2 with a failure")
	}
	return nil, false, nil, fmt.Errorf("unexpected EAP-MSCHAPv2 opcode %d", data[0])
}

// mschapClient is the road warrior's EAP-MSCHAPv2.
type mschapClient struct {
	c            *Client
	challenge    []byte
	peer         []byte
	nt           [mschapv2.NTResponseLen]byte
	msk          []byte
	authResponse string
}

func (m *mschapClient) process(data []byte) ([]byte, error) {
	if len(data) < msHeaderLen {
		return nil, errors.New("malformed EAP-MSCHAPv2 request")
	}
	op, id := data[0], data[1]
	switch op {
	case msOpChallenge:
		if len(data) < msHeaderLen+1+mschapv2.ChallengeLen || data[4] != mschapv2.ChallengeLen {
			return nil, errors.New("malformed EAP-MSCHAPv2 challenge")
		}
		pw, err := m.c.password()
		if err != nil {
			return nil, err
		}
		m.challenge = append([]byte(nil), data[5:5+mschapv2.ChallengeLen]...)
		m.peer = make([]byte, mschapv2.ChallengeLen)
		if _, err := io.ReadFull(m.c.cfg.Rand, m.peer); err != nil {
			return nil, err
		}
		user := m.c.cfg.Identity
		m.nt = mschapv2.GenerateNTResponse(m.challenge, m.peer, user, pw)
		m.authResponse = mschapv2.AuthenticatorResponse(m.challenge, m.peer, user, pw, m.nt)
		m.msk = mschapv2.MSK(pw, m.nt)
		clear(pw)
		value := []byte{mschapv2.ResponseLen}
		value = append(value, m.peer...)
		value = append(value, make([]byte, 8)...)
		value = append(value, m.nt[:]...)
		value = append(value, 0) // Flags
		value = append(value, user...)
		return msPacket(msOpResponse, id, value), nil
	case msOpSuccess:
		// RFC 2759 §5: the client checks the authenticator response before it believes anything.
		if m.authResponse == "" || !mschapv2.CheckAuthenticatorResponse(string(data[msHeaderLen:]), m.authResponse) {
			m.msk = nil
			return nil, errors.New("EAP-MSCHAPv2 server did not prove it knows our password (wrong authenticator response)")
		}
		m.c.mutual = true
		return []byte{msOpSuccess}, nil
	case msOpFailure:
		m.msk = nil
		m.c.failed = fmt.Errorf("EAP-MSCHAPv2 server refused our password: %q", string(data[msHeaderLen:]))
		return []byte{msOpFailure}, nil
	}
	return nil, fmt.Errorf("unexpected EAP-MSCHAPv2 opcode %d", op)
}

func (m *mschapClient) key() []byte { return m.msk }
