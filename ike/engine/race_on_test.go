//go:build race

package engine_test

// raceEnabled: the race detector is on (sync.Pool then drops some items on purpose, and
// instrumented code keeps more on the heap), so allocation counts are higher.
const raceEnabled = true
