package control

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/vici"
)

func (s *Service) connCommands(r *vici.Registry) {
	r.Handle("list-conns", s.listConns)
	r.Handle("get-conns", s.getConns)
	r.Handle("load-conn", s.loadConn)
	r.Handle("unload-conn", s.unloadConn)
}

func (s *Service) listConns(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	want := req.Get("ike")
	for _, c := range s.d.Config().Connections {
		if want != "" && c.Name != want {
			continue
		}
		ev := vici.NewMessage()
		sec := ev.AddSection(c.Name)
		sec.SetList("local_addrs", addrList(c.LocalAddrs)...)
		sec.SetList("remote_addrs", addrList(c.RemoteAddrs)...)
		sec.Set("version", "IKEv2")
		sec.Set("reauth_time", "0").Set("rekey_time", secs(c.RekeyTime))
		sec.Set("unique", "UNIQUE_NO")
		if c.DPDDelay > 0 {
			sec.Set("dpd_delay", secs(c.DPDDelay))
		}
		for _, side := range []struct {
			name string
			a    config.Auth
		}{{"local-1", c.Local}, {"remote-1", c.Remote}} {
			as := sec.AddSection(side.name)
			as.Set("id", side.a.ID.Text).Set("class", "pre-shared key")
			as.SetList("groups").SetList("cert_policy").SetList("certs").SetList("cacerts")
		}
		ch := sec.AddSection("children")
		for _, child := range c.Children {
			cs := ch.AddSection(child.Name)
			cs.Set("mode", strings.ToUpper(string(child.Mode))).Set("rekey_time", secs(child.RekeyTime)).
				Set("rekey_bytes", strconv.FormatUint(child.RekeyBytes, 10)).Set("rekey_packets", strconv.FormatUint(child.RekeyPackets, 10)).
				Set("dpd_action", string(child.DPDAction)).Set("close_action", string(child.CloseAction))
			cs.SetList("local-ts", tsConfList(child.LocalTS)...)
			cs.SetList("remote-ts", tsConfList(child.RemoteTS)...)
		}
		if err := stream.Stream("list-conn", ev); err != nil {
			return nil, err
		}
	}
	return vici.NewMessage(), nil
}

func (s *Service) getConns(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var names []string
	for _, c := range s.d.Config().Connections {
		names = append(names, c.Name)
	}
	return vici.NewMessage().SetList("conns", names...), nil
}

func addrList(list []config.Address) []string {
	if len(list) == 0 {
		return []string{"%any"}
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		switch a.Kind {
		case config.AddrAny:
			out = append(out, "%any")
		case config.AddrSingle:
			out = append(out, a.Start.String())
		case config.AddrPrefix:
			out = append(out, a.Prefix.String())
		case config.AddrRange:
			out = append(out, a.Start.String()+"-"+a.End.String())
		default:
			out = append(out, a.Host)
		}
	}
	return out
}

func tsConfList(list []config.TrafficSelector) []string {
	if len(list) == 0 {
		return []string{"dynamic"}
	}
	out := make([]string, 0, len(list))
	for _, t := range list {
		out = append(out, t.String())
	}
	return out
}

func secs(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

// edit applies the configuration in force changed by fn. The copy is shallow: fn replaces
// elements of the copied slices, never edits what they point to.
func (s *Service) edit(fn func(c *config.Config) error) error {
	cur := s.d.Config()
	next := *cur
	next.Connections = append([]*config.Connection(nil), cur.Connections...)
	next.Secrets.IKE = append([]*config.PSK(nil), cur.Secrets.IKE...)
	if err := fn(&next); err != nil {
		return err
	}
	return s.d.Apply(&next)
}

func (s *Service) loadConn(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	if err := s.inlineCreds(req); err != nil { // certs.go
		return nil, err
	}
	var b strings.Builder
	b.WriteString("connections {\n")
	if err := sectionToText(&b, req, "    "); err != nil {
		return nil, err
	}
	b.WriteString("}\n")
	tree, err := config.Parse("vici:load-conn", []byte(b.String()))
	if err != nil {
		return nil, err
	}
	parsed, err := config.FromTree(tree)
	if err != nil {
		return nil, err
	}
	if len(parsed.Connections) != 1 {
		return nil, fmt.Errorf("load-conn needs exactly one connection, got %d", len(parsed.Connections))
	}
	conn := parsed.Connections[0]
	err = s.edit(func(c *config.Config) error {
		for i, old := range c.Connections {
			if old.Name == conn.Name {
				c.Connections[i] = conn
				return nil
			}
		}
		c.Connections = append(c.Connections, conn)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func (s *Service) unloadConn(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	name := req.Get("name")
	if name == "" {
		return nil, errors.New("unload-conn needs name")
	}
	err := s.edit(func(c *config.Config) error {
		for i, old := range c.Connections {
			if old.Name == name {
				c.Connections = append(c.Connections[:i], c.Connections[i+1:]...)
				return nil
			}
		}
		return noSuchConnection(name, c)
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

// noSuchConnection is the error for a connection name the configuration does not have; it names
// the configured ones, so a typo is obvious.
func noSuchConnection(name string, c *config.Config) error {
	var names []string
	for _, conn := range c.Connections {
		names = append(names, conn.Name)
	}
	if len(names) == 0 {
		return fmt.Errorf("no such connection %q (none is configured)", name)
	}
	return fmt.Errorf("no such connection %q (configured: %s)", name, strings.Join(names, ", "))
}

func (s *Service) hasConn(name string) bool {
	for _, c := range s.d.Config().Connections {
		if c.Name == name {
			return true
		}
	}
	return false
}

// sectionToText turns a VICI message carrying a swanctl.conf section back into swanctl.conf
// syntax, so that loading over VICI goes through exactly the same parser and checks as the file.
// Names are checked so that a crafted key cannot inject configuration structure.
func sectionToText(b *strings.Builder, m *vici.Message, indent string) error {
	for _, it := range m.Items() {
		if !validName(it.Key) {
			return fmt.Errorf("invalid name %q in the request", it.Key)
		}
		switch it.Kind {
		case vici.KindValue:
			fmt.Fprintf(b, "%s%s = %s\n", indent, it.Key, quoteValue(it.Value))
		case vici.KindList:
			fmt.Fprintf(b, "%s%s = %s\n", indent, it.Key, quoteValue(strings.Join(it.List, ",")))
		case vici.KindSection:
			fmt.Fprintf(b, "%s%s {\n", indent, it.Key)
			if err := sectionToText(b, it.Section, indent+"    "); err != nil {
				return err
			}
			fmt.Fprintf(b, "%s}\n", indent)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func quoteValue(v string) string {
	if v == "" || strings.ContainsAny(v, "\"\\#{}\n\t") || strings.TrimSpace(v) != v {
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
		return `"` + r.Replace(v) + `"`
	}
	return v
}
