package control

import (
	"context"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/vici"
)

func (s *Service) infoCommands(r *vici.Registry) {
	r.Handle("version", s.version)
	r.Handle("stats", s.stats)
	r.Handle("get-counters", s.counters)
}

func (s *Service) version(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var u unix.Utsname
	unix.Uname(&u)
	return vici.NewMessage().Set("daemon", "goipsec").Set("version", s.opts.Version).
		Set("sysname", unix.ByteSliceToString(u.Sysname[:])).Set("release", unix.ByteSliceToString(u.Release[:])).
		Set("machine", unix.ByteSliceToString(u.Machine[:])), nil
}

// stats answers in the layout swanctl --stats prints (docs/vici.md); goipsec has no worker pool
// or job queues in strongSwan's sense, so those are reported idle.
func (s *Service) stats(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	m := vici.NewMessage()
	up := m.AddSection("uptime")
	up.Set("running", time.Since(s.opts.Started).Round(time.Second).String()).Set("since", s.opts.Started.Format("Jan 02 15:04:05 2006"))
	w := m.AddSection("workers")
	n := strconv.Itoa(runtime.GOMAXPROCS(0))
	w.Set("total", n).Set("idle", n)
	w.AddSection("active").Set("critical", "0").Set("high", "0").Set("medium", "0").Set("low", "0")
	m.AddSection("queues").Set("critical", "0").Set("high", "0").Set("medium", "0").Set("low", "0")
	m.Set("scheduled", "0")
	total, half := 0, 0
	for _, sa := range s.d.SAs() {
		total++
		if st := sa.State.String(); st != "ESTABLISHED" && st != "DELETING" {
			half++
		}
	}
	m.AddSection("ikesas").Set("total", strconv.Itoa(total)).Set("half-open", strconv.Itoa(half))
	m.SetList("plugins", "goipsec-ike", "goipsec-esp-userspace", "goipsec-vici")
	return m, nil
}

// counters answers get-counters with strongSwan's counter names where one matches.
func (s *Service) counters(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	st := s.d.Status()
	m := vici.NewMessage()
	g := m.AddSection("counters").AddSection("")
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	g.Set("ike-rekey-init", u(st.IKE.Rekeys))
	g.Set("ike-retransmits", u(st.IKE.Retransmits))
	g.Set("ike-invalid", u(st.IKE.InvalidMessages))
	g.Set("ike-cookies-sent", u(st.IKE.CookiesSent))
	g.Set("ike-handshakes-ok", u(st.IKE.HandshakesOK))
	g.Set("ike-handshakes-failed", u(st.IKE.HandshakesFailed))
	m.Set("success", "yes")
	return m, nil
}
