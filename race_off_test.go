//go:build !race

package wsrpc

// raceEnabled: see race_on_test.go.
const raceEnabled = false
