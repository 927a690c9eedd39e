package log

import (
	"context"
	"errors"

	"github.com/candorlog/candor/api"
)

// ErrNotFound is returned by Storage reads for a value that was never stored.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned by Storage.Commit when the stored tree size is not
// the one the commit expects: another writer got there first, or the caller's
// view of the log is stale. Nothing is written.
var ErrConflict = errors.New("storage conflict: stored tree size is not the expected one")

// Storage is what the log engine needs from a backend. Values are immutable
// once a checkpoint that covers them has been committed, except partial
// tiles and entry bundles, which only ever grow by appending.
//
// Implementations must be safe for concurrent use; Commit is only ever
// called by one goroutine at a time, but reads run concurrently with it.
// The exported suite in log/storagetest checks these rules.
type Storage interface {
	// ReadCheckpoint returns the last committed signed checkpoint and its
	// tree size, or (nil, 0, nil) if nothing was ever committed.
	ReadCheckpoint(ctx context.Context) (checkpoint []byte, size uint64, err error)

	// ReadTile returns the stored hashes of the tile at (level, index): the
	// concatenation of 1 to 256 hashes, at least as many as any committed
	// checkpoint requires. It returns ErrNotFound for a tile never written.
	// The returned slice is the caller's: storage keeps no reference to it.
	ReadTile(ctx context.Context, level uint8, index uint64) ([]byte, error)

	// ReadEntryBundle returns the stored entry bundle with the given index
	// (c2sp.org/tlog-tiles encoding), or ErrNotFound. The returned slice is
	// the caller's.
	ReadEntryBundle(ctx context.Context, index uint64) ([]byte, error)

	// LookupLeaf returns the index of the entry with the given leaf hash, or
	// ErrNotFound.
	LookupLeaf(ctx context.Context, leafHash []byte) (uint64, error)

	// Commit writes everything in c and the new checkpoint in one atomic,
	// durable (synced) write, if and only if the stored tree size is
	// c.OldSize (0 when nothing was committed yet). Otherwise it returns
	// ErrConflict and writes nothing. When Commit returns nil, the commit
	// survives a crash of the process or the machine. Storage keeps no
	// reference to c's slices.
	Commit(ctx context.Context, c *Commit) error
}

// EntryBundleAppender is a Storage that reads an entry bundle into memory
// of the caller's: the log then reads bundles into buffers it reuses,
// rather than have each read allocate one (a full bundle is some 230 KB,
// read thousands of times a second).
type EntryBundleAppender interface {
	// AppendEntryBundle appends the bundle ReadEntryBundle returns to dst.
	AppendEntryBundle(ctx context.Context, dst []byte, index uint64) ([]byte, error)
}

// EncodedEntryBundleReader is a Storage that keeps full entry bundles
// compressed in an HTTP content coding: the log serves them as they are
// stored to the clients that take that coding, with no decompression and
// a fraction of the bytes.
type EncodedEntryBundleReader interface {
	// AppendEncodedEntryBundle appends the full entry bundle index,
	// compressed in the content coding coding ("zstd"), to dst. It
	// returns false, and no error, if it does not hold the bundle so.
	AppendEncodedEntryBundle(ctx context.Context, dst []byte, index uint64, coding string) ([]byte, bool, error)
}

// PipelinedStorage is a Storage whose commits may overlap, like a
// write-ahead log that makes many writes durable with one sync. With one,
// the log keeps several commits in flight and publishes each once it is
// durable.
type PipelinedStorage interface {
	Storage
	// StartCommit starts c under Commit's rules. When it returns nil, c
	// passed the compare-and-swap and the next StartCommit sees c's tree
	// size, so it may build on c; wait then returns once c is durable, with
	// the error Commit would have returned, and must be called exactly
	// once. A commit started after c never survives a crash that c does
	// not. Calls to StartCommit never overlap; wait may run in another
	// goroutine, concurrently with the next StartCommit.
	StartCommit(ctx context.Context, c *Commit) (wait func() error, err error)
}

// Commit is one atomic update of the log: a batch of new entries, every
// tile and entry bundle they touch, and the checkpoint that covers them.
type Commit struct {
	OldSize, NewSize uint64
	// Checkpoint is the signed checkpoint for NewSize.
	Checkpoint []byte
	// Tiles are the complete new contents of every tile touched.
	Tiles []TileData
	// Bundles are the complete new contents of every entry bundle touched.
	Bundles []BundleData
	// Leaves maps the new entries' leaf hashes to their indexes. The
	// level-0 tiles hold the same hashes, at the same indexes.
	Leaves []LeafIndex
}

// TileData is the content of one tile: Hashes holds 1 to 256 hashes.
type TileData struct {
	Level  uint8
	Index  uint64
	Hashes []byte
	// Start is how many bytes at the beginning of Hashes an earlier commit
	// already stored, unchanged; a storage may write only Hashes[Start:].
	// 0 means the whole content is new.
	Start int
	// Rows, for the commit that fills the tile (api.TileWidth hashes),
	// are the hashes of its perfect subtrees of heights 4 to 7 (16, 8, 4
	// and 2 of them, in that order); nil otherwise. A storage that keeps
	// them (TileRowsReader) spares a proof the hashing of the tile.
	Rows []byte
}

// TileRowsSize is the size of a full tile's Rows.
const TileRowsSize = (api.TileWidth>>4 + api.TileWidth>>5 + api.TileWidth>>6 + api.TileWidth>>7) * api.HashSize

// TileRowsReader is a Storage that keeps the Rows of full tiles.
type TileRowsReader interface {
	// ReadTileRows returns the Rows committed with the tile at (level,
	// index), or ErrNotFound (a tile not full, or filled before the
	// storage kept them).
	ReadTileRows(ctx context.Context, level uint8, index uint64) ([]byte, error)
	// ReadFullTile returns the hashes of the full tile at (level, index)
	// and its Rows (nil if it was filled before the storage kept them),
	// or ErrNotFound if the tile is not full: what a proof needs of a
	// tile, read together.
	ReadFullTile(ctx context.Context, level uint8, index uint64) (hashes, rows []byte, err error)
}

// BundleData is the content of one entry bundle.
type BundleData struct {
	Index  uint64
	Bundle []byte
	// Start is how many bytes at the beginning of Bundle an earlier commit
	// already stored, unchanged (a whole number of entries); a storage may
	// write only Bundle[Start:]. 0 means the whole content is new.
	Start int
	// Full is true when the bundle has all 256 entries and never changes
	// again.
	Full bool
}

// LeafIndex records where the entry with a leaf hash sits in the log.
type LeafIndex struct {
	LeafHash []byte
	Index    uint64
	// Terms are the search terms the entry is found by, sorted and
	// without duplicates (api.SearchTerms); none for an entry that search
	// does not find. A SearchStorage indexes them in the same atomic write
	// as the entry; another Storage ignores them.
	Terms []api.SearchTerm
}
