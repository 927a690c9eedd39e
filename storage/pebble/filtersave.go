package pebble

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/api"
)

// The saved leaf filter.
//
// Filling a filter scans the whole leaf index: at 100 M entries that is
// about a minute of a core and 4 GB read at every start, with the
// lookups of new entries reading pebble meanwhile. So the store writes
// the filter in use to a file of the database's directory when it closes,
// and the next open fills its first filter from that file and the leaf
// hashes of the entries committed after it (from the level-0 tiles), or
// scans if the file is missing, unreadable, of another size or of another
// log. The file:
//
//	magic (8) ‖ blocks u64 ‖ added u64 ‖ size u64 ‖ leaf hash of entry size-1 (32)
//	‖ the filter's words (u64 little-endian) ‖ CRC-32C of all before it (u32 BE)
//
// where size is the tree size whose leaves the filter holds (every leaf
// of a commit is added before the commit is written). The leaf hash ties
// the file to its log: a database restored from an older copy, or
// another log's, does not have it at that index. A torn or partly written
// file fails its CRC. A filter loaded from a file that is then found
// wrong has only more bits set than its leaves give it: more false
// positives, never a missed leaf.
const (
	savedFilterName   = "leaf-filter"
	savedFilterHeader = 8 + 8 + 8 + 8 + api.HashSize
)

var savedFilterMagic = [8]byte{'c', 'a', 'n', 'd', 'o', 'r', 'F', 1}

// savedFilter is the header of a saved filter.
type savedFilter struct {
	blocks, added, size uint64
	last                [api.HashSize]byte
}

func (h savedFilter) bytes() int64 { return int64(h.blocks) * blockWords * 8 }

func (h savedFilter) encode() []byte {
	b := append([]byte(nil), savedFilterMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, h.blocks)
	b = binary.BigEndian.AppendUint64(b, h.added)
	b = binary.BigEndian.AppendUint64(b, h.size)
	return append(b, h.last[:]...)
}

// save writes f, which holds every leaf of the log's first size entries
// (the last of them last), to path, through a temporary file beside it
// (path.tmp, which a save cut short leaves for the next to overwrite)
// renamed over it.
func (f *leafFilter) save(path string, size uint64, last []byte) (err error) {
	h := savedFilter{blocks: f.blocks, added: f.added.Load(), size: size}
	copy(h.last[:], last)
	tmp, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(tmp, crc), 1<<20)
	if _, err := w.Write(h.encode()); err != nil {
		return err
	}
	var word [8]byte
	for i := range f.words {
		binary.LittleEndian.PutUint64(word[:], f.words[i].Load())
		if _, err := w.Write(word[:]); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if _, err := tmp.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readSavedFilter returns the header of the saved filter at path, if its
// length agrees with it.
func readSavedFilter(path string) (savedFilter, error) {
	var h savedFilter
	file, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer file.Close()
	b := make([]byte, savedFilterHeader)
	if _, err := io.ReadFull(file, b); err != nil {
		return h, fmt.Errorf("header: %w", err)
	}
	if !bytes.Equal(b[:8], savedFilterMagic[:]) {
		return h, fmt.Errorf("not a saved leaf filter (magic %x)", b[:8])
	}
	h.blocks = binary.BigEndian.Uint64(b[8:])
	h.added = binary.BigEndian.Uint64(b[16:])
	h.size = binary.BigEndian.Uint64(b[24:])
	copy(h.last[:], b[32:])
	st, err := file.Stat()
	if err != nil {
		return h, err
	}
	if h.blocks == 0 || h.blocks > 1<<40 || st.Size() != savedFilterHeader+h.bytes()+4 {
		return h, fmt.Errorf("%d bytes for a filter of %d blocks", st.Size(), h.blocks)
	}
	return h, nil
}

// load adds to f the saved filter at path, whose header is h, once its
// CRC is checked, and then the leaf hashes of the entries from h.size to
// size from the level-0 tiles in db, after checking that db holds the
// leaf hash h says at h.size-1. f has h.blocks blocks and takes adds
// meanwhile.
func (f *leafFilter) load(ctx context.Context, path string, h savedFilter, db *pebble.DB, size uint64) error {
	if h.size > size {
		return fmt.Errorf("it holds %d entries, the log has %d", h.size, size)
	}
	if h.size > 0 {
		var last []byte
		if err := eachLeafHash(ctx, db, h.size-1, h.size, func(l []byte) { last = l }); err != nil {
			return err
		}
		if !bytes.Equal(last, h.last[:]) {
			return fmt.Errorf("entry %d of the log has leaf hash %x, the file says %x: it is of another log", h.size-1, last, h.last)
		}
	}
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	// The CRC first, so that a damaged file adds nothing.
	crc := crc32.New(castagnoli)
	if _, err := io.Copy(crc, io.NewSectionReader(file, 0, savedFilterHeader+h.bytes())); err != nil {
		return err
	}
	var sum [4]byte
	if _, err := file.ReadAt(sum[:], savedFilterHeader+h.bytes()); err != nil {
		return err
	}
	if crc.Sum32() != binary.BigEndian.Uint32(sum[:]) {
		return errors.New("CRC mismatch")
	}
	r := bufio.NewReaderSize(io.NewSectionReader(file, savedFilterHeader, h.bytes()), 1<<20)
	var word [8]byte
	for i := range f.words {
		if _, err := io.ReadFull(r, word[:]); err != nil {
			return err
		}
		if v := binary.LittleEndian.Uint64(word[:]); v != 0 {
			f.words[i].Or(v)
		}
		if i%(1<<16) == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	f.added.Add(h.added)
	return eachLeafHash(ctx, db, h.size, size, f.add)
}

// eachLeafHash calls each with the leaf hash of every entry from from to
// to, in order, read from the level-0 tiles in db.
func eachLeafHash(ctx context.Context, db *pebble.DB, from, to uint64, each func([]byte)) error {
	for t := from / api.TileWidth; t*api.TileWidth < to; t++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hashes, err := readChunkedDB(db, tileKey(0, t))
		if err != nil {
			return fmt.Errorf("tile 0/%d: %w", t, err)
		}
		for i := max(from, t*api.TileWidth); i < min(to, (t+1)*api.TileWidth); i++ {
			off := (i - t*api.TileWidth) * api.HashSize
			if off+api.HashSize > uint64(len(hashes)) {
				return fmt.Errorf("tile 0/%d holds %d hashes, not entry %d's", t, len(hashes)/api.HashSize, i)
			}
			each(hashes[off : off+api.HashSize])
		}
	}
	return nil
}
