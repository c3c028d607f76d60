package dispatch

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// A ProviderError's text leaves dispatch: the router puts it in a 502 body,
// in log lines and in a tenant's suspension reason, which the tenants API
// shows. The device token is personal data and must appear in none of them,
// yet the APNs request URL holds it (/3/device/<token>) and net/http quotes
// a failed request's URL in its *url.Error. So a transport error is cleaned
// where it is caught (cleanCause), before anything prints it, and a sender
// checks the finished error for its token once more (redactToken).

// transportError is a *url.Error without the path and query of its URL.
// It keeps what an operator needs (the method, the provider's host, the
// failure) and unwraps like the *url.Error did, so classifyTransport sees
// the same chain.
type transportError struct {
	op   string // "Post"
	host string // "https://api.push.apple.com"; "" when the URL did not parse
	err  error
}

func (e *transportError) Error() string {
	if e.host == "" {
		return e.op + ": " + e.err.Error()
	}
	return e.op + " " + e.host + ": " + e.err.Error()
}

func (e *transportError) Unwrap() error { return e.err }

// tokenFetchError is an OAuth token endpoint's refusal without the body of
// its answer. oauth2.RetrieveError prints the whole body when the answer
// has no RFC 6749 error code (x/oauth2/jwt never parses one), and a body is
// whatever the endpoint chose to write, up to a megabyte.
type tokenFetchError struct{ re *oauth2.RetrieveError }

func (e *tokenFetchError) Error() string {
	s := "oauth2: the token endpoint refused the grant"
	if r := e.re.Response; r != nil {
		status := r.Status // "400 Bad Request"; empty on a Response built by hand
		if status == "" {
			status = strconv.Itoa(r.StatusCode)
		}
		s = "oauth2: the token endpoint answered " + status
	}
	code, desc := e.re.ErrorCode, e.re.ErrorDescription
	if code == "" {
		// x/oauth2/jwt leaves the RFC 6749 fields unparsed: read them, and
		// only them, from the body.
		var body struct {
			Code string `json:"error"`
			Desc string `json:"error_description"`
		}
		if json.Unmarshal(e.re.Body, &body) == nil {
			code, desc = body.Code, body.Desc
		}
	}
	if code != "" {
		s += fmt.Sprintf(" %q", truncate(code, 64))
		if desc != "" {
			s += fmt.Sprintf(" %q", truncate(desc, 200))
		}
	}
	return s
}

func (e *tokenFetchError) Unwrap() error { return e.re }

// cleanCause returns err with every *url.Error in its chain replaced by a
// transportError and every oauth2.RetrieveError by a tokenFetchError, as
// long as the chain is made of those (an error of another type that merely
// wraps one is returned as it is: its text was fixed when it was made).
func cleanCause(err error) error {
	switch e := err.(type) {
	case *url.Error:
		return &transportError{op: e.Op, host: hostOf(e.URL), err: cleanCause(e.Err)}
	case *oauth2.RetrieveError:
		return &tokenFetchError{re: e}
	}
	return err
}

// hostOf returns the scheme and host of rawURL, never its path.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// minRedactedToken is the shortest token redactToken looks for: a shorter
// string turns up inside ordinary words of an error text, and replacing it
// there would garble the text without hiding anything that identifies a
// device (APNs tokens are 64 hex digits, FCM tokens over a hundred bytes).
const minRedactedToken = 8

// redactedToken stands in for a device token in an error text.
const redactedToken = "<device token>"

// redactToken is the last check before pe leaves a sender: should the
// token still appear in its reason or cause (an error path cleanCause does
// not know, a provider quoting the token in its answer), it is replaced.
func (pe *ProviderError) redactToken(token string) {
	if len(token) < minRedactedToken {
		return
	}
	if strings.Contains(pe.Reason, token) {
		pe.Reason = strings.ReplaceAll(pe.Reason, token, redactedToken)
	}
	if pe.Cause != nil {
		if text := pe.Cause.Error(); strings.Contains(text, token) {
			pe.Cause = &redactedError{text: strings.ReplaceAll(text, token, redactedToken), err: pe.Cause}
		}
	}
}

// redactedError is an error whose text had a token replaced; it unwraps to
// the original, for errors.Is and errors.As.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }
