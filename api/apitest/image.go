package apitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// ImageSigner signs container images as cosign does with an ECDSA P-256
// key (cosign generate-key-pair), for tests of the image kind.
type ImageSigner struct {
	key         *ecdsa.PrivateKey
	pem         string
	fingerprint string
	cert        string // PEM; submissions carry it rather than the key
}

// NewImageSignerWithCertificate returns an ImageSigner with a new key and a
// self-signed certificate for it, valid for a day from an hour ago, with
// identity as its email (if it has an @) or URI subject alternative name
// and issuer in Fulcio's OIDC issuer extension. Its submissions carry the
// certificate, as cosign's keyless signatures do.
func NewImageSignerWithCertificate(identity, issuer string) *ImageSigner {
	s := NewImageSigner()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sigstore-intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(23 * time.Hour)}
	setIdentity(tmpl, identity, issuer)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.key.PublicKey, s.key)
	if err != nil {
		panic(fmt.Sprintf("apitest: couldn't make a certificate: %v", err))
	}
	s.cert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return s
}

// NewImageSigner returns an ImageSigner with a new key.
func NewImageSigner() *ImageSigner {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("apitest: couldn't generate a P-256 key: %v", err))
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		panic(fmt.Sprintf("apitest: couldn't encode a P-256 key: %v", err))
	}
	h := sha256.Sum256(der)
	return &ImageSigner{key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		fingerprint: "sha256:" + hex.EncodeToString(h[:])}
}

// PublicKey returns the signer's public key in PKIX PEM, as cosign.pub.
func (s *ImageSigner) PublicKey() string { return s.pem }

// KeyFingerprint returns the key's fingerprint as the log spells it.
func (s *ImageSigner) KeyFingerprint() string { return s.fingerprint }

// Payload returns cosign's simple signing payload of the image of
// repository with the manifest digest ("sha256:<hex>").
func (s *ImageSigner) Payload(repository, digest string) []byte {
	ref, err := json.Marshal(repository)
	if err != nil {
		panic(err)
	}
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%s},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, ref, digest)
}

// Sign returns the signature of payload: ECDSA over its SHA-256, in DER.
func (s *ImageSigner) Sign(payload []byte) []byte {
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, h[:])
	if err != nil {
		panic(fmt.Sprintf("apitest: couldn't sign: %v", err))
	}
	return sig
}

// Submission returns the body of POST /v1/entries of a signature of the
// image of repository with the manifest digest ("sha256:<hex>").
func (s *ImageSigner) Submission(repository, digest string) []byte {
	payload := s.Payload(repository, digest)
	m := map[string]string{
		"kind":      "image",
		"image":     repository + "@" + digest,
		"digest":    digest,
		"payload":   base64.StdEncoding.EncodeToString(payload),
		"signature": base64.StdEncoding.EncodeToString(s.Sign(payload)),
	}
	if s.cert != "" {
		m["certificate"] = s.cert
	} else {
		m["publicKey"] = s.pem
	}
	body, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return body
}
