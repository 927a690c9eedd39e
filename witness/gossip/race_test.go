//go:build race

package gossip_test

// raceEnabled: the race detector slows 50 in-process memberlist nodes
// past any useful bound on a small machine.
const raceEnabled = true
