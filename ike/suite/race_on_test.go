//go:build race

package suite

// raceEnabled: the race detector is on (sync.Pool then drops some items on purpose, so
// allocation counts are not exact).
const raceEnabled = true
