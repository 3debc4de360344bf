package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestLevelsPerSubsystem(t *testing.T) {
	var out bytes.Buffer
	h := New(Options{Out: &out, Level: slog.LevelInfo, Levels: map[string]slog.Level{"ike": slog.LevelDebug, "esp": slog.LevelError}})
	h.Logger("ike").Debug("ike detail", "spi", "abc")
	h.Logger("cfg").Debug("cfg detail")
	h.Logger("cfg").Info("cfg info")
	h.Logger("esp").Warn("esp warning")
	h.Logger("esp").Error("esp error")
	got := out.String()
	for _, want := range []string{"ike detail", "subsys=ike", "spi=abc", "cfg info", "esp error"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"cfg detail", "esp warning"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output has %q, filtered by level:\n%s", unwanted, got)
		}
	}
}

func TestJSONAndSubscribers(t *testing.T) {
	var out bytes.Buffer
	h := New(Options{Out: &out, Format: "json", Level: slog.LevelWarn})
	var got []Record
	cancel := h.Subscribe(slog.LevelDebug, func(r Record) { got = append(got, r) })
	h.Logger("ike").With("conn", "home").Debug("negotiating", "peer", "192.0.2.1")
	h.Logger("vici").Warn("client gone")
	cancel()
	h.Logger("ike").Error("after cancel")
	if len(got) != 2 || got[0].Subsys != "ike" || got[0].Msg != "negotiating" || got[0].Attrs != "conn=home peer=192.0.2.1" {
		t.Fatalf("subscriber got %+v", got)
	}
	if strings.Contains(out.String(), "negotiating") {
		t.Fatal("a debug record reached the warn-level output")
	}
	if !strings.Contains(out.String(), `"subsys":"vici"`) || !strings.Contains(out.String(), `"msg":"after cancel"`) {
		t.Fatalf("JSON output: %s", out.String())
	}
}

func TestSubscribeWhileInactiveFormatsNothing(t *testing.T) {
	h := New(Options{Level: slog.LevelError})
	listening := false
	var got []Record
	h.SubscribeWhile(slog.LevelDebug, func() bool { return listening }, func(r Record) { got = append(got, r) })
	l := h.Logger("ike")
	if l.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug enabled while the only subscriber is inactive")
	}
	l.Debug("unseen")
	listening = true
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug not enabled for an active subscriber")
	}
	l.Debug("seen")
	if len(got) != 1 || got[0].Msg != "seen" {
		t.Fatalf("got %+v", got)
	}
}
