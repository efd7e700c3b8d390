//go:build race

package wsrpc

// raceEnabled: the race detector slows every memory access ten times over;
// tests that count their work in calls do fewer.
const raceEnabled = true
