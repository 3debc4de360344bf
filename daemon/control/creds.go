package control

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/vici"
)

// credCommands are the credential commands for pre-shared keys. Certificates and private keys
// (load-cert, load-key, ...) belong in a file of their own next to this one.
func (s *Service) credCommands(r *vici.Registry) {
	r.Handle("load-shared", s.loadShared)
	r.Handle("unload-shared", s.unloadShared)
	r.Handle("get-shared", s.getShared)
	r.Handle("get-keys", func(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
		return vici.NewMessage().SetList("keys"), nil
	})
	r.Handle("clear-creds", s.clearCreds)
}

func (s *Service) loadShared(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	if t := strings.ToLower(req.Get("type")); t != "ike" {
		return nil, fmt.Errorf("shared secrets of type %q are not supported (only ike)", req.Get("type"))
	}
	id := req.Get("id")
	if id == "" {
		id = fmt.Sprintf("vici-%d", time.Now().UnixNano())
	}
	// Through the configuration parser, like a secrets { } section in the file: the same checks
	// apply, and the secret travels hex-encoded so no byte of it can change the syntax.
	var b strings.Builder
	fmt.Fprintf(&b, "secrets {\n    ike-%s {\n", sanitizeName(id))
	for i, owner := range req.List("owners") {
		fmt.Fprintf(&b, "        id-%d = %s\n", i+1, quoteValue(owner))
	}
	fmt.Fprintf(&b, "        secret = 0x%s\n    }\n}\n", hex.EncodeToString([]byte(req.Get("data"))))
	tree, err := config.Parse("vici:load-shared", []byte(b.String()))
	if err != nil {
		return nil, err
	}
	parsed, err := config.FromTree(tree)
	if err != nil {
		return nil, err
	}
	psk := parsed.Secrets.IKE[0]
	psk.Name = id
	err = s.edit(func(c *config.Config) error {
		for i, old := range c.Secrets.IKE {
			if old.Name == id {
				c.Secrets.IKE[i] = psk
				return nil
			}
		}
		c.Secrets.IKE = append(c.Secrets.IKE, psk)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (s *Service) unloadShared(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	id := req.Get("id")
	err := s.edit(func(c *config.Config) error {
		for i, old := range c.Secrets.IKE {
			if old.Name == id {
				c.Secrets.IKE = append(c.Secrets.IKE[:i], c.Secrets.IKE[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("shared secret %q not found", id)
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func (s *Service) getShared(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var ids []string
	for _, sec := range s.d.Config().Secrets.IKE {
		ids = append(ids, sec.Name)
	}
	return vici.NewMessage().SetList("keys", ids...), nil
}

func (s *Service) clearCreds(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	if err := s.edit(func(c *config.Config) error { c.Secrets.IKE = nil; return nil }); err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}
