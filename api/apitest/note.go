package apitest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// The variants of a signed note that note.Open opens to the same text and
// the same verified signatures, as a hostile peer makes them to multiply
// a piece of evidence.

// AddSignatures returns the signed note with one more signature line by
// each signer, such as a witness's cosignature, over its text. It panics
// if signed is not a signed note or a signer fails.
func AddSignatures(signed []byte, signers ...note.Signer) []byte {
	text := noteText(signed)
	out := bytes.Clone(signed)
	for _, s := range signers {
		sig, err := s.Sign(text)
		if err != nil {
			panic(fmt.Sprintf("apitest: signing with %q: %v", s.Name(), err))
		}
		out = appendLine(out, s.Name(), binary.BigEndian.AppendUint32(nil, s.KeyHash()), sig)
	}
	return out
}

// AddJunkSignatures returns the signed note with n more signature lines
// of keys no one knows, named junk.example/<i>, of random bytes from rand.
func AddJunkSignatures(signed []byte, n int, rand io.Reader) []byte {
	out := bytes.Clone(signed)
	for i := range n {
		raw := make([]byte, 68)
		if _, err := io.ReadFull(rand, raw); err != nil {
			panic(fmt.Sprintf("apitest: %v", err))
		}
		out = appendLine(out, fmt.Sprintf("junk.example/%d", i), raw)
	}
	return out
}

// ReencodeSignatures returns the signed note with the base64 of every
// signature line that has padding bits encoded with some of them set: the
// same bytes to note.Open, other bytes in the note. It panics if signed is
// not a signed note.
func ReencodeSignatures(signed []byte) []byte {
	text := noteText(signed)
	out := append(bytes.Clone(text), '\n')
	for _, line := range bytes.SplitAfter(signed[len(text)+1:], []byte("\n")) {
		b64 := bytes.LastIndexByte(line, ' ') + 1
		if i := bytes.IndexByte(line[b64:], '='); i > 0 {
			// The last character before the padding carries 2 or 4 bits
			// that decoders ignore.
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
			line = bytes.Clone(line)
			line[b64+i-1] = alphabet[strings.IndexByte(alphabet, line[b64+i-1])|1]
		}
		out = append(out, line...)
	}
	return out
}

func noteText(signed []byte) []byte {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		panic("apitest: not a signed note")
	}
	return signed[:i+1]
}

func appendLine(b []byte, name string, parts ...[]byte) []byte {
	b = fmt.Appendf(b, "— %s ", name)
	b = base64.StdEncoding.AppendEncode(b, bytes.Join(parts, nil))
	return append(b, '\n')
}
