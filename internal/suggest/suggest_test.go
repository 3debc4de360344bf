package suggest

import "testing"

func TestClosest(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"propsals", "proposals"}, {"sha265", "sha256"}, {"aes", ""}, {"xyzzy", ""}, {"modp2084", "modp2048"},
	} {
		if got := Closest(tc.name, []string{"proposals", "sha256", "aes128", "modp2048"}); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance = %d", d)
	}
}
