package appendbuf

import "testing"

func TestGrow(t *testing.T) {
	buf := make([]byte, 3, 10)
	copy(buf, "abc")
	head, tail := Grow(buf, 4)
	if len(head) != 7 || len(tail) != 4 || &head[0] != &buf[0] || &tail[0] != &head[3] {
		t.Fatalf("within capacity: head %d bytes, tail %d bytes, reused %v", len(head), len(tail), &head[0] == &buf[0])
	}
	head, tail = Grow(buf, 8)
	if len(head) != 11 || len(tail) != 8 || &head[0] == &buf[0] || string(head[:3]) != "abc" {
		t.Fatalf("beyond capacity: head %q (%d bytes), tail %d bytes", head[:3], len(head), len(tail))
	}
	if head, tail = Grow(nil, 0); len(head) != 0 || len(tail) != 0 {
		t.Fatalf("nothing: %d and %d bytes", len(head), len(tail))
	}
}
