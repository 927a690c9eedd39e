// Package apitest helps other packages' tests and the load generator make
// valid entry submissions for package api.
package apitest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strconv"
)

// payloadType is the DSSE payload type of in-toto Statements.
const payloadType = "application/vnd.in-toto+json"

// BuildSigner makes signed "build" submissions: DSSE envelopes holding an
// in-toto v1 Statement with SLSA v1 provenance, signed with one Ed25519 key.
// It is safe for concurrent use.
type BuildSigner struct {
	key ed25519.PrivateKey
	// pubJSON is the PEM public key as a JSON string, ready to splice.
	pubJSON     []byte
	fingerprint string
}

// NewBuildSigner returns a BuildSigner with a new random key.
func NewBuildSigner() *BuildSigner {
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	return newBuildSigner(ed25519.NewKeyFromSeed(seed))
}

// NewBuildSignerFromSeed returns a BuildSigner whose key is derived from
// seed, of any length: the same seed gives the same key.
func NewBuildSignerFromSeed(seed []byte) *BuildSigner {
	h := sha256.Sum256(seed)
	return newBuildSigner(ed25519.NewKeyFromSeed(h[:]))
}

func newBuildSigner(key ed25519.PrivateKey) *BuildSigner {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		panic("apitest: couldn't encode an Ed25519 public key: " + err.Error())
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	h := sha256.Sum256(der)
	return &BuildSigner{
		key:         key,
		pubJSON:     appendJSONString(nil, string(pubPEM)),
		fingerprint: "sha256:" + hex.EncodeToString(h[:]),
	}
}

// PublicKey returns the signer's public key.
func (s *BuildSigner) PublicKey() ed25519.PublicKey {
	return s.key.Public().(ed25519.PublicKey)
}

// KeyFingerprint returns the key's fingerprint as api.Statement's
// KeyFingerprints reports it: "sha256:<hex of SHA-256(PKIX DER)>".
func (s *BuildSigner) KeyFingerprint() string { return s.fingerprint }

// Submission returns a complete POST /v1/entries body of kind "build" for
// an in-toto v1 Statement with one subject, subjectName with SHA-256
// digestHex (64 hex digits, or the log rejects it). The result depends only
// on the inputs and the key (Ed25519 is deterministic), and it is already
// the canonical entry: api.CanonicalEntry returns it unchanged.
func (s *BuildSigner) Submission(subjectName string, digestHex string) []byte {
	stmt := make([]byte, 0, 512)
	stmt = append(stmt, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":`...)
	stmt = appendJSONString(stmt, subjectName)
	stmt = append(stmt, `,"digest":{"sha256":`...)
	stmt = appendJSONString(stmt, digestHex)
	stmt = append(stmt, `}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{`+
		`"buildDefinition":{"buildType":"https://candor.dev/apitest/v1","externalParameters":{}},`+
		`"runDetails":{"builder":{"id":"https://candor.dev/apitest"}}}}`...)

	pae := make([]byte, 0, len(stmt)+64)
	pae = append(pae, "DSSEv1 "...)
	pae = strconv.AppendInt(pae, int64(len(payloadType)), 10)
	pae = append(pae, ' ')
	pae = append(pae, payloadType...)
	pae = append(pae, ' ')
	pae = strconv.AppendInt(pae, int64(len(stmt)), 10)
	pae = append(pae, ' ')
	pae = append(pae, stmt...)
	sig := ed25519.Sign(s.key, pae)

	b := make([]byte, 0, 256+len(s.pubJSON)+base64.StdEncoding.EncodedLen(len(stmt)))
	b = append(b, `{"kind":"build","v":1,"envelope":{"payloadType":"`+payloadType+`","payload":"`...)
	b = base64.StdEncoding.AppendEncode(b, stmt)
	b = append(b, `","signatures":[{"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	b = append(b, `"}]},"publicKeys":[`...)
	b = append(b, s.pubJSON...)
	b = append(b, "]}"...)
	return b
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// does.
func appendJSONString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil {
		panic("apitest: couldn't encode a string as JSON: " + err.Error())
	}
	return append(b, q...)
}
