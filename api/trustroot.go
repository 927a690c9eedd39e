package api

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// ErrUntrustedCertificate is wrapped by the *EntryError of an entry whose
// signing certificate does not chain to a certificate authority of the
// log's TrustedRoot, valid when the log takes it.
var ErrUntrustedCertificate = errors.New("the signing certificate is not trusted")

// TrustedRoot is what a log trusts of a Sigstore trusted root
// (trusted_root.json, application/vnd.dev.sigstore.trustedroot+json, as
// Sigstore's TUF repository publishes it, parsed with Sigstore's protobuf
// definitions): its certificate authorities (Fulcio instances), each with
// its chain and its validity. The transparency logs, CT logs and
// timestamp authorities it names are not used.
type TrustedRoot struct {
	cas []trustedCA
}

// trustedCA is a certificate authority of a TrustedRoot.
type trustedCA struct {
	uri           string
	roots         *x509.CertPool
	intermediates *x509.CertPool
	start, end    time.Time // end zero: open
}

// The media types of the trusted roots ParseTrustedRoot takes.
var trustedRootMediaTypes = []string{
	"application/vnd.dev.sigstore.trustedroot+json;version=0.1",
	"application/vnd.dev.sigstore.trustedroot.v0.2+json",
}

// ParseTrustedRoot parses a Sigstore trusted_root.json. It must name at
// least one certificate authority.
func ParseTrustedRoot(b []byte) (*TrustedRoot, error) {
	var tr prototrustroot.TrustedRoot
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &tr); err != nil {
		return nil, fmt.Errorf("not a Sigstore trusted root: %w", err)
	}
	known := false
	for _, t := range trustedRootMediaTypes {
		known = known || tr.GetMediaType() == t
	}
	if !known {
		return nil, fmt.Errorf("media type %q is not a Sigstore trusted root's (%s)", tr.GetMediaType(), strings.Join(trustedRootMediaTypes, ", "))
	}
	r := &TrustedRoot{}
	for i, ca := range tr.GetCertificateAuthorities() {
		certs := ca.GetCertChain().GetCertificates()
		if len(certs) == 0 {
			return nil, fmt.Errorf("certificate authority %d (%s) has no certificates", i, ca.GetUri())
		}
		c := trustedCA{uri: ca.GetUri(), roots: x509.NewCertPool(), intermediates: x509.NewCertPool()}
		for j, raw := range certs {
			cert, err := x509.ParseCertificate(raw.GetRawBytes())
			if err != nil {
				return nil, fmt.Errorf("certificate authority %d (%s), certificate %d: %w", i, ca.GetUri(), j, err)
			}
			// The chain runs from the issuing certificate to the root.
			if j == len(certs)-1 {
				c.roots.AddCert(cert)
			} else {
				c.intermediates.AddCert(cert)
			}
		}
		if vf := ca.GetValidFor(); vf != nil {
			if vf.GetStart() != nil {
				c.start = vf.GetStart().AsTime()
			}
			if vf.GetEnd() != nil {
				c.end = vf.GetEnd().AsTime()
			}
		}
		r.cas = append(r.cas, c)
	}
	if len(r.cas) == 0 {
		return nil, errors.New("the trusted root names no certificate authority")
	}
	return r, nil
}

// CertificateAuthorities returns the URIs of the certificate authorities
// of r.
func (r *TrustedRoot) CertificateAuthorities() []string {
	out := make([]string, len(r.cas))
	for i, c := range r.cas {
		out[i] = c.uri
	}
	return out
}

// VerifyCertificate checks that the certificate der chains to a
// certificate authority of r that is valid at t, that every certificate
// of the chain is valid at t, and that it may sign code, as Fulcio's
// signing certificates do. The error is an *EntryError wrapping
// ErrUntrustedCertificate.
func (r *TrustedRoot) VerifyCertificate(der []byte, t time.Time) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return &EntryError{Reason: "the signing certificate does not parse", Err: errors.Join(ErrUntrustedCertificate, err)}
	}
	var errs []error
	for _, c := range r.cas {
		if t.Before(c.start) || !c.end.IsZero() && !t.Before(c.end) {
			continue
		}
		_, err := cert.Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: c.intermediates, CurrentTime: t,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.uri, err))
	}
	if len(errs) == 0 {
		errs = append(errs, fmt.Errorf("no certificate authority of the trusted root is valid at %s", t.UTC().Format(time.RFC3339)))
	}
	return &EntryError{Reason: fmt.Sprintf("the signing certificate does not chain to a certificate authority the log trusts, at %s", t.UTC().Format(time.RFC3339)),
		Err: errors.Join(append([]error{ErrUntrustedCertificate}, errs...)...)}
}

// CertificateStatement is a Statement that a certificate signed.
type CertificateStatement interface {
	Statement
	// SigningCertificate returns the certificate's DER, or nil for a
	// statement signed with plain keys.
	SigningCertificate() []byte
}

// AdmitEntry is CanonicalEntry that also returns the entry's statement,
// for the checks a log makes at admission beyond the entry's own (such as
// TrustedRoot.VerifyCertificate), and SearchTerms.
func AdmitEntry(body []byte) ([]byte, Statement, error) {
	return canonicalize(body, time.Now())
}
