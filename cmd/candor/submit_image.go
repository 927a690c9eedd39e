package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/candorlog/candor/api"
)

// The annotations cosign puts on the layers of a signature image (the
// legacy format, a manifest tagged sha256-<hex>.sig beside the image).
const (
	cosignSignatureAnnotation   = "dev.cosignproject.cosign/signature"
	cosignCertificateAnnotation = "dev.sigstore.cosign/certificate"
	// maxSignatureLayers bounds the signatures read from one image.
	maxSignatureLayers = 64
)

// imageSignature is one cosign signature of an image: a payload with its
// signature (and certificate), or a Sigstore bundle.
type imageSignature struct {
	payload     []byte
	signature   string // base64, as cosign writes it
	certificate string // PEM, or empty
	bundle      json.RawMessage
}

// sigstoreBundleType is the artifact type of the Sigstore bundles cosign
// pushes as referrers of an image (its default format since v3).
const sigstoreBundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// runSubmitImage is "candor submit image": it logs cosign's signatures of
// an image, read from its registry, or one signature from the files
// cosign sign --output-payload and --output-signature write.
func runSubmitImage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o submitOptions
	fs := flag.NewFlagSet("candor submit image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs)
	keyFile := fs.String("key", "", "the signer's PEM public `file` (cosign.pub)")
	certFile := fs.String("cert", "", "the signer's PEM certificate `file`, instead of --key (files only; from a registry, the certificate cosign attached is used when there is no --key)")
	payloadFile := fs.String("payload", "", "the signed payload `file` (cosign sign --output-payload), instead of reading the registry")
	sigFile := fs.String("signature", "", "the signature `file` (cosign sign --output-signature: base64), with --payload")
	imageFlag := fs.String("image", "", "with --payload: the image `reference` (default: the payload's docker-reference and digest)")
	attach := fs.Bool("attach", false, "from a registry: also push each proof bundle to it, as an OCI artifact referring to the image (artifact type "+proofArtifactType+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: candor submit image [flags] REGISTRY/REPOSITORY@sha256:HEX|REGISTRY/REPOSITORY:TAG --key cosign.pub
       candor submit image [flags] --payload FILE --signature FILE (--key FILE | --cert FILE)

Logs cosign's signatures of a container image (a tag is resolved to the
digest it names now): read from its registry
(the Sigstore bundles cosign pushes as referrers of the image, and the
signatures of the sha256-<hex>.sig tag of its older format; every signature
that verifies with --key, or, without --key, with the certificate it
carries), or one signature from files. The proof bundle is written to
--out, by default sha256-<hex>.tlog-proof in the current directory (with
-<n> after the first signature of several), or beside the payload file;
with --attach it is also pushed to the registry, as a referrer of the image,
so that whoever finds the image's signatures finds their proofs.`)
		fs.PrintDefaults()
	}
	ref, err := parseWithFile(fs, args)
	if err != nil {
		return err
	}
	var subs [][]byte
	var outs []string
	var image name.Digest // from a registry
	switch {
	case *payloadFile != "":
		if ref != "" || *sigFile == "" || (*keyFile == "") == (*certFile == "") {
			fs.Usage()
			return errUsage
		}
		body, err := imageSubmissionFromFiles(*payloadFile, *sigFile, *keyFile, *certFile, *imageFlag)
		if err != nil {
			return err
		}
		subs, outs = [][]byte{body}, []string{*payloadFile + proofSuffix}
	case ref != "":
		if *certFile != "" || *sigFile != "" || *imageFlag != "" {
			fs.Usage()
			return errUsage
		}
		if image, err = resolveImage(ctx, ref, stderr); err != nil {
			return err
		}
		if subs, err = imageSubmissionsFromRegistry(ctx, image, *keyFile, stderr); err != nil {
			return err
		}
		for i := range subs {
			out := strings.Replace(image.DigestStr(), ":", "-", 1)
			if i > 0 {
				out += fmt.Sprintf("-%d", i+1)
			}
			outs = append(outs, out+proofSuffix)
		}
	default:
		fs.Usage()
		return errUsage
	}
	if o.out != "" {
		if len(subs) > 1 {
			return fmt.Errorf("--out names one file, and the image has %d signatures to log: leave it out", len(subs))
		}
		outs[0] = o.out
	}
	if *attach && ref == "" {
		return errors.New("--attach pushes the proof to the image's registry: give the image as REGISTRY/REPOSITORY@sha256:HEX")
	}
	s, err := o.submitter(stderr)
	if err != nil {
		return err
	}
	for i, body := range subs {
		l, err := s.submit(ctx, body)
		if err != nil {
			return err
		}
		if err := l.report(stdout, "image signature", outs[i]); err != nil {
			return err
		}
		if *attach {
			at, err := attachProof(ctx, image, l.bundle)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "proof attached to %s as %s\n", image.Context().Name(), at)
		}
	}
	return nil
}

