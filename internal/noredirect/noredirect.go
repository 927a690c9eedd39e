// Package noredirect makes the HTTP clients with which Candor's servers
// talk to each other follow no redirects. A log's witnesses and a
// witness's logs are named by URL in the operators' configuration; a reply
// from one of them must not send the request to another server, another
// host or a service on the server's own network. A redirect is an error,
// like any status the caller does not expect.
package noredirect

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrRedirect is wrapped by Check's errors.
var ErrRedirect = errors.New("redirects are not followed")

// Client returns a copy of c, or a new http.Client if c is nil, that
// follows no redirect: its Do returns a 3xx reply as it is, for the caller
// to refuse with Check. c itself is left unchanged.
func Client(c *http.Client) *http.Client {
	var nc http.Client
	if c != nil {
		nc = *c
	}
	nc.CheckRedirect = func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}
	return &nc
}

// Check returns an error wrapping ErrRedirect if resp is a redirect (a
// 3xx status), naming its status and where it points; nil otherwise.
func Check(resp *http.Response) error {
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		return fmt.Errorf("%s, to %.200q: %w", resp.Status, loc, ErrRedirect)
	}
	return fmt.Errorf("%s: %w", resp.Status, ErrRedirect)
}
