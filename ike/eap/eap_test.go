package eap

import (
	"bytes"
	"strings"
	"testing"
)

// converse runs a server and a client against each other until the server decides.
func converse(t *testing.T, s *Server, c *Client) *Result {
	t.Helper()
	req, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		resp, err := c.Process(req)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		out, res, err := s.Process(resp)
		if err != nil {
			t.Fatalf("server: %v", err)
		}
		if res != nil {
			if _, err := c.Process(out); err != nil {
				t.Fatalf("client on the outcome: %v", err)
			}
			return res
		}
		req = out
	}
	t.Fatal("conversation did not end")
	return nil
}

func users(m map[string]string) func(string) ([]byte, bool) {
	return func(u string) ([]byte, bool) {
		p, ok := m[u]
		return []byte(p), ok
	}
}

func TestConversations(t *testing.T) {
	db := users(map[string]string{"carol": "carol-secret"})
	for _, tc := range []struct {
		name       string
		server     []Type
		client     []Type
		password   string
		askID      bool
		wantMethod Type
		wantOK     bool
		wantMSK    bool
		wantErr    string
	}{
		{"mschapv2", []Type{TypeMSCHAPv2}, nil, "carol-secret", true, TypeMSCHAPv2, true, true, ""},
		{"mschapv2 wrong password", []Type{TypeMSCHAPv2}, nil, "nope", true, TypeMSCHAPv2, false, false, "wrong password"},
		{"md5", []Type{TypeMD5}, nil, "carol-secret", false, TypeMD5, true, false, ""},
		{"md5 wrong password", []Type{TypeMD5}, nil, "x", true, TypeMD5, false, false, "wrong password"},
		{"dynamic: client naks md5", []Type{TypeMD5, TypeMSCHAPv2}, []Type{TypeMSCHAPv2}, "carol-secret", true, TypeMSCHAPv2, true, true, ""},
		{"no common method", []Type{TypeMD5}, []Type{TypeMSCHAPv2}, "carol-secret", true, TypeMD5, false, false, "none of which is offered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := ""
			if !tc.askID {
				id = "carol"
			}
			s, err := NewServer(ServerConfig{Methods: tc.server, AskIdentity: tc.askID, Identity: id, Password: db})
			if err != nil {
				t.Fatal(err)
			}
			c := NewClient(ClientConfig{Identity: "carol", Methods: tc.client, Password: func() ([]byte, bool) { return []byte(tc.password), true }})
			res := converse(t, s, c)
			if res.Success != tc.wantOK || (res.MSK != nil) != tc.wantMSK || res.Identity != "carol" {
				t.Fatalf("result %+v", res)
			}
			if tc.wantErr != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", res.Err, tc.wantErr)
			}
			cr := c.Result()
			if cr == nil || cr.Success != tc.wantOK {
				t.Fatalf("client result %+v", cr)
			}
			if tc.wantOK && res.Method != tc.wantMethod {
				t.Fatalf("method %s", res.Method)
			}
			if tc.wantMSK && !bytes.Equal(cr.MSK, res.MSK) {
				t.Fatal("MSKs differ")
			}
			if tc.wantMethod == TypeMSCHAPv2 && tc.wantOK && !c.Mutual() {
				t.Fatal("client did not check the server's authenticator response")
			}
		})
	}
}

func TestPacketCodec(t *testing.T) {
	p := &Packet{Code: CodeRequest, Identifier: 7, Type: TypeIdentity}
	b := p.Marshal()
	if !bytes.Equal(b, []byte{1, 7, 0, 5, 1}) {
		t.Fatalf("%x", b)
	}
	for _, bad := range [][]byte{{1, 7, 0, 4}, {1, 7, 0, 6, 1}, {3, 1, 0, 5, 0}, {9, 1, 0, 4}, {1}} {
		if _, err := Parse(bad); err == nil {
			t.Fatalf("accepted %x", bad)
		}
	}
}

func FuzzServer(f *testing.F) {
	f.Add([]byte{2, 1, 0, 10, 1, 'c', 'a', 'r', 'o', 'l'})
	f.Add([]byte{2, 2, 0, 6, 3, 26})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []Type{TypeMSCHAPv2, TypeMD5} {
			s, _ := NewServer(ServerConfig{Methods: []Type{m, TypeMD5}, AskIdentity: true, Password: users(map[string]string{"carol": "x"})})
			s.Start()
			// The fuzzer's packet answers whatever identifier; make it match the request.
			if len(b) > 1 {
				b[1] = s.last.Identifier
			}
			out, _, err := s.Process(b)
			if err == nil && len(out) > 1 && len(b) > 4 {
				b2 := append([]byte(nil), b...)
				b2[1] = s.last.Identifier
				s.Process(b2)
			}
		}
		c := NewClient(ClientConfig{Identity: "carol", Password: func() ([]byte, bool) { return []byte("x"), true }})
		c.Process(b)
	})
}
