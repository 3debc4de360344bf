package control

import (
	"strings"
	"testing"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/vici"
)

// viciSection is a load-conn request as swanctl sends it.
func viciSection() *vici.Message {
	m := vici.NewMessage()
	c := m.AddSection("home")
	c.SetList("remote_addrs", "192.0.2.1").SetList("local_addrs", "192.0.2.2").Set("version", "2")
	c.SetList("proposals", "aes256-sha256-x25519")
	c.AddSection("local").Set("auth", "psk").Set("id", "moon.example")
	c.AddSection("remote").Set("auth", "psk").Set("id", `odd "quoted" id`)
	ch := c.AddSection("children").AddSection("net")
	ch.SetList("local_ts", "10.1.0.0/16").SetList("remote_ts", "10.2.0.0/16", "10.3.0.0/16").SetList("esp_proposals", "aes256gcm16")
	return m
}

func injected() *vici.Message {
	m := vici.NewMessage()
	m.AddSection("home").Set("x = 1\n}\nsecrets {", "y")
	return m
}

// FuzzLoadConn feeds arbitrary load-conn messages through the VICI-to-config path: it must never
// panic, whatever a client sends.
func FuzzLoadConn(f *testing.F) {
	b, _ := viciSection().MarshalBinary()
	f.Add(b)
	b, _ = injected().MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := vici.UnmarshalMessage(data)
		if err != nil {
			return
		}
		var sb strings.Builder
		sb.WriteString("connections {\n")
		if sectionToText(&sb, m, "    ") != nil {
			return
		}
		sb.WriteString("}\n")
		if tree, err := config.Parse("vici", []byte(sb.String())); err == nil {
			config.FromTree(tree)
		}
	})
}
