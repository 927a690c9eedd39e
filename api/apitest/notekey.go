package apitest

import (
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/note"
)

// NewNoteKey returns a new Ed25519 signed-note key named name, drawn from
// rand: its signer, its verifier and the verifier key as text. It panics
// if name is not a valid key name or rand fails, which only a test's own
// mistake causes.
func NewNoteKey(name string, rand io.Reader) (note.Signer, note.Verifier, string) {
	skey, vkey, err := note.GenerateKey(rand, name)
	if err != nil {
		panic(fmt.Sprintf("apitest: key %q: %v", name, err))
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		panic(fmt.Sprintf("apitest: key %q: %v", name, err))
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		panic(fmt.Sprintf("apitest: key %q: %v", name, err))
	}
	return s, v, vkey
}