// proofArtifactType is the artifact type of the proof bundles candor
// submit image --attach pushes beside an image.
const proofArtifactType = "application/vnd.candorlog.tlog-proof.v1"

// attachProof pushes a proof bundle to the registry of the image d as an
// OCI artifact whose subject is the image: a referrer, listed by the OCI
// referrers API (or its fallback tag), so that a verifier who looks for
// the image's signatures finds their proofs too. It returns the
// artifact's digest.
func attachProof(ctx context.Context, d name.Digest, proof []byte) (string, error) {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	subject, err := remote.Head(d, opts...)
	if err != nil {
		return "", fmt.Errorf("couldn't attach the proof: couldn't read %s: %w", d, err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: static.NewLayer(proof, proofArtifactType)})
	if err != nil {
		return "", fmt.Errorf("couldn't attach the proof: %w", err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), proofArtifactType)
	with, ok := mutate.Subject(img, *subject).(v1.Image)
	if !ok {
		return "", errors.New("couldn't attach the proof: the artifact is not an image")
	}
	dig, err := with.Digest()
	if err != nil {
		return "", fmt.Errorf("couldn't attach the proof: %w", err)
	}
	if err := remote.Write(d.Context().Digest(dig.String()), with, opts...); err != nil {
		return "", fmt.Errorf("couldn't attach the proof to %s: %w", d, err)
	}
	return dig.String(), nil
}

