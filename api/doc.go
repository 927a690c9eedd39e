// Package api holds Candor's wire types and formats, and nothing else: it
// does no I/O, keeps no state and is safe to import from every other package.
//
// It implements these C2SP specifications:
//
//   - c2sp.org/tlog-tiles: tile and entry bundle paths ([Tile],
//     [ParseTilePath], [TileForSize]) and the entry bundle encoding
//     ([AppendBundleEntry], [ParseEntryBundle]).
//   - c2sp.org/tlog-checkpoint: the checkpoint note text ([Checkpoint],
//     [ParseCheckpoint]), signed and opened as a c2sp.org/signed-note with
//     golang.org/x/mod/sumdb/note ([SignCheckpoint], [OpenCheckpoint]).
//   - c2sp.org/tlog-proof@v1: the offline inclusion proof bundle
//     ([ProofBundle], [ParseProofBundle], [VerifyProofBundle]).
//
// Merkle tree hashing is RFC 6962 (github.com/transparency-dev/merkle).
// Candor's own formats, such as its log entries, live alongside these.
//
// The tile path, entry bundle, checkpoint and proof bundle parsers are
// strict: each accepts only what its Marshal (or Path, or
// AppendBundleEntry) counterpart produces, so that a value and its encoding
// map one to one. The fuzz tests check that property.
package api
