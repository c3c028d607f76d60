package router

import (
	"bytes"
	"errors"

	"github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/verify"
)

// Header names the relay signs with, as API.md spells them.
const (
	headerTimestamp = "X-Ed25519-Timestamp"
	headerSignature = "X-Ed25519-Signature"
)

// Locations of a field error, as API.md lists them.
const (
	inBody   = "body"
	inQuery  = "query"
	inHeader = "header"
	inPath   = "path"
)

// fieldError is one entry of the envelope's "fields".
type fieldError struct {
	Field       string `json:"field"`
	Description string `json:"description"`
	Location    string `json:"location"`
}

// errorEntry is one entry of the envelope's "errors".
type errorEntry struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// envelope is the failure body of API.md.
type envelope struct {
	Status string       `json:"status"`
	Errors []errorEntry `json:"errors,omitempty"`
	Fields []fieldError `json:"fields,omitempty"`
}

// requestError is an error the router found in the request itself (a bad
// field, a missing header). It carries its own status and envelope parts.
type requestError struct {
	status int
	name   string // "" when only fields are reported
	desc   string
	fields []fieldError
}

func (e *requestError) Error() string {
	if e.name != "" {
		return e.name + ": " + e.desc
	}
	if len(e.fields) > 0 {
		return "bad field " + e.fields[0].Field + ": " + e.fields[0].Description
	}
	return e.desc
}

// badFields is the 400 for fields that failed validation.
func badFields(fields ...fieldError) *requestError {
	return &requestError{status: fasthttp.StatusBadRequest, fields: fields}
}

// errorName is one row of the table that turns a leaf's error into what the
// caller sees.
type errorName struct {
	err    error
	status int
	name   string
	desc   string       // shown when the error itself says nothing more useful
	fields []fieldError // the request parts the error concerns, if any
}

// errorNames is the only place a leaf's error becomes an HTTP status and a
// contract name. Names are API: clients switch on them, so never rename one.
// The first row whose err matches (errors.Is) wins.
var errorNames = [...]errorName{
	{verify.ErrMissingTimestamp, fasthttp.StatusUnauthorized, "missing_signature", "signature headers are required",
		[]fieldError{{headerTimestamp, "missing", inHeader}}},
	{verify.ErrMissingSignature, fasthttp.StatusUnauthorized, "missing_signature", "signature headers are required",
		[]fieldError{{headerSignature, "missing", inHeader}}},
	{verify.ErrMalformedTimestamp, fasthttp.StatusUnauthorized, "invalid_signature", "signature timestamp is malformed",
		[]fieldError{{headerTimestamp, "must be a decimal unix time in seconds or milliseconds", inHeader}}},
	{verify.ErrStaleTimestamp, fasthttp.StatusUnauthorized, "invalid_signature", "signature timestamp is outside the allowed window",
		[]fieldError{{headerTimestamp, "outside SIGNATURE_MAX_AGE of the server's clock", inHeader}}},
	{verify.ErrMalformedSignature, fasthttp.StatusUnauthorized, "invalid_signature", "signature is malformed",
		[]fieldError{{headerSignature, "must be 128 hex digits (a 64-byte Ed25519 signature)", inHeader}}},
	{verify.ErrBadSignature, fasthttp.StatusUnauthorized, "invalid_signature", "signature does not verify",
		[]fieldError{{headerSignature, "does not verify with the relay's key over timestamp.length.body", inHeader}}},
	{verify.ErrBadJWT, fasthttp.StatusUnauthorized, "authentication", "client authentication failed",
		[]fieldError{{"authorization", "invalid client JWT", inHeader}}},

	{cache.ErrClientBound, fasthttp.StatusUnauthorized, "authentication", "this client id, or the client holding this token, is bound to its key: a valid client JWT is required",
		[]fieldError{{"authorization", "required: the client registered with a JWT", inHeader}}},
	{cache.ErrClientNotFound, fasthttp.StatusNotFound, "client_not_found", "no client is registered under this id", nil},
	{cache.ErrTenantNotFound, fasthttp.StatusNotFound, "tenant_not_found", "no tenant exists under this id",
		[]fieldError{{"tenant_id", "unknown tenant", inPath}}},
	{cache.ErrDeliveryInProgress, fasthttp.StatusConflict, "delivery_in_progress", "the same message is being delivered; retry later", nil},
	{cache.ErrUnavailable, fasthttp.StatusServiceUnavailable, "store_unavailable", "the client store is unavailable", nil},

	{dispatch.ErrTokenDead, fasthttp.StatusGone, "client_deleted", "the provider rejected the device token; the client was removed", nil},
	{dispatch.ErrPayloadTooLarge, fasthttp.StatusRequestEntityTooLarge, "payload_too_large", "the notification exceeds the provider's 4096-byte limit", nil},
	{dispatch.ErrMisconfigured, fasthttp.StatusBadGateway, "provider_misconfigured", "the provider rejected this server's credentials", nil},
	{dispatch.ErrUnavailable, fasthttp.StatusBadGateway, "provider_unavailable", "the provider did not accept the notification", nil},
	{dispatch.ErrProviderNotAvailable, fasthttp.StatusBadGateway, "provider_not_available", "the client's provider is not configured on this server", nil},
	{dispatch.ErrTokenURINotAllowed, fasthttp.StatusBadRequest, "bad_fcm_v1_credentials", "the service account's token_uri is not a token endpoint this gateway may contact",
		[]fieldError{{"credentials", "token_uri must be Google's https://oauth2.googleapis.com/token (or one the operator allows in TENANT_FCM_TOKEN_URIS)", inBody}}},
}

