package bundlezstd

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestRoundTrip(t *testing.T) {
	bundle := bytes.Repeat([]byte("\x00\x0dentry of a log"), 256)
	c := Append([]byte("prefix"), bundle)
	if !bytes.HasPrefix(c, []byte("prefix")) || len(c) >= len(bundle)/4 {
		t.Fatalf("Append: %d bytes for a %d-byte bundle", len(c), len(bundle))
	}
	got, err := AppendDecoded([]byte("before"), c[len("prefix"):])
	if err != nil || !bytes.Equal(got, append([]byte("before"), bundle...)) {
		t.Fatalf("AppendDecoded: %d bytes, %v", len(got), err)
	}
	// Into a buffer with room: no new allocation.
	buf := make([]byte, 0, len(bundle))
	if got, err = AppendDecoded(buf, c[len("prefix"):]); err != nil || &got[0] != &buf[:1][0] {
		t.Errorf("AppendDecoded into a buffer with room: %v, or it allocated", err)
	}
}

// TestEncoders compresses on several goroutines, an Encoder each: the
// frames are Append's, and decode to their bundles.
func TestEncoders(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			enc := NewEncoder()
			for i := range 20 {
				bundle := bytes.Repeat(fmt.Appendf(nil, "\x00\x10entry %d of %d", i, g), 256)
				c := enc.Append([]byte("prefix"), bundle)
				if !bytes.Equal(c[len("prefix"):], Append(nil, bundle)) {
					t.Errorf("goroutine %d, bundle %d: the Encoder's frame is not Append's", g, i)
				}
				if got, err := AppendDecoded(nil, c[len("prefix"):]); err != nil || !bytes.Equal(got, bundle) {
					t.Errorf("goroutine %d, bundle %d: decoded to %d bytes, %v", g, i, len(got), err)
				}
			}
		})
	}
	wg.Wait()
}

func TestDecodeRefuses(t *testing.T) {
	bundle := bytes.Repeat([]byte("x"), 1000)
	good := Append(nil, bundle)
	// A frame that does not declare its size: a streaming encoder's.
	var stream bytes.Buffer
	w, _ := zstd.NewWriter(&stream, zstd.WithSingleSegment(false))
	w.Write(bundle[:500])
	w.Flush() // the header is out before the size is known
	w.Write(bundle[500:])
	w.Close()
	// A frame that declares more than a bundle can hold, and one that
	// holds it: a few kilobytes decoding to megabytes.
	big := Append(nil, make([]byte, MaxSize+1))
	for _, tc := range []struct {
		name, frame, want string
	}{
		{"empty", "", "zstd"},
		{"garbage", "not a zstd frame at all", "zstd"},
		{"no size", stream.String(), "does not declare its size"},
		{"too large", string(big), "more than a bundle"},
		{"two frames", string(good) + string(good), "decoded"},
		{"cut", string(good[:len(good)-3]), "zstd"},
	} {
		if _, err := AppendDecoded(nil, []byte(tc.frame)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: AppendDecoded: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// TestLargeBundle round-trips a bundle of the largest entries, far larger
// than the encoder's window.
func TestLargeBundle(t *testing.T) {
	bundle := make([]byte, MaxSize)
	for i := range bundle {
		bundle[i] = byte(i * 7 % 251)
	}
	got, err := AppendDecoded(nil, Append(nil, bundle))
	if err != nil || !bytes.Equal(got, bundle) {
		t.Fatalf("AppendDecoded of a %d-byte bundle: %d bytes, %v", len(bundle), len(got), err)
	}
}
