package vici

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// TestCallStreamingKeepsEveryEvent: every event streamed before the response arrives, in order,
// every time (govici 0.8.0 loses some when an event and the response wait together, which is why
// CallStreaming exists).
func TestCallStreamingKeepsEveryEvent(t *testing.T) {
	reg := NewRegistry()
	reg.Event("goipsec-test-part")
	reg.Handle("goipsec-test", func(_ context.Context, req *Message, s EventStreamer) (*Message, error) {
		n, _ := strconv.Atoi(req.Get("n"))
		for i := range n {
			if err := s.Stream("goipsec-test-part", NewMessage().Set("i", strconv.Itoa(i))); err != nil {
				return nil, err
			}
		}
		return NewMessage().Set("n", strconv.Itoa(n)), nil
	})
	_, path := startServer(t, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for round := range 200 {
		var got []string
		resp, err := CallStreaming(ctx, path, "goipsec-test", "goipsec-test-part", NewMessage().Set("n", "5"), func(m *Message) {
			got = append(got, m.Get("i"))
		})
		if err != nil || resp.Get("n") != "5" {
			t.Fatalf("round %d: %v, %v", round, resp, err)
		}
		if len(got) != 5 || got[0] != "0" || got[4] != "4" {
			t.Fatalf("round %d: events %q, want 0..4", round, got)
		}
	}
	if _, err := CallStreaming(ctx, path, "goipsec-test", "goipsec-undeclared", nil, func(*Message) {}); !errors.Is(err, ErrNoSuchEvent) {
		t.Errorf("undeclared event: %v, want ErrNoSuchEvent", err)
	}
	if _, err := CallStreaming(ctx, path, "goipsec-nonexistent", "goipsec-test-part", nil, func(*Message) {}); !errors.Is(err, ErrNoSuchCommand) {
		t.Errorf("unknown command: %v, want ErrNoSuchCommand", err)
	}
	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if _, err := CallStreaming(canceled, path, "goipsec-test", "goipsec-test-part", nil, func(*Message) {}); err == nil {
		t.Error("canceled context: no error")
	}
}