// imageSubmissionFromFiles returns the body of an image submission of the
// signature in sigFile over the payload in payloadFile, with the key or
// the certificate.
func imageSubmissionFromFiles(payloadFile, sigFile, keyFile, certFile, image string) ([]byte, error) {
	payload, err := readInput(payloadFile)
	if err != nil {
		return nil, err
	}
	sig, err := readInput(sigFile)
	if err != nil {
		return nil, err
	}
	var p struct {
		Critical struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			} `json:"identity"`
			Image struct {
				DockerManifestDigest string `json:"docker-manifest-digest"`
			} `json:"image"`
		} `json:"critical"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("%s is not a cosign payload: %w", payloadFile, err)
	}
	digest := p.Critical.Image.DockerManifestDigest
	if image == "" {
		image = p.Critical.Identity.DockerReference + "@" + digest
	} else if d, err := name.NewDigest(image); err == nil {
		digest = d.DigestStr()
	}
	signed := imageSignature{payload: payload, signature: strings.TrimSpace(string(sig))}
	var key string
	if keyFile != "" {
		if key, err = readPEMPublicKey(keyFile); err != nil {
			return nil, err
		}
	} else {
		cert, err := readInput(certFile)
		if err != nil {
			return nil, err
		}
		signed.certificate = string(cert)
	}
	return imageSubmission(image, digest, signed, key)
}

// resolveImage returns the image ref names: itself if it has a digest, or
// the manifest its tag names now, which it says on stderr (the signatures
// are of that digest, whatever the tag names later).
func resolveImage(ctx context.Context, ref string, stderr io.Writer) (name.Digest, error) {
	if d, err := name.NewDigest(ref); err == nil {
		return d, nil
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return name.Digest{}, fmt.Errorf("%q is not an image reference (REGISTRY/REPOSITORY@sha256:HEX, or a tag): %w", ref, err)
	}
	desc, err := remote.Head(tag, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return name.Digest{}, fmt.Errorf("couldn't resolve %s to a digest: %w", tag, err)
	}
	d := tag.Context().Digest(desc.Digest.String())
	fmt.Fprintf(stderr, "candor submit image: %s is %s\n", tag, d)
	return d, nil
}

// imageSubmissionsFromRegistry reads the cosign signatures of the image
// d from its registry and returns the bodies of
// the submissions of those that verify with the key in keyFile or, without
// one, with their certificate. Those that do not are named on stderr; none
// at all is an error.
func imageSubmissionsFromRegistry(ctx context.Context, d name.Digest, keyFile string, stderr io.Writer) ([][]byte, error) {
	ref := d.String()
	var key string
	var err error
	if keyFile != "" {
		if key, err = readPEMPublicKey(keyFile); err != nil {
			return nil, err
		}
	}
	sigs, err := readCosignSignatures(ctx, d)
	if err != nil {
		return nil, err
	}
	var subs [][]byte
	for i, s := range sigs {
		if key == "" && s.certificate == "" {
			fmt.Fprintf(stderr, "candor submit image: signature %d of %s has no certificate: give the signer's --key\n", i+1, ref)
			continue
		}
		body, err := imageSubmission(d.Context().Name()+"@"+d.DigestStr(), d.DigestStr(), s, key)
		if err != nil {
			return nil, err
		}
		entry, err := api.CanonicalEntry(body)
		if err != nil {
			fmt.Fprintf(stderr, "candor submit image: signature %d of %s is not logged: %v\n", i+1, ref, err)
			continue
		}
		if key != "" {
			// A bundle with a certificate verifies with the certificate's
			// key, which must be --key.
			st, err := api.ParseEntry(entry)
			if err != nil || !slices.Contains(st.KeyFingerprints(), pemFingerprint(key)) {
				fmt.Fprintf(stderr, "candor submit image: signature %d of %s is not logged: it is not by --key %s\n", i+1, ref, keyFile)
				continue
			}
		}
		subs = append(subs, body)
	}
	if len(subs) == 0 {
		what := "with --key " + keyFile
		if key == "" {
			what = "with its certificate"
		}
		return nil, fmt.Errorf("none of the %d signatures of %s verifies %s", len(sigs), ref, what)
	}
	return subs, nil
}

// readCosignSignatures reads the signatures cosign pushed for the image
// d: the Sigstore bundles among its referrers (the OCI referrers API, or
// its fallback tag sha256-<hex>), and the layers of the manifest tagged
// sha256-<hex>.sig in its repository, each a payload with its signature
// (and certificate) in annotations.
func readCosignSignatures(ctx context.Context, d name.Digest) ([]imageSignature, error) {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	bundles, err := readSigstoreBundles(d, opts)
	if err != nil {
		return nil, err
	}
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	img, err := remote.Image(tag, opts...)
	var terr *transport.Error
	switch {
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound && len(bundles) > 0:
		return bundles, nil
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s has no cosign signature (no Sigstore bundle among its referrers, no %s)", d, tag)
	case err != nil:
		return nil, fmt.Errorf("couldn't read the signatures of %s (%s): %w", d, tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("couldn't read the signatures of %s: %w", d, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("couldn't read the signatures of %s: %w", d, err)
	}
	if len(layers) != len(m.Layers) || len(layers) > maxSignatureLayers {
		return nil, fmt.Errorf("the signature image of %s has %d layers, want 1 to %d", d, len(layers), maxSignatureLayers)
	}
	sigs := bundles
	for i, l := range layers {
		sig, ok := m.Layers[i].Annotations[cosignSignatureAnnotation]
		if !ok {
			continue
		}
		payload, err := readLayer(l)
		if err != nil {
			return nil, fmt.Errorf("couldn't read signature %d of %s: %w", i+1, d, err)
		}
		sigs = append(sigs, imageSignature{payload: payload, signature: sig, certificate: m.Layers[i].Annotations[cosignCertificateAnnotation]})
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%s has no cosign signature (%s holds none)", d, tag)
	}
	return sigs, nil
}

// readSigstoreBundles reads the Sigstore bundles among the referrers of
// the image d.
func readSigstoreBundles(d name.Digest, opts []remote.Option) ([]imageSignature, error) {
	idx, err := remote.Referrers(d, opts...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the referrers of %s: %w", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("couldn't read the referrers of %s: %w", d, err)
	}
	var out []imageSignature
	for _, desc := range im.Manifests {
		if desc.ArtifactType != sigstoreBundleType {
			continue
		}
		if len(out) == maxSignatureLayers {
			return nil, fmt.Errorf("%s has more than %d Sigstore bundles", d, maxSignatureLayers)
		}
		img, err := remote.Image(d.Context().Digest(desc.Digest.String()), opts...)
		if err != nil {
			return nil, fmt.Errorf("couldn't read the Sigstore bundle %s of %s: %w", desc.Digest, d, err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			return nil, fmt.Errorf("the Sigstore bundle %s of %s has %d layers, want 1 (%v)", desc.Digest, d, len(layers), err)
		}
		b, err := readLayer(layers[0])
		if err != nil {
			return nil, fmt.Errorf("couldn't read the Sigstore bundle %s of %s: %w", desc.Digest, d, err)
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("the Sigstore bundle %s of %s is not JSON", desc.Digest, d)
		}
		out = append(out, imageSignature{bundle: b})
	}
	return out, nil
}

// readLayer reads a layer's bytes as they are stored, at most
// maxInputSize.
func readLayer(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxInputSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxInputSize {
		return nil, fmt.Errorf("more than %d bytes", maxInputSize)
	}
	return b, nil
}

// imageSubmission returns the body of an image submission (api/image.go)
// of s with the PEM public key, or with s's certificate if key is empty.
func imageSubmission(image, digest string, s imageSignature, key string) ([]byte, error) {
	if s.bundle != nil {
		return bundleSubmission(image, digest, s.bundle, key)
	}
	sig, err := base64.StdEncoding.DecodeString(s.signature)
	if err != nil {
		return nil, fmt.Errorf("the signature is not base64: %w", err)
	}
	m := map[string]string{
		"kind":      api.KindImage,
		"image":     image,
		"digest":    digest,
		"payload":   base64.StdEncoding.EncodeToString(s.payload),
		"signature": base64.StdEncoding.EncodeToString(sig),
	}
	if key != "" {
		m["publicKey"] = key
	} else {
		m["certificate"] = s.certificate
	}
	return json.Marshal(m)
}

// bundleSubmission returns the body of an image submission of a Sigstore
// bundle, with the PEM public key if the bundle only hints at its key.
func bundleSubmission(image, digest string, bundle json.RawMessage, key string) ([]byte, error) {
	var vm struct {
		VerificationMaterial struct {
			Certificate          json.RawMessage `json:"certificate"`
			X509CertificateChain json.RawMessage `json:"x509CertificateChain"`
		} `json:"verificationMaterial"`
	}
	if err := json.Unmarshal(bundle, &vm); err != nil {
		return nil, fmt.Errorf("the Sigstore bundle: %w", err)
	}
	m := map[string]any{"kind": api.KindImage, "image": image, "digest": digest, "bundle": bundle}
	if vm.VerificationMaterial.Certificate == nil && vm.VerificationMaterial.X509CertificateChain == nil {
		if key == "" {
			return nil, errors.New("the Sigstore bundle names its key by a hint only: give the signer's --key")
		}
		m["publicKey"] = key
	}
	return json.Marshal(m)
}

// pemFingerprint returns the fingerprint of a PEM public key as the log
// spells it, sha256:<hex> of its DER.
func pemFingerprint(key string) string {
	block, _ := pem.Decode([]byte(key))
	if block == nil {
		return ""
	}
	h := sha256.Sum256(block.Bytes)
	return "sha256:" + hex.EncodeToString(h[:])
}

// runSubmitBundle is "candor submit bundle": it logs a Sigstore bundle, as
// cosign writes it with --bundle: a build attestation, or with --image a
// signature of that image.
func runSubmitBundle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o submitOptions
	var keys stringsFlag
	fs := flag.NewFlagSet("candor submit bundle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs)
	fs.Var(&keys, "key", "the signer's PEM public key `file`, for a bundle that only hints at its key (a bundle with a certificate needs none)")
	image := fs.String("image", "", "log the bundle as a signature of this image, `REGISTRY/REPOSITORY@sha256:HEX` (default: as a build attestation)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: candor submit bundle [--key FILE] [--image REF@DIGEST] [flags] FILE

Logs a Sigstore bundle (application/vnd.dev.sigstore.bundle.v0.3+json, as
cosign writes it with --bundle, and as hosted forges publish artifact
attestations) holding a DSSE envelope: as a build attestation, or with
--image as a signature of that image. The proof bundle is written beside
it, as FILE`+proofSuffix+`.`)
		fs.PrintDefaults()
	}
	file, err := parseWithFile(fs, args)
	if err != nil {
		return err
	}
	if file == "" {
		fs.Usage()
		return errUsage
	}
	bundle, err := readInput(file)
	if err != nil {
		return err
	}
	if !json.Valid(bundle) {
		return fmt.Errorf("%s is not a JSON Sigstore bundle", file)
	}
	pems := make([]string, len(keys))
	for i, k := range keys {
		if pems[i], err = readPEMPublicKey(k); err != nil {
			return err
		}
	}
	var body []byte
	if *image != "" {
		d, err := name.NewDigest(*image)
		if err != nil {
			return fmt.Errorf("--image %q is not an image reference with a digest (REGISTRY/REPOSITORY@sha256:HEX): %w", *image, err)
		}
		if len(pems) > 1 {
			return errors.New("an image signature has one signer: give at most one --key")
		}
		key := ""
		if len(pems) == 1 {
			key = pems[0]
		}
		if body, err = bundleSubmission(d.Context().Name()+"@"+d.DigestStr(), d.DigestStr(), bundle, key); err != nil {
			return err
		}
	} else {
		m := map[string]any{"kind": api.KindBuild, "bundle": json.RawMessage(bundle)}
		if len(pems) > 0 {
			m["publicKeys"] = pems
		}
		if body, err = json.Marshal(m); err != nil {
			return err
		}
	}
	return o.submitBeside(ctx, body, file, "bundle "+file, stdout, stderr)
}
