package control

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/vici"
)

// poolCommands are strongSwan's pool commands: swanctl --load-pools, --list-pools [--leases].
// Pools change through the configuration (Apply keeps the leases of pools whose range stays).
func (s *Service) poolCommands(r *vici.Registry) {
	r.Handle("load-pool", s.loadPool)
	r.Handle("unload-pool", s.unloadPool)
	r.Handle("get-pools", s.getPools)
}

// loadPool adds or replaces pools: { <name> = { addrs = ..., dns = [...], ... } }, the
// swanctl.conf pools syntax.
func (s *Service) loadPool(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	var b strings.Builder
	b.WriteString("pools {\n")
	if err := sectionToText(&b, req, "    "); err != nil {
		return nil, err
	}
	b.WriteString("}\n")
	tree, err := config.Parse("vici:load-pool", []byte(b.String()))
	if err != nil {
		return nil, err
	}
	parsed, err := config.FromTree(tree)
	if err != nil {
		return nil, err
	}
	err = s.edit(func(c *config.Config) error {
		c.Pools = append([]*config.Pool(nil), c.Pools...)
		for _, p := range parsed.Pools {
			replaced := false
			for i, old := range c.Pools {
				if old.Name == p.Name {
					c.Pools[i], replaced = p, true
				}
			}
			if !replaced {
				c.Pools = append(c.Pools, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func (s *Service) unloadPool(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	name := req.Get("name")
	for _, p := range s.d.Status().Pools {
		if p.Name == name && p.Online > 0 {
			return nil, fmt.Errorf("pool %s has %d online leases", name, p.Online)
		}
	}
	found := false
	err := s.edit(func(c *config.Config) error {
		var keep []*config.Pool
		for _, p := range c.Pools {
			if p.Name == name {
				found = true
				continue
			}
			keep = append(keep, p)
		}
		if !found {
			return fmt.Errorf("no pool named %q", name)
		}
		for _, conn := range c.Connections {
			for _, n := range conn.Pools {
				if n == name {
					return fmt.Errorf("pool %s is used by connection %s", name, conn.Name)
				}
			}
		}
		c.Pools = keep
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

// getPools answers as strongSwan: per pool its base address, size, online and offline counts,
// and with leases = yes each lease's address, identity and status.
func (s *Service) getPools(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	withLeases := req.Get("leases") == "yes"
	want := req.Get("name")
	out := vici.NewMessage()
	for _, p := range s.d.Status().Pools {
		if want != "" && p.Name != want {
			continue
		}
		sec := out.AddSection(p.Name)
		sec.Set("base", p.First).Set("size", strconv.FormatUint(p.Size, 10)).
			Set("online", strconv.Itoa(p.Online)).Set("offline", strconv.Itoa(p.Offline))
		if withLeases {
			ls := sec.AddSection("leases")
			for i, l := range p.Leases {
				st := "offline"
				if l.Online {
					st = "online"
				}
				ls.AddSection(strconv.Itoa(i)).Set("address", l.Address).Set("identity", l.Identity).Set("status", st)
			}
		}
	}
	return out, nil
}
