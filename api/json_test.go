package api

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestAddEntryResponseAppendJSON checks AppendJSON against json.Marshal.
func TestAddEntryResponseAppendJSON(t *testing.T) {
	yes, no := true, false
	bundle := "c2sp.org/tlog-proof@v1\nindex 3\nAAAA\n\nexample.com/log\n4\nBBBB\n\n— example.com/log Zm9v\n"
	for _, r := range []AddEntryResponse{
		{},
		{Index: 3, LeafHash: bytes.Repeat([]byte{0xfb}, 32), TreeSize: 4, Proof: bundle},
		{Index: 1<<64 - 1, LeafHash: []byte{}, TreeSize: 1<<64 - 1, Proof: bundle, Witnessed: &yes},
		{Proof: "<&>\u2028\xff\x00\"\\", Witnessed: &no},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AppendJSON([]byte("x")); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("AppendJSON(%+v) = %s, want x%s", r, got, want)
		}
	}
}
