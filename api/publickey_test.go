package api

import (
	"bytes"
	"crypto"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/candorlog/candor/api/apitest"
)

// TestPublicKeyCache checks that the cache of parsed public keys gives what
// parsing gives, and holds only keys that parse, with short PEM texts.
func TestPublicKeyCache(t *testing.T) {
	ks := keys(t)
	for _, k := range []testKey{ks.ed25519, ks.p256, ks.p384, ks.rsa2048} {
		t.Run(k.name, func(t *testing.T) {
			p := k.pem(t)
			publicKeyCache.Remove(p)
			want, err := parsePublicKeyUncached(0, p)
			if err != nil {
				t.Fatal(err)
			}
			first, err := parsePublicKey(0, p)
			if err != nil {
				t.Fatal(err)
			}
			if !publicKeyCache.Contains(p) {
				t.Fatalf("the key isn't cached")
			}
			again, err := parsePublicKey(3, p)
			if err != nil {
				t.Fatal(err)
			}
			if again != first {
				t.Errorf("parsing the same PEM twice doesn't give the cached key")
			}
			if !bytes.Equal(again.der, want.der) || !bytes.Equal(again.pemJSON, want.pemJSON) || again.fingerprint != want.fingerprint ||
				!again.pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(want.pub) {
				t.Errorf("the cached key differs from the parsed one")
			}
			if again.fingerprint != k.fingerprint(t) {
				t.Errorf("fingerprint = %s, want %s", again.fingerprint, k.fingerprint(t))
			}
		})
	}

	// Long PEM texts parse but aren't cached.
	long := strings.Repeat("\n", maxCachedPEMSize) + ks.ed25519.pem(t)
	if _, err := parsePublicKey(0, long); err != nil {
		t.Fatal(err)
	}
	if publicKeyCache.Contains(long) {
		t.Errorf("a PEM text of %d bytes is cached", len(long))
	}
	// Keys that don't parse or aren't accepted aren't cached, and every
	// time give the error with the key's index.
	for _, p := range []string{"not a key", ks.rsa1024.pem(t), ks.p521.pem(t)} {
		for i := range 2 {
			_, err := parsePublicKey(i, p)
			checkErr(t, err, nil, fmt.Sprintf("public key %d ", i))
		}
		if publicKeyCache.Contains(p) {
			t.Errorf("a rejected key is cached: %q", p)
		}
	}
}

// TestCanonicalEntryCachedKeys checks that entries are the same whether
// their keys come from the cache or not.
func TestCanonicalEntryCachedKeys(t *testing.T) {
	ks := keys(t)
	body := testSubmission{payload: statementV1("a", testDigest), signers: []testKey{ks.ed25519, ks.p256, ks.rsa2048, ks.p384}}.encode(t)
	publicKeyCache.Purge()
	cold, err := CanonicalEntry(body)
	if err != nil {
		t.Fatal(err)
	}
	warm, err := CanonicalEntry(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cold, warm) {
		t.Errorf("with cached keys the entry is\n%s\nwant\n%s", warm, cold)
	}
}

// TestCanonicalEntryConcurrent runs CanonicalEntry from many goroutines on
// shared and fresh keys (for the race detector: the key cache is shared).
func TestCanonicalEntryConcurrent(t *testing.T) {
	const n = 8
	bodies := make([][]byte, 2*n)
	want := make([][]byte, len(bodies))
	for i := range bodies {
		bodies[i] = apitest.NewBuildSignerFromSeed(fmt.Appendf(nil, "concurrent-%d", i%(n/2))).Submission(fmt.Sprintf("a-%d", i), testDigest)
		want[i] = bodies[i] // apitest submissions are canonical
	}
	publicKeyCache.Purge()
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			for j := range 20 {
				i := (g + j) % len(bodies)
				got, err := CanonicalEntry(bodies[i])
				if err != nil {
					t.Errorf("CanonicalEntry: %v", err)
					return
				}
				if !bytes.Equal(got, want[i]) {
					t.Errorf("CanonicalEntry gives\n%s\nwant\n%s", got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}
