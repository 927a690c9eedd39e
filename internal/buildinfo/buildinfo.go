// Package buildinfo says which build of Candor is running: its version,
// the VCS revision it was built from and the Go version, read from the
// binary (runtime/debug.ReadBuildInfo), for --version and the
// candor_build_info metric.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info is what the binary says of its build.
type Info struct {
	// Version is the main module's version: a tag such as v1.2.0, a
	// pseudo-version, or "(devel)" for a build from a work tree.
	Version string
	// Revision is the VCS revision, with "-dirty" if the work tree had
	// changes, or "unknown" when the build did not record it (go test,
	// go run).
	Revision string
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	i := Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	if bi.Main.Version != "" {
		i.Version = bi.Main.Version
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && i.Revision != "unknown" {
		i.Revision += "-dirty"
	}
	return i
}

// String is the line --version prints: "VERSION (revision REV, GOVERSION)".
func (i Info) String() string {
	return fmt.Sprintf("%s (revision %s, %s)", i.Version, i.Revision, i.GoVersion)
}

// NewCollector returns the gauge candor_build_info{version,revision,goversion},
// always 1, the labels saying which build is running.
func NewCollector() prometheus.Collector {
	i := Read()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "candor_build_info",
		Help:        "Always 1; the labels say which build of Candor is running.",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": i.Revision, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}