// Replies that never change are built once.
var (
	okBody            = []byte(`{"status":"OK"}`)
	contentTypeJSON   = []byte("application/json")
	internalErrorBody = mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{"internal_error", "the server failed to handle the request"}}})
	staticErrorBodies [len(errorNames)][]byte
	notFoundBody      = mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{"not_found", "no such route"}}})
	overloadedBody    = mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{"overloaded", "too many sends in flight; retry after the Retry-After delay"}}})
	// A connection past MAX_CONNS or MAX_CONNS_PER_IP, refused before any
	// request is read (connLimitListener).
	overloadedConnBody   = mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{"overloaded", "too many connections open; retry after the Retry-After delay"}}})
	rateLimitedConnBody  = mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{"rate_limited", "too many connections from this address; retry after the Retry-After delay"}}})
	methodNotAllowedBody = mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{"method_not_allowed", "the route does not accept this method"}}})
)

func init() {
	for i, row := range errorNames {
		staticErrorBodies[i] = mustEnvelope(envelope{
			Status: "FAILED",
			Errors: []errorEntry{{row.name, row.desc}},
			Fields: row.fields,
		})
	}
}

func mustEnvelope(e envelope) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic("BUG: cannot encode a constant envelope: " + err.Error())
	}
	return b
}

// writeOK answers {"status":"OK"} with status.
func writeOK(ctx *fasthttp.RequestCtx, status int) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.SetBodyRaw(okBody)
}

// writeBody answers a prepared JSON body with status.
func writeBody(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.SetBodyRaw(body)
}

// writeError is the one writer of error replies: every handler and every
// fasthttp/router hook ends here.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	var re *requestError
	if errors.As(err, &re) {
		e := envelope{Status: "FAILED", Fields: re.fields}
		if re.name != "" {
			e.Errors = []errorEntry{{re.name, re.desc}}
		}
		writeBody(ctx, re.status, mustEnvelope(e))
		return
	}
	// Missing both signature headers: name both fields in one reply.
	if errors.Is(err, verify.ErrMissingTimestamp) && errors.Is(err, verify.ErrMissingSignature) {
		signatureFailures.Inc()
		writeBody(ctx, fasthttp.StatusUnauthorized, bothSignatureHeadersMissing)
		return
	}
	for i, row := range errorNames {
		if !errors.Is(err, row.err) {
			continue
		}
		countError(row.err)
		if row.status >= 500 {
			s.log.Warn("request failed", "request_id", requestID(ctx), "route", routeOf(ctx), "error", err.Error(), "name", row.name)
		}
		var pe *dispatch.ProviderError
		if errors.As(err, &pe) {
			// The provider's own words help the relay operator; they hold
			// no secret (status, reason, attempts).
			writeBody(ctx, row.status, mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{row.name, pe.Error()}}, Fields: row.fields}))
			return
		}
		writeBody(ctx, row.status, staticErrorBodies[i])
		return
	}
	s.log.Error("unexpected error", "request_id", requestID(ctx), "route", routeOf(ctx), "error", err.Error())
	writeBody(ctx, fasthttp.StatusInternalServerError, internalErrorBody)
}

var bothSignatureHeadersMissing = mustEnvelope(envelope{
	Status: "FAILED",
	Errors: []errorEntry{{"missing_signature", "signature headers are required"}},
	Fields: []fieldError{{headerTimestamp, "missing", inHeader}, {headerSignature, "missing", inHeader}},
})

// countError feeds the failure counters of /metrics.
func countError(matched error) {
	switch matched {
	case verify.ErrMissingTimestamp, verify.ErrMissingSignature, verify.ErrMalformedTimestamp,
		verify.ErrStaleTimestamp, verify.ErrMalformedSignature, verify.ErrBadSignature:
		signatureFailures.Inc()
	case cache.ErrUnavailable:
		storeErrors.Inc()
	}
}

// routeOf names the request for logs without the client id in the path:
// ids are personal data and logs are kept longer than they need to be.
func routeOf(ctx *fasthttp.RequestCtx) string {
	path := ctx.Path()
	if i := bytes.LastIndexByte(path, '/'); i > 0 {
		return string(ctx.Method()) + " " + string(path[:i]) + "/{client_id}"
	}
	return string(ctx.Method()) + " " + string(path)
}
