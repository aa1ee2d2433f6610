//go:build race

package limit

// raceEnabled is true when the race detector is on; it makes the million-key test too slow.
const raceEnabled = true
