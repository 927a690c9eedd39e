package buildinfo_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/internal/buildinfo"
)

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildinfo.NewCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	i := buildinfo.Read()
	if len(mfs) != 1 || mfs[0].GetName() != "candor_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, want candor_build_info alone", mfs)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"version": i.Version, "revision": i.Revision, "goversion": runtime.Version()}
	if len(labels) != len(want) || m.GetGauge().GetValue() != 1 {
		t.Errorf("candor_build_info %v = %v, want %v = 1", labels, m.GetGauge().GetValue(), want)
	}
	for k, v := range want {
		if labels[k] != v || v == "" {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
	if s := i.String(); !strings.Contains(s, runtime.Version()) || !strings.HasPrefix(s, i.Version+" (revision ") {
		t.Errorf("String() = %q", s)
	}
}
