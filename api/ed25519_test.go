package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
)

// Edge cases of Ed25519 verification, made here rather than taken from a
// list: the points of small order, every encoding of a coordinate y ≥ p
// that fits in 255 bits, scalars around the group order, and signatures
// whose verification equation holds only for some of them.
var (
	ed25519P = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	ed25519L = func() *big.Int {
		l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
		return l
	}()
)

// le32 is n in 32 little-endian bytes, with the top bit (the sign of x in
// a point encoding) set if sign.
func le32(n *big.Int, sign bool) []byte {
	b := make([]byte, 32)
	n.FillBytes(b)
	for i := range 16 {
		b[i], b[31-i] = b[31-i], b[i]
	}
	if sign {
		b[31] |= 0x80
	}
	return b
}

// smallOrderEncodings returns the canonical encodings of the eight points
// of order dividing 8: the identity (y = 1), y = -1 (order 2), y = 0 with
// both signs of x (order 4) and the four points of order 8.
// TestSmallOrderEncodings checks them.
func smallOrderEncodings() [][]byte {
	var out [][]byte
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0000000000000000000000000000000000000000000000000000000000000080",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
	} {
		b, err := hex.DecodeString(h)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

func TestSmallOrderEncodings(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range smallOrderEncodings() {
		var c curve.CompressedEdwardsY
		var p curve.EdwardsPoint
		if _, err := c.SetBytes(b); err != nil {
			t.Fatal(err)
		}
		if _, err := p.SetCompressedY(&c); err != nil || !p.IsSmallOrder() || !c.IsCanonicalVartime() {
			t.Errorf("%x: not the canonical encoding of a point of small order (%v)", b, err)
		}
		seen[string(b)] = true
	}
	if len(seen) != 8 {
		t.Errorf("%d distinct encodings, want 8", len(seen))
	}
}

// ed25519EdgeKeys returns public keys worth comparing on: two ordinary
// keys, the small-order points, the encodings of y + p for y < 19 (not
// canonical; some are points) and an encoding that is not a point.
func ed25519EdgeKeys(t testing.TB) (keys [][]byte, priv []ed25519.PrivateKey) {
	for range 2 {
		pub, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys, priv = append(keys, pub), append(priv, sk)
	}
	keys = append(keys, smallOrderEncodings()...)
	for y := range int64(19) {
		n := new(big.Int).Add(ed25519P, big.NewInt(y))
		keys = append(keys, le32(n, false), le32(n, true))
	}
	keys = append(keys, le32(big.NewInt(2), false)) // y = 2 is not on the curve
	return keys, priv
}

// ed25519EdgeScalars returns S values around 0 and the group order L, and
// one with the top three bits set.
func ed25519EdgeScalars() [][]byte {
	l := ed25519L
	var out [][]byte
	for _, s := range []*big.Int{
		big.NewInt(0), big.NewInt(1),
		new(big.Int).Sub(l, big.NewInt(1)), l, new(big.Int).Add(l, big.NewInt(1)),
	} {
		out = append(out, le32(s, false))
	}
	top := le32(big.NewInt(5), false)
	top[31] |= 0xe0
	return append(out, top)
}

// parsedEd25519 makes the publicKey an entry would carry for a raw
// Ed25519 key, through the same parsing.
func parsedEd25519(t testing.TB, raw []byte) *publicKey {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(raw))
	if err != nil {
		t.Fatal(err)
	}
	k, err := parsePublicKeyUncached(0, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err != nil {
		t.Fatalf("key %x: %v", raw, err)
	}
	return k
}

func checkEd25519SameAsStdLib(t testing.TB, k *publicKey, raw, msg, sig []byte) bool {
	t.Helper()
	want := ed25519.Verify(ed25519.PublicKey(raw), msg, sig)
	if got := verifyEd25519(k, msg, sig); got != want {
		t.Errorf("key %x, message %q, signature %x: verifyEd25519 = %v, ed25519.Verify = %v", raw, msg, sig, got, want)
	}
	return want
}

func TestEd25519SameAsStdLib(t *testing.T) {
	keys, priv := ed25519EdgeKeys(t)
	rs := smallOrderEncodings()
	for y := range int64(3) { // non-canonical R encodings
		rs = append(rs, le32(new(big.Int).Add(ed25519P, big.NewInt(y)), false))
	}
	msgs := [][]byte{nil, []byte("candor"), make([]byte, 700)}
	valid, accepted := 0, 0
	for _, raw := range keys {
		k := parsedEd25519(t, raw)
		for _, msg := range msgs {
			for _, r := range rs {
				for _, s := range ed25519EdgeScalars() {
					if checkEd25519SameAsStdLib(t, k, raw, msg, append(append([]byte{}, r...), s...)) {
						accepted++
					}
				}
			}
		}
	}
	// Real signatures, and the same with S + L (the same S mod L, not
	// canonical), a flipped bit, or the wrong message.
	for i, sk := range priv {
		k := parsedEd25519(t, keys[i])
		for _, msg := range msgs {
			sig := ed25519.Sign(sk, msg)
			if checkEd25519SameAsStdLib(t, k, keys[i], msg, sig) {
				valid++
			}
			s := new(big.Int).SetBytes(reversed(sig[32:]))
			malleated := append(append([]byte{}, sig[:32]...), le32(s.Add(s, ed25519L), false)...)
			checkEd25519SameAsStdLib(t, k, keys[i], msg, malleated)
			for _, bit := range []int{0, 255, 256, 511} {
				flipped := append([]byte{}, sig...)
				flipped[bit/8] ^= 1 << (bit % 8)
				checkEd25519SameAsStdLib(t, k, keys[i], msg, flipped)
			}
			checkEd25519SameAsStdLib(t, k, keys[i], append(msg, 0), sig)
			checkEd25519SameAsStdLib(t, k, keys[i], msg, sig[:63])
		}
	}
	// The comparison is only worth something if both sides accepted some
	// of the odd cases: the identity key with the identity R and S = 0
	// verifies every message, cofactorless.
	if valid != len(priv)*len(msgs) || accepted == 0 {
		t.Errorf("%d real signatures and %d edge cases verified: want %d and some", valid, accepted, len(priv)*len(msgs))
	}
	t.Logf("%d keys; %d edge cases verified", len(keys), accepted)
}

func reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}

func FuzzEd25519SameAsStdLib(f *testing.F) {
	keys, priv := ed25519EdgeKeys(f)
	for i, raw := range keys {
		msg := []byte("candor")
		sig := append(append([]byte{}, smallOrderEncodings()[i%8]...), ed25519EdgeScalars()[i%6]...)
		if i < len(priv) {
			sig = ed25519.Sign(priv[i], msg)
		}
		f.Add(raw, msg, sig)
	}
	f.Fuzz(func(t *testing.T, raw, msg, sig []byte) {
		if len(raw) != ed25519.PublicKeySize {
			return
		}
		checkEd25519SameAsStdLib(t, parsedEd25519(t, raw), raw, msg, sig)
	})
}
