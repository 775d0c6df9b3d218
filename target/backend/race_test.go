//go:build race

package backend

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// the bounce path allocates.
const raceEnabled = true
