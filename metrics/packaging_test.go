package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// known is every metric name the daemon exports: the collector's, its histogram's series and the
// Go and process collectors' (what Serve registers).
func known(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{"up": true} // Prometheus' own per-target metric
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		out[mf.GetName()] = true
	}
	ch := make(chan *prometheus.Desc, 100)
	New(&fakeSource{}, BuildInfo{}).Describe(ch)
	close(ch)
	name := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		n := name.FindStringSubmatch(d.String())[1]
		out[n] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			out[n+suffix] = true
		}
	}
	return out
}

// metricRef finds metric names in PromQL: goipsec's, the Go and process collectors', and up{...}.
var metricRef = regexp.MustCompile(`\b(goipsec_[a-z_]+|process_[a-z_]+|go_[a-z_]+|up\{)`)

// TestDashboardAndAlertsUseRealMetrics: the Grafana dashboard is valid JSON, and every metric the
// dashboard and the alert rules query is one goipsec exports — a renamed metric breaks this test,
// not an operator's alerting.
func TestDashboardAndAlertsUseRealMetrics(t *testing.T) {
	names := known(t)
	dash, err := os.ReadFile("../packaging/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	alerts, err := os.ReadFile("../packaging/prometheus-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(alerts), "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(line), "expr: "); ok {
			exprs = append(exprs, e)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("found only %d expressions", len(exprs))
	}
	perTunnel := 0
	for _, e := range exprs {
		refs := metricRef.FindAllStringSubmatch(e, -1)
		if len(refs) == 0 {
			t.Errorf("expression names no metric: %s", e)
		}
		for _, m := range refs {
			if !names[strings.TrimSuffix(m[1], "{")] {
				t.Errorf("%s is not a metric goipsec exports (in %s)", m[1], e)
			}
		}
		if strings.Contains(e, "goipsec_connection_up") {
			perTunnel++
		}
	}
	if perTunnel == 0 {
		t.Error("no expression watches goipsec_connection_up (one alert per tunnel)")
	}
}
