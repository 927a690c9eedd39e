package main

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/candorlog/candor/api"
	logclient "github.com/candorlog/candor/api/client"
)

// cosignModule is the cosign CLI the tests sign with, built from its Go
// module with the machine's Go.
const cosignModule = "github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3"

var buildCosign = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("CANDOR_TEST_COSIGN"); p != "" {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "candor-test", strings.ReplaceAll(strings.TrimPrefix(cosignModule, "github.com/sigstore/"), "/", "_"))
	bin := filepath.Join(dir, "cosign")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.Command("go", "install", cosignModule)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %v\n%s", cosignModule, err, out)
	}
	return bin, nil
})

// cosignBinary returns the path of the real cosign, built once (some
// minutes the first time on a machine, then cached).
func cosignBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the real cosign")
	}
	bin, err := buildCosign()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// cosign runs the cosign CLI in dir and returns its exit code and output.
func cosign(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(cosignBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=candor-test", "HOME="+dir, "SIGSTORE_NO_CACHE=true")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errorsAs(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("cosign %q: %v\n%s", args, err, out)
	return 0, ""
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// cosignOffline writes, in dir, the files that keep cosign off the
// network: an empty trusted root (so that it fetches none from Sigstore's
// TUF repository) and a signing configuration without services.
func cosignOffline(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "trusted-root.json"), []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "signing-config.json"), []byte(`{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","rekorTlogConfig":{},"tsaConfig":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cosignSign signs ref with the key in dir/cosign.key as cosign signs
// without a transparency log, in its classic format: a sha256-<hex>.sig
// image beside the signed one.
func cosignSign(t *testing.T, dir, ref string, extra ...string) {
	t.Helper()
	args := append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false", "--use-signing-config=false", "--new-bundle-format=false", "--trusted-root", "trusted-root.json", "-y"}, extra...)
	if code, out := cosign(t, dir, append(args, ref)...); code != 0 {
		t.Fatalf("cosign sign %s: exit %d\n%s", ref, code, out)
	}
}

// cosignSignBundle signs ref as cosign v3 signs by default, without a
// transparency log: a Sigstore bundle pushed as a referrer of the image.
func cosignSignBundle(t *testing.T, dir, ref string) {
	t.Helper()
	if code, out := cosign(t, dir, "sign", "--key", "cosign.key", "--signing-config", "signing-config.json", "--trusted-root", "trusted-root.json", "-y", ref); code != 0 {
		t.Fatalf("cosign sign %s: exit %d\n%s", ref, code, out)
	}
}

// cosignVerifies reports whether cosign verify accepts ref's signatures
// with the key file, in the format given (new: Sigstore bundles).
func cosignVerifies(t *testing.T, dir, key, ref string, bundles bool) bool {
	t.Helper()
	code, _ := cosign(t, dir, "verify", "--key", key, "--insecure-ignore-tlog", fmt.Sprintf("--new-bundle-format=%v", bundles), "--trusted-root", "trusted-root.json", ref)
	return code == 0
}

// pushRandomImage pushes a random image to repo and returns its digest
// reference.
func pushRandomImage(t *testing.T, repo string) string {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	return pushImage(t, repo+":latest", img)
}

func pushImage(t *testing.T, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Name() + "@" + d.String()
}

// sigTag returns the tag cosign keeps the signatures of the image ref in.
func sigTag(t *testing.T, ref string) name.Tag {
	t.Helper()
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
}

// TestSubmitImageCosign signs images with the real cosign in a registry
// served on loopback, logs the signatures with candor submit image, and
// checks that cosign verify and the log agree: the log takes what cosign
// verifies with the key, and refuses what it does not (another key, a
// signature moved to another image, a payload changed under its
// signature). candor verify --image accepts the proof bundle of the image
// and refuses it for another.
func TestSubmitImageCosign(t *testing.T) {
	regSrv := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	defer regSrv.Close()
	repo := strings.TrimPrefix(regSrv.URL, "http://") + "/team/app"
	signed, other := pushRandomImage(t, repo), pushImage(t, repo+":other", mustRandom(t))
	dir, otherDir := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, otherDir} {
		cosignOffline(t, d)
		if code, out := cosign(t, d, "generate-key-pair"); code != 0 {
			t.Fatalf("cosign generate-key-pair: exit %d\n%s", code, out)
		}
	}
	otherKey := filepath.Join(otherDir, "cosign.pub")
	cosignSign(t, dir, signed)

	logURL, vkey := newTestLog(t, nil)
	policy := writeFile(t, dir, "policy", []byte("log "+vkey+"\nquorum none\n"))
	bundle := filepath.Join(dir, "signed.tlog-proof")
	submit := func(args ...string) (int, string) {
		t.Helper()
		code, stdout, stderr := runCandor(t, append([]string{"submit", "image", "--log", logURL}, args...)...)
		return code, stdout + stderr
	}

	// Valid: both take it.
	if !cosignVerifies(t, dir, "cosign.pub", signed, false) {
		t.Fatal("cosign verify refuses its own signature")
	}
	// By its tag: resolved to the digest it names.
	if code, out := submit(repo+":latest", "--key", filepath.Join(dir, "cosign.pub"), "--out", bundle); code != 0 || !strings.Contains(out, repo+":latest is "+signed) {
		t.Fatalf("candor submit image: exit %d\n%s", code, out)
	}
	if code, stdout, stderr := runCandor(t, "verify", "--bundle", bundle, "--policy", policy, "--image", signed); code != 0 || !strings.Contains(stdout, "VERIFIED: the signature of the image "+signed) {
		t.Fatalf("candor verify --image: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCandor(t, "verify", "--bundle", bundle, "--policy", policy, "--image", other); code != 1 || stdout != "" {
		t.Fatalf("candor verify --image of another image: exit %d", code)
	}
	hits, err := logclient.New(logURL, nil).Search(context.Background(), []api.SearchTerm{{Param: api.SearchImage, Value: signed[strings.Index(signed, "@")+1:]}}, "", 10)
	if err != nil || len(hits.Hits) != 1 {
		t.Fatalf("search by image: %+v, %v", hits, err)
	}

	// Another key: neither takes it.
	if cosignVerifies(t, dir, otherKey, signed, false) {
		t.Error("cosign verify accepts the signature with another key")
	}
	if code, out := submit(signed, "--key", otherKey); code != 1 || !strings.Contains(out, "none of the 1 signatures") {
		t.Errorf("candor submit image with another key: exit %d\n%s", code, out)
	}

	// The signature moved to another image of the repository.
	sigImg, err := remote.Image(sigTag(t, signed))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sigTag(t, other), sigImg); err != nil {
		t.Fatal(err)
	}
	if cosignVerifies(t, dir, "cosign.pub", other, false) {
		t.Error("cosign verify accepts a signature of another image")
	}
	if code, out := submit(other, "--key", filepath.Join(dir, "cosign.pub")); code != 1 || !strings.Contains(out, "payload signs digest") {
		t.Errorf("candor submit image of a moved signature: exit %d\n%s", code, out)
	}

	// A payload changed under its signature, to name a third image.
	third := pushImage(t, repo+":third", mustRandom(t))
	m, err := sigImg.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := sigImg.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	payload, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	signedDigest := signed[strings.Index(signed, "@")+1:]
	thirdDigest := third[strings.Index(third, "@")+1:]
	changed := strings.Replace(string(payload), signedDigest, thirdDigest, 1)
	forged, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:       static.NewLayer([]byte(changed), types.MediaType("application/vnd.dev.cosign.simplesigning.v1+json")),
		Annotations: m.Layers[0].Annotations,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sigTag(t, third), forged); err != nil {
		t.Fatal(err)
	}
	if cosignVerifies(t, dir, "cosign.pub", third, false) {
		t.Error("cosign verify accepts a changed payload")
	}
	if code, out := submit(third, "--key", filepath.Join(dir, "cosign.pub")); code != 1 || !strings.Contains(out, "doesn't verify") {
		t.Errorf("candor submit image of a changed payload: exit %d\n%s", code, out)
	}

	// From files, as cosign sign --output-payload --output-signature
	// writes them.
	cosignSign(t, dir, other, "--upload=false", "--output-payload", "payload.json", "--output-signature", "payload.sig")
	if code, out := submit("--payload", filepath.Join(dir, "payload.json"), "--signature", filepath.Join(dir, "payload.sig"), "--key", filepath.Join(dir, "cosign.pub")); code != 0 {
		t.Fatalf("candor submit image from files: exit %d\n%s", code, out)
	}
	if code, stdout, stderr := runCandor(t, "verify", "--bundle", filepath.Join(dir, "payload.json.tlog-proof"), "--policy", policy, "--image", other); code != 0 {
		t.Fatalf("candor verify --image of the signature from files: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestSubmitImageCosignBundle signs an image as cosign v3 does by default
// (a Sigstore bundle, pushed as a referrer of the image), and checks that
// cosign verify and the log agree on it: the log takes the bundle with the
// signer's key, and refuses it with another key, which cosign refuses too.
func TestSubmitImageCosignBundle(t *testing.T) {
	regSrv := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	defer regSrv.Close()
	repo := strings.TrimPrefix(regSrv.URL, "http://") + "/team/app"
	signed := pushRandomImage(t, repo)
	dir, otherDir := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, otherDir} {
		cosignOffline(t, d)
		if code, out := cosign(t, d, "generate-key-pair"); code != 0 {
			t.Fatalf("cosign generate-key-pair: exit %d\n%s", code, out)
		}
	}
	cosignSignBundle(t, dir, signed)
	logURL, vkey := newTestLog(t, nil)
	policy := writeFile(t, dir, "policy", []byte("log "+vkey+"\nquorum none\n"))
	bundle := filepath.Join(dir, "signed.tlog-proof")

	if !cosignVerifies(t, dir, "cosign.pub", signed, true) {
		t.Fatal("cosign verify refuses its own bundle")
	}
	code, stdout, stderr := runCandor(t, "submit", "image", "--log", logURL, "--key", filepath.Join(dir, "cosign.pub"), "--out", bundle, "--attach", signed)
	if code != 0 || !strings.Contains(stdout, "proof attached to") {
		t.Fatalf("candor submit image --attach of a bundle: exit %d\n%s%s", code, stdout, stderr)
	}
	// The proof is in the registry, a referrer of the image beside
	// cosign's bundle, byte for byte the file written.
	d, err := name.NewDigest(signed)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(d)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	var attached, bundles int
	for _, desc := range im.Manifests {
		switch desc.ArtifactType {
		case sigstoreBundleType:
			bundles++
		case proofArtifactType:
			attached++
			img, err := remote.Image(d.Context().Digest(desc.Digest.String()))
			if err != nil {
				t.Fatal(err)
			}
			layers, err := img.Layers()
			if err != nil || len(layers) != 1 {
				t.Fatalf("the attached proof has %d layers, %v", len(layers), err)
			}
			b, err := readLayer(layers[0])
			if err != nil || string(b) != string(written) {
				t.Fatalf("the attached proof is %q, %v; want the file written", b, err)
			}
		}
	}
	if attached != 1 || bundles != 1 {
		t.Fatalf("the image has %d proofs and %d Sigstore bundles as referrers, want 1 and 1", attached, bundles)
	}
	if code, stdout, stderr := runCandor(t, "verify", "--bundle", bundle, "--policy", policy, "--image", signed); code != 0 {
		t.Fatalf("candor verify --image: exit %d\n%s%s", code, stdout, stderr)
	}
	otherKey := filepath.Join(otherDir, "cosign.pub")
	if cosignVerifies(t, dir, otherKey, signed, true) {
		t.Error("cosign verify accepts the bundle with another key")
	}
	if code, stdout, stderr := runCandor(t, "submit", "image", "--log", logURL, "--key", otherKey, signed); code != 1 || !strings.Contains(stdout+stderr, "none of the 1 signatures") {
		t.Errorf("candor submit image of a bundle with another key: exit %d\n%s%s", code, stdout, stderr)
	}
}

func mustRandom(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestSubmitBundleCosign logs a build attestation that the real cosign
// wrote as a Sigstore bundle (cosign attest-blob --bundle), and checks that
// cosign verify-blob-attestation and the log agree: the bundle with the
// signer's key is logged, and candor verify --artifact proves it for the
// attested file and not for another; with another key neither takes it;
// a bundle of an unknown media type is refused. Then the same for a
// signature of the file by its digest (cosign sign-blob --bundle).
func TestSubmitBundleCosign(t *testing.T) {
	dir, otherDir := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, otherDir} {
		cosignOffline(t, d)
		if code, out := cosign(t, d, "generate-key-pair"); code != 0 {
			t.Fatalf("cosign generate-key-pair: exit %d\n%s", code, out)
		}
	}
	blob := writeFile(t, dir, "app.tar.gz", []byte("the artifact"))
	other := writeFile(t, dir, "other.tar.gz", []byte("another artifact"))
	writeFile(t, dir, "predicate.json", []byte(`{"buildDefinition":{"buildType":"https://example.com/build/v1"}}`))
	if code, out := cosign(t, dir, "attest-blob", "--key", "cosign.key", "--predicate", "predicate.json", "--type", "slsaprovenance1",
		"--bundle", "app.bundle", "--signing-config", "signing-config.json", "--trusted-root", "trusted-root.json", "-y", blob); code != 0 {
		t.Fatalf("cosign attest-blob: exit %d\n%s", code, out)
	}
	verifies := func(key, file string) bool {
		code, _ := cosign(t, dir, "verify-blob-attestation", "--key", key, "--bundle", "app.bundle", "--insecure-ignore-tlog",
			"--trusted-root", "trusted-root.json", "--type", "slsaprovenance1", file)
		return code == 0
	}
	logURL, vkey := newTestLog(t, nil)
	policy := writeFile(t, dir, "policy", []byte("log "+vkey+"\nquorum none\n"))
	bundle := filepath.Join(dir, "app.bundle")

	if !verifies("cosign.pub", blob) {
		t.Fatal("cosign refuses its own attestation")
	}
	if code, stdout, stderr := runCandor(t, "submit", "bundle", "--log", logURL, "--key", filepath.Join(dir, "cosign.pub"), bundle); code != 0 {
		t.Fatalf("candor submit bundle: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCandor(t, "verify", "--bundle", bundle+proofSuffix, "--policy", policy, "--artifact", blob); code != 0 {
		t.Fatalf("candor verify --artifact: exit %d\n%s%s", code, stdout, stderr)
	}
	if verifies("cosign.pub", other) {
		t.Error("cosign verifies the attestation for another file")
	}
	if code, _, _ := runCandor(t, "verify", "--bundle", bundle+proofSuffix, "--policy", policy, "--artifact", other); code != 1 {
		t.Errorf("candor verify --artifact of another file: exit %d", code)
	}
	otherKey := filepath.Join(otherDir, "cosign.pub")
	if verifies(otherKey, blob) {
		t.Error("cosign verifies the attestation with another key")
	}
	if code, stdout, stderr := runCandor(t, "submit", "bundle", "--log", logURL, "--key", otherKey, "--out", filepath.Join(dir, "x"), bundle); code != 1 || !strings.Contains(stdout+stderr, "doesn't verify") {
		t.Errorf("candor submit bundle with another key: exit %d\n%s%s", code, stdout, stderr)
	}
	// A signature of the artifact by its digest, as cosign sign-blob
	// --bundle makes it.
	if code, out := cosign(t, dir, "sign-blob", "--key", "cosign.key", "--bundle", "blob.bundle", "--signing-config", "signing-config.json",
		"--trusted-root", "trusted-root.json", "-y", blob); code != 0 {
		t.Fatalf("cosign sign-blob: exit %d\n%s", code, out)
	}
	if code, out := cosign(t, dir, "verify-blob", "--key", "cosign.pub", "--bundle", "blob.bundle", "--insecure-ignore-tlog", "--trusted-root", "trusted-root.json", blob); code != 0 {
		t.Fatalf("cosign verify-blob: exit %d\n%s", code, out)
	}
	blobBundle := filepath.Join(dir, "blob.bundle")
	if code, stdout, stderr := runCandor(t, "submit", "bundle", "--log", logURL, "--key", filepath.Join(dir, "cosign.pub"), blobBundle); code != 0 {
		t.Fatalf("candor submit bundle of cosign sign-blob's bundle: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCandor(t, "verify", "--bundle", blobBundle+proofSuffix, "--policy", policy, "--artifact", blob); code != 0 {
		t.Fatalf("candor verify --artifact of a message signature: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _ := cosign(t, dir, "verify-blob", "--key", "cosign.pub", "--bundle", "blob.bundle", "--insecure-ignore-tlog", "--trusted-root", "trusted-root.json", other); code == 0 {
		t.Error("cosign verify-blob accepts the signature for another file")
	}
	if code, _, _ := runCandor(t, "verify", "--bundle", blobBundle+proofSuffix, "--policy", policy, "--artifact", other); code != 1 {
		t.Errorf("candor verify --artifact of another file: exit %d", code)
	}

	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	unknown := writeFile(t, dir, "unknown.bundle", []byte(strings.Replace(string(b), "bundle.v0.3+json", "bundle.v9+json", 1)))
	if code, stdout, stderr := runCandor(t, "submit", "bundle", "--log", logURL, "--key", filepath.Join(dir, "cosign.pub"), unknown); code != 1 || !strings.Contains(stdout+stderr, "media type") {
		t.Errorf("candor submit bundle of an unknown media type: exit %d\n%s%s", code, stdout, stderr)
	}
}
