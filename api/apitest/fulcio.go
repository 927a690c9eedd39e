package apitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// Fulcio is a certificate authority that issues short-lived signing
// certificates as Sigstore's Fulcio does (a root, an intermediate, code
// signing leaves with the OIDC issuer extension), for tests of trusted
// roots.
type Fulcio struct {
	URI          string
	root, inter  *x509.Certificate
	interKey     *ecdsa.PrivateKey
	serial       int64
	start, until time.Time // the validity of its CA certificates
}

// NewFulcio returns a new Fulcio whose CA certificates are valid from a
// year ago for ten years.
func NewFulcio(uri string) *Fulcio {
	f := &Fulcio{URI: uri, start: time.Now().AddDate(-1, 0, 0), until: time.Now().AddDate(9, 0, 0)}
	rootKey := mustP256()
	root := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sigstore", Organization: []string{uri}},
		NotBefore: f.start, NotAfter: f.until, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	f.root = mustCertificate(root, root, &rootKey.PublicKey, rootKey)
	f.interKey = mustP256()
	inter := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "sigstore-intermediate", Organization: []string{uri}},
		NotBefore: f.start, NotAfter: f.until, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	f.inter = mustCertificate(inter, f.root, &f.interKey.PublicKey, rootKey)
	f.serial = 100
	return f
}

// TrustedRoot returns a Sigstore trusted_root.json that names the Fulcios
// as its certificate authorities.
func TrustedRoot(fs ...*Fulcio) []byte {
	type cert struct {
		RawBytes string `json:"rawBytes"`
	}
	var cas []any
	for _, f := range fs {
		cas = append(cas, map[string]any{
			"subject":   map[string]string{"organization": f.URI, "commonName": "sigstore"},
			"uri":       f.URI,
			"certChain": map[string]any{"certificates": []cert{{base64.StdEncoding.EncodeToString(f.inter.Raw)}, {base64.StdEncoding.EncodeToString(f.root.Raw)}}},
			"validFor":  map[string]string{"start": f.start.UTC().Format(time.RFC3339)},
		})
	}
	b, err := json.Marshal(map[string]any{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "certificateAuthorities": cas})
	if err != nil {
		panic(err)
	}
	return b
}

// Issue returns a PEM signing certificate for pub, valid from notBefore
// for ten minutes as Fulcio's are, with identity as its email (if it has
// an @) or URI subject alternative name and issuer in the OIDC issuer
// extension.
func (f *Fulcio) Issue(pub crypto.PublicKey, identity, issuer string, notBefore time.Time) string {
	f.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(f.serial), NotBefore: notBefore, NotAfter: notBefore.Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	setIdentity(tmpl, identity, issuer)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mustCertificate(tmpl, f.inter, pub, f.interKey).Raw}))
}

// setIdentity sets the subject alternative name and the OIDC issuer
// extension of a certificate template.
func setIdentity(tmpl *x509.Certificate, identity, issuer string) {
	if strings.Contains(identity, "@") && !strings.Contains(identity, "://") {
		tmpl.EmailAddresses = []string{identity}
	} else {
		u, err := url.Parse(identity)
		if err != nil {
			panic(fmt.Sprintf("apitest: identity %q: %v", identity, err))
		}
		tmpl.URIs = []*url.URL{u}
	}
	v2, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		panic(err)
	}
	tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}, Value: v2}}
}

// NewImageSignerFromFulcio returns an ImageSigner with a new key and a
// certificate that f issued for it at notBefore; its submissions carry
// the certificate.
func NewImageSignerFromFulcio(f *Fulcio, identity, issuer string, notBefore time.Time) *ImageSigner {
	s := NewImageSigner()
	s.cert = f.Issue(&s.key.PublicKey, identity, issuer, notBefore)
	return s
}

func mustP256() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("apitest: couldn't generate a P-256 key: %v", err))
	}
	return k
}

func mustCertificate(tmpl, parent *x509.Certificate, pub crypto.PublicKey, priv crypto.Signer) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		panic(fmt.Sprintf("apitest: couldn't make a certificate: %v", err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return cert
}
