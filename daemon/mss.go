package daemon

import (
	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
)

// clampMSS turns an mss_clamp setting into dataplane.SAParams.ClampMSS.
func clampMSS(c config.MSSClamp) int {
	if c.Auto {
		return dataplane.ClampMSSAuto
	}
	return int(c.Bytes)
}

// childClampMSS returns the ClampMSS of child in conn's configuration; 0 (off) when conn does not
// configure that child. The caller holds d.mu (a reload replaces conn.cfg).
func childClampMSS(conn *connection, child string) int {
	if conn == nil || conn.cfg == nil {
		return 0
	}
	for _, ch := range conn.cfg.Children {
		if ch.Name == child {
			return clampMSS(ch.MSSClamp)
		}
	}
	return 0
}
