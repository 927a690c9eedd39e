// Package integration holds black-box tests of Candor's built binaries:
// each test builds cmd/candor-log once (TestMain), runs it as a separate
// process on loopback, and talks to it only over HTTP, its stdout and its
// data directory, the way an operator or a client would.
//
//   - TestKill9Durability kills the log with SIGKILL under concurrent load,
//     again and again, and checks that every acknowledged entry survives
//     byte for byte and that every checkpoint ever seen is consistent with
//     the one published after the restart.
//   - TestRestartKeepsKeyAndOrigin checks the key file and the origin across
//     restarts; TestKill9DuringFirstStart kills the very first start and
//     expects the data directory to start afterwards.
//   - TestFsckDetectsCorruption flips bytes in the stored tiles and bundles
//     and expects `candor-log fsck` (and, for the tree's right edge, the
//     server itself) to name them.
//   - TestBadInputChangesNothing sends bad submissions and checks that they
//     get 4xx JSON errors and leave the checkpoint untouched.
//
// The tests are skipped under -short. When the tests run with -race, the
// binaries are built with -race too (override with CANDOR_BINARY_RACE=0 or
// 1), and a data race reported by a server fails the test.
package integration
