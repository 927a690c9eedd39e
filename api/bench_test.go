package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/candorlog/candor/api/apitest"
)

// The benchmarks of entry admission. BenchmarkCanonicalEntry/apitest is the
// typical submission, what apitest.BuildSigner makes (an in-toto v1
// Statement with SLSA provenance, one Ed25519 key); BenchmarkEd25519Verify
// is the part of it that can't be made cheaper, so the difference between
// the two is what the log's own code costs.

// reportCPU, deferred right before a benchmark's loop, reports the CPU
// time of the whole process per operation (cpu-sec/op), GC included. On a
// shared machine it varies much less than sec/op, which is wall time: the
// benchmarks are CPU-bound, so CPU time is what they cost.
func reportCPU(b *testing.B) func() {
	start := processCPUTime()
	return func() {
		if end := processCPUTime(); start != 0 && b.N > 0 {
			b.ReportMetric((end-start).Seconds()/float64(b.N), "cpu-sec/op")
		}
	}
}

// benchSubmission returns a typical submission: an apitest one.
func benchSubmission() []byte {
	return apitest.NewBuildSignerFromSeed([]byte("bench")).Submission("pkg/artifact-1.2.3.tar.gz", testDigest)
}

func BenchmarkCanonicalEntry(b *testing.B) {
	b.Run("apitest", func(b *testing.B) {
		body := benchSubmission()
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := CanonicalEntry(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Every submission with a key of its own, more keys than any cache of
	// parsed keys would hold.
	b.Run("apitest-new-keys", func(b *testing.B) {
		const n = 4096
		bodies := make([][]byte, n)
		for i := range bodies {
			bodies[i] = apitest.NewBuildSignerFromSeed(fmt.Appendf(nil, "bench-%d", i)).Submission("pkg/artifact-1.2.3.tar.gz", testDigest)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(bodies[0])))
		defer reportCPU(b)()
		for i := 0; b.Loop(); i++ {
			if _, err := CanonicalEntry(bodies[i%n]); err != nil {
				b.Fatal(err)
			}
		}
	})
	ks := keys(b)
	stmt := statementV1("a.tar.gz", testDigest)
	for _, k := range []testKey{ks.ed25519, ks.p256, ks.p384, ks.rsa2048} {
		b.Run(k.name, func(b *testing.B) {
			body := testSubmission{payload: stmt, signers: []testKey{k}}.encode(b)
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := CanonicalEntry(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseEntry(b *testing.B) {
	entry, err := CanonicalEntry(benchSubmission())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(entry)))
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := ParseEntry(entry); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify is the signature check of BenchmarkCanonicalEntry/
// apitest alone.
func BenchmarkEd25519Verify(b *testing.B) {
	var sub struct {
		Envelope struct {
			PayloadType string
			Payload     []byte
			Signatures  []struct{ Sig []byte }
		}
	}
	if err := json.Unmarshal(benchSubmission(), &sub); err != nil {
		b.Fatal(err)
	}
	pub := apitest.NewBuildSignerFromSeed([]byte("bench")).PublicKey()
	msg := fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(sub.Envelope.PayloadType), sub.Envelope.PayloadType, len(sub.Envelope.Payload), sub.Envelope.Payload)
	sig := sub.Envelope.Signatures[0].Sig
	if !ed25519.Verify(pub, msg, sig) {
		b.Fatal("the signature doesn't verify")
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		ed25519.Verify(pub, msg, sig)
	}
}

// BenchmarkECDSAP256Verify is the signature check of an image entry signed
// as cosign signs with its default key, ECDSA P-256 over the payload's
// SHA-256, alone: the bound of the log's rate of image submissions.
func BenchmarkECDSAP256Verify(b *testing.B) {
	s := apitest.NewImageSigner()
	payload := s.Payload("registry.example.com/app", "sha256:"+testDigest)
	sig := s.Sign(payload)
	k, err := parsePublicKey(0, s.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	if _, ok := verifySignature(k, payload, sig); !ok {
		b.Fatal("the signature doesn't verify")
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		verifySignature(k, payload, sig)
	}
}

// BenchmarkCanonicalImage is CanonicalEntry of an image submission signed
// as cosign signs with its default key.
func BenchmarkCanonicalImage(b *testing.B) {
	body := apitest.NewImageSigner().Submission("registry.example.com/app", "sha256:"+testDigest)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := CanonicalEntry(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInTotoStatement is the check of the Statement in the payload of
// BenchmarkCanonicalEntry/apitest alone.
func BenchmarkInTotoStatement(b *testing.B) {
	var sub struct {
		Envelope struct{ Payload string }
	}
	if err := json.Unmarshal(benchSubmission(), &sub); err != nil {
		b.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(sub.Envelope.Payload)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := parseInTotoSubjects(payload); err != nil {
			b.Fatal(err)
		}
	}
}
