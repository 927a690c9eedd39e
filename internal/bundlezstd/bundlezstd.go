// Package bundlezstd compresses entry bundles with Zstandard (RFC 8878),
// the form in which a log keeps full bundles on disk and serves them to
// clients that accept the "zstd" content coding: a bundle of 256 entries
// of a supply-chain log compresses to about a sixth of its size.
package bundlezstd

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/candorlog/candor/api"
)

// Coding is the HTTP content coding of a compressed bundle.
const Coding = "zstd"

// encoderWindow is the encoder's window.
const encoderWindow = 256 << 10

// MaxSize is the largest entry bundle: 256 entries of at most 65,535
// bytes, each after its 2-byte length. Decoding stops beyond it.
const MaxSize = api.TileWidth * (2 + 65535)

// newEncoder returns an encoder that compresses one bundle at a time.
// One frame per bundle, its size in the header; no frame checksum: the
// store has its own over the compressed bytes, and a client checks the
// entries against the tree. A window of 256 KiB, a bundle of entries of
// a few KiB, and the smaller tables: 1.9 MB held rather than 18 MB, the
// same size of a bundle, and half the time.
func newEncoder() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1), zstd.WithSingleSegment(true),
		zstd.WithWindowSize(encoderWindow), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(err)
	}
	return e
}

var (
	encoder = sync.OnceValue(newEncoder)
	decoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxSize))
		if err != nil {
			panic(err)
		}
		return d
	})
)

// Append appends bundle, compressed in one frame, to dst. Calls share
// one encoder: they compress one at a time.
func Append(dst, bundle []byte) []byte { return encoder().EncodeAll(bundle, dst) }

// An Encoder is Append with an encoder of its own (1.9 MB), for work that
// compresses bundles on several goroutines at once, one Encoder each.
type Encoder struct{ e *zstd.Encoder }

// NewEncoder returns an Encoder.
func NewEncoder() *Encoder { return &Encoder{newEncoder()} }

// Append appends bundle, compressed in one frame, to dst. Calls must not
// overlap.
func (e *Encoder) Append(dst, bundle []byte) []byte { return e.e.EncodeAll(bundle, dst) }

// AppendDecoded appends the bundle that the frame c compresses to dst. It
// fails on anything but one frame that declares its size, of at most
// MaxSize bytes, and decodes to that size: a reply of a few kilobytes
// cannot make its reader allocate more than a bundle.
func AppendDecoded(dst, c []byte) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(c); err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if h.Skippable || !h.HasFCS {
		return nil, errors.New("zstd: the frame does not declare its size")
	}
	if h.FrameContentSize > MaxSize {
		return nil, fmt.Errorf("zstd: the frame holds %d bytes, more than a bundle's %d", h.FrameContentSize, MaxSize)
	}
	n := int(h.FrameContentSize)
	l := len(dst)
	out, err := decoder().DecodeAll(c, slices.Grow(dst, n))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out)-l != n {
		return nil, fmt.Errorf("zstd: %d bytes decoded, the frame declares %d", len(out)-l, n)
	}
	return out, nil
}
