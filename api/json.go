package api

import (
	"encoding/base64"
	"slices"
	"strconv"
)

// The JSON bodies of the log's /v1 API. Hashes are standard base64, as
// encoding/json writes []byte.

// AddEntryResponse answers POST /v1/entries: 201 for a new entry, 200 for a
// duplicate (with the existing index).
type AddEntryResponse struct {
	Index    uint64 `json:"index"`
	LeafHash []byte `json:"leafHash"`
	// TreeSize is the size of the checkpoint in Proof.
	TreeSize uint64 `json:"treeSize"`
	// Proof is a c2sp.org/tlog-proof@v1 bundle: the inclusion proof of the
	// entry and the signed checkpoint it verifies against.
	Proof string `json:"proof"`
	// Witnessed is set by a log with a witness policy: true, the
	// checkpoint in Proof is cosigned by enough of its witnesses.
	Witnessed *bool `json:"witnessed,omitempty"`
}

// AppendJSON appends r to b as JSON, exactly as json.Marshal writes it.
func (r *AddEntryResponse) AppendJSON(b []byte) []byte {
	b = slices.Grow(b, 96+base64.StdEncoding.EncodedLen(len(r.LeafHash))+len(r.Proof)+len(r.Proof)/32)
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, r.Index, 10)
	b = append(b, `,"leafHash":`...)
	if r.LeafHash == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, r.LeafHash)
		b = append(b, '"')
	}
	b = append(b, `,"treeSize":`...)
	b = strconv.AppendUint(b, r.TreeSize, 10)
	b = append(b, `,"proof":`...)
	b = appendJSONString(b, r.Proof)
	if r.Witnessed != nil {
		b = append(b, `,"witnessed":`...)
		b = strconv.AppendBool(b, *r.Witnessed)
	}
	return append(b, '}')
}

// PendingStatus is the status of a PendingEntryResponse.
const PendingStatus = "sequenced"

// PendingEntryResponse answers POST /v1/entries with 202 Accepted when the
// log has a witness policy and no checkpoint cosigned by the witnesses
// included the entry within the wait: the entry is sequenced (its index is
// final) and durable, but its proof can't be given yet. GET ProofURL (404
// with Retry-After until a cosigned checkpoint includes the entry) serves
// the inclusion proof and the cosigned checkpoint later.
type PendingEntryResponse struct {
	Index    uint64 `json:"index"`
	LeafHash []byte `json:"leafHash"`
	// Duplicate is true when the entry was already in the log.
	Duplicate bool `json:"duplicate"`
	// Witnessed is always false.
	Witnessed bool `json:"witnessed"`
	// Status is "sequenced": durable at Index, not yet witnessed.
	Status string `json:"status"`
	// WitnessedSize is the size of the newest cosigned checkpoint, which
	// does not include the entry (0 if there is none).
	WitnessedSize uint64 `json:"witnessedSize"`
	// ProofURL is the path, on the log, of the entry's inclusion proof.
	ProofURL string `json:"proofURL"`
}

// EntryResponse answers GET /v1/entries/<index>.
type EntryResponse struct {
	Index    uint64 `json:"index"`
	LeafHash []byte `json:"leafHash"`
	// Entry is the canonical entry, exactly as hashed into the tree.
	Entry []byte `json:"entry"`
}

// InclusionProofResponse answers GET /v1/proof/inclusion.
type InclusionProofResponse struct {
	Index    uint64   `json:"index"`
	TreeSize uint64   `json:"treeSize"`
	LeafHash []byte   `json:"leafHash"`
	Hashes   [][]byte `json:"hashes"`
	// Checkpoint is the signed checkpoint of TreeSize, when the request
	// named no size and the proof is against the latest checkpoint.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// ConsistencyProofResponse answers GET /v1/proof/consistency.
type ConsistencyProofResponse struct {
	Old    uint64   `json:"old"`
	New    uint64   `json:"new"`
	Hashes [][]byte `json:"hashes"`
	// Checkpoint is the signed checkpoint of New, when the request named no
	// new size and the proof is to the latest checkpoint.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// ErrorResponse is the body of every 4xx and 5xx answer of the /v1 API.
type ErrorResponse struct {
	Error string `json:"error"`
}
