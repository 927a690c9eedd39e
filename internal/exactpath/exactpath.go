// Package exactpath gives each resource of Candor's servers one URL path.
// Tiles, entry bundles and checkpoints are served with cache headers, and
// an HTTP cache or CDN keys them by the path as sent: if /tile/0/%30%30%30
// or /tile//0/000 were served as /tile/0/000, one resource would have many
// cached copies, and a path whose spelling the server does not check could
// be used to fill a cache with them. Every path the servers serve is
// spelled with unreserved characters only, so a path as sent is exact if
// it has no percent-escapes and no empty, "." or ".." segments.
package exactpath

import (
	"net/http"
	"path"
	"strings"
)

// Exact reports whether the path of r, as the client sent it, is the one
// spelling of its resource: without percent-escapes (r.URL.EscapedPath is
// r.URL.Path) and clean (path.Clean does not change it, but for a final
// slash).
func Exact(r *http.Request) bool {
	p := r.URL.Path
	if r.URL.EscapedPath() != p || !strings.HasPrefix(p, "/") {
		return false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean == p
}

// Handler passes to h the requests whose path is exact, and to notFound
// the others (http.NotFound if notFound is nil). It goes in front of an
// http.ServeMux, which would serve an escaped path as the unescaped one
// and redirect an unclean path to the clean one.
func Handler(h, notFound http.Handler) http.Handler {
	if notFound == nil {
		notFound = http.NotFoundHandler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Exact(r) {
			notFound.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
