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

// The router's own refusals: causes found in the request, the connection or
// the server's state rather than in a leaf. Each has its row in errorNames,
// which alone gives it a status and a contract name.
var (
	errNotFound              = errors.New("router: no such route")
	errMethodNotAllowed      = errors.New("router: method not allowed")
	errInternal              = errors.New("router: internal error")
	errSendsOverloaded       = errors.New("router: too many sends in flight")
	errConnsOverloaded       = errors.New("router: too many connections")
	errConnsFromPeer         = errors.New("router: too many connections from one address")
	errRateLimited           = errors.New("router: rate limited")
	errShuttingDown          = errors.New("router: shutting down")
	errBodyTooLarge          = errors.New("router: request body too large")
	errHeadersTooLarge       = errors.New("router: request headers too large")
	errRequestTimeout        = errors.New("router: request not received in time")
	errBadHTTP               = errors.New("router: unparseable HTTP")
	errUnauthenticated       = errors.New("router: authentication failed")
	errProviderNotOffered    = errors.New("router: provider not configured")
	errBadAPNSCredentials    = errors.New("router: bad APNs credentials")
	errBadFCMCredentials     = errors.New("router: bad FCM v1 credentials")
	errBadWebPushCredentials = errors.New("router: bad Web Push credentials")
	errFCMLegacyUnsupported  = errors.New("router: legacy FCM unsupported")
	errWebPushNotConfigured  = errors.New("router: Web Push not configured")
)

// requestError is an error the router found in the request itself (a bad
// field, a missing header). Its cause (one of the router's sentinels, nil
// when only fields are reported) picks the row of errorNames; desc and
// fields are what this request adds.
type requestError struct {
	cause  error
	desc   string
	fields []fieldError
}

// refused is a requestError for cause, which must have a row in errorNames.
func refused(cause error, desc string, fields ...fieldError) *requestError {
	return &requestError{cause: cause, desc: desc, fields: fields}
}

func (e *requestError) Error() string {
	if e.cause != nil {
		return errorNames[rowOf(e.cause)].name + ": " + e.desc
	}
	if len(e.fields) > 0 {
		return "bad field " + e.fields[0].Field + ": " + e.fields[0].Description
	}
	return e.desc
}

func (e *requestError) Unwrap() error { return e.cause }

// status is the HTTP status the request is refused with.
func (e *requestError) status() int {
	if e.cause == nil {
		return fasthttp.StatusBadRequest
	}
	return errorNames[rowOf(e.cause)].status
}

// badFields is the 400 for fields that failed validation.
func badFields(fields ...fieldError) *requestError {
	return &requestError{fields: fields}
}

// providerRefused is a send refused before its provider was asked: the
// tenant's stored credentials no longer build, or the provider is suspended
// for this tenant. It is a provider_misconfigured (its row is
// dispatch.ErrMisconfigured's); reason goes to the operator's log only.
type providerRefused struct {
	provider string
	reason   string
}

// Error is the reply's description, word for word what it has always been
// (the text of a dispatch.ProviderError that no provider answered).
func (e *providerRefused) Error() string {
	return e.provider + ": no answer after 0 attempt(s): " + dispatch.ErrMisconfigured.Error()
}

func (e *providerRefused) Unwrap() error { return dispatch.ErrMisconfigured }

// errorName is one row of the table that turns an error into what the
// caller sees.
type errorName struct {
	err    error
	status int
	name   string
	desc   string       // shown when the error itself says nothing more useful
	fields []fieldError // the request parts the error concerns, if any
	// quiet rows are answered without a log line even at 5xx: expected
	// under load or while draining, or logged where they arise.
	quiet bool
}

// errorNames is the only place an error becomes an HTTP status and a
// contract name: a leaf's errors and the router's own refusals alike. Names
// are API: clients switch on them, so never rename one (TestEveryContractName
// holds them to API.md and the docs). The first row whose err matches
// (errors.Is) wins.
var errorNames = [...]errorName{
	{err: verify.ErrMissingTimestamp, status: fasthttp.StatusUnauthorized, name: "missing_signature", desc: "signature headers are required",
		fields: []fieldError{{headerTimestamp, "missing", inHeader}}},
	{err: verify.ErrMissingSignature, status: fasthttp.StatusUnauthorized, name: "missing_signature", desc: "signature headers are required",
		fields: []fieldError{{headerSignature, "missing", inHeader}}},
	{err: verify.ErrMalformedTimestamp, status: fasthttp.StatusUnauthorized, name: "invalid_signature", desc: "signature timestamp is malformed",
		fields: []fieldError{{headerTimestamp, "must be a decimal unix time in seconds or milliseconds", inHeader}}},
	{err: verify.ErrStaleTimestamp, status: fasthttp.StatusUnauthorized, name: "invalid_signature", desc: "signature timestamp is outside the allowed window",
		fields: []fieldError{{headerTimestamp, "outside SIGNATURE_MAX_AGE of the server's clock", inHeader}}},
	{err: verify.ErrMalformedSignature, status: fasthttp.StatusUnauthorized, name: "invalid_signature", desc: "signature is malformed",
		fields: []fieldError{{headerSignature, "must be 128 hex digits (a 64-byte Ed25519 signature)", inHeader}}},
	{err: verify.ErrBadSignature, status: fasthttp.StatusUnauthorized, name: "invalid_signature", desc: "signature does not verify",
		fields: []fieldError{{headerSignature, "does not verify with the relay's key over timestamp.length.body", inHeader}}},
	{err: verify.ErrBadJWT, status: fasthttp.StatusUnauthorized, name: "authentication", desc: "client authentication failed",
		fields: []fieldError{{"authorization", "invalid client JWT", inHeader}}},

	{err: cache.ErrClientBound, status: fasthttp.StatusUnauthorized, name: "authentication", desc: "this client id, or the client holding this token, is bound to its key: a valid client JWT is required",
		fields: []fieldError{{"authorization", "required: the client registered with a JWT", inHeader}}},
	{err: cache.ErrClientNotFound, status: fasthttp.StatusNotFound, name: "client_not_found", desc: "no client is registered under this id"},
	{err: cache.ErrTenantNotFound, status: fasthttp.StatusNotFound, name: "tenant_not_found", desc: "no tenant exists under this id",
		fields: []fieldError{{"tenant_id", "unknown tenant", inPath}}},
	{err: cache.ErrDeliveryInProgress, status: fasthttp.StatusConflict, name: "delivery_in_progress", desc: "the same message is being delivered; retry later"},
	{err: cache.ErrUnavailable, status: fasthttp.StatusServiceUnavailable, name: "store_unavailable", desc: "the client store is unavailable"},

	{err: dispatch.ErrTokenDead, status: fasthttp.StatusGone, name: "client_deleted", desc: "the provider rejected the device token; the client was removed"},
	{err: dispatch.ErrPayloadTooLarge, status: fasthttp.StatusRequestEntityTooLarge, name: "payload_too_large", desc: "the notification exceeds the provider's 4096-byte limit"},
	{err: dispatch.ErrMisconfigured, status: fasthttp.StatusBadGateway, name: "provider_misconfigured", desc: "the provider rejected this server's credentials"},
	{err: dispatch.ErrUnavailable, status: fasthttp.StatusBadGateway, name: "provider_unavailable", desc: "the provider did not accept the notification"},
	{err: dispatch.ErrProviderNotAvailable, status: fasthttp.StatusBadGateway, name: "provider_not_available", desc: "the client's provider is not configured on this server"},
	{err: dispatch.ErrTokenURINotAllowed, status: fasthttp.StatusBadRequest, name: "bad_fcm_v1_credentials", desc: "the service account's token_uri is not a token endpoint this gateway may contact",
		fields: []fieldError{{"credentials", "token_uri must be Google's https://oauth2.googleapis.com/token (or one the operator allows in TENANT_FCM_TOKEN_URIS)", inBody}}},

	// The router's own refusals. An empty desc is the request's to give.
	{err: errNotFound, status: fasthttp.StatusNotFound, name: "not_found", desc: "no such route"},
	{err: errMethodNotAllowed, status: fasthttp.StatusMethodNotAllowed, name: "method_not_allowed", desc: "the route does not accept this method"},
	{err: errInternal, status: fasthttp.StatusInternalServerError, name: "internal_error", desc: "the server failed to handle the request", quiet: true},
	{err: errSendsOverloaded, status: fasthttp.StatusServiceUnavailable, name: "overloaded", desc: "too many sends in flight; retry after the Retry-After delay", quiet: true},
	// A connection past MAX_CONNS or MAX_CONNS_PER_IP, refused before any
	// request is read (connLimitListener).
	{err: errConnsOverloaded, status: fasthttp.StatusServiceUnavailable, name: "overloaded", desc: "too many connections open; retry after the Retry-After delay", quiet: true},
	{err: errConnsFromPeer, status: fasthttp.StatusTooManyRequests, name: "rate_limited", desc: "too many connections from this address; retry after the Retry-After delay"},
	{err: errRateLimited, status: fasthttp.StatusTooManyRequests, name: "rate_limited"},
	{err: errShuttingDown, status: fasthttp.StatusServiceUnavailable, name: "shutting_down", desc: "this instance is shutting down; route requests to another one", quiet: true},
	{err: errBodyTooLarge, status: fasthttp.StatusRequestEntityTooLarge, name: "request_too_large"},
	{err: errHeadersTooLarge, status: fasthttp.StatusRequestHeaderFieldsTooLarge, name: "headers_too_large", desc: "the request headers are too large"},
	{err: errRequestTimeout, status: fasthttp.StatusRequestTimeout, name: "request_timeout", desc: "the request was not received in time"},
	{err: errBadHTTP, status: fasthttp.StatusBadRequest, name: "bad_request", desc: "the request could not be parsed as HTTP/1.1"},
	{err: errUnauthenticated, status: fasthttp.StatusUnauthorized, name: "authentication"},
	{err: errProviderNotOffered, status: fasthttp.StatusBadRequest, name: "provider_not_available"},
	{err: errBadAPNSCredentials, status: fasthttp.StatusBadRequest, name: "bad_apns_credentials"},
	{err: errBadFCMCredentials, status: fasthttp.StatusBadRequest, name: "bad_fcm_v1_credentials"},
	{err: errBadWebPushCredentials, status: fasthttp.StatusBadRequest, name: "bad_webpush_credentials"},
	// GET /webpush/vapid-public-key where Web Push is not configured: the
	// route exists, the key does not (API.md, "Web Push").
	{err: errWebPushNotConfigured, status: fasthttp.StatusNotFound, name: "provider_not_available", desc: "Web Push is not configured here: there is no VAPID public key to subscribe with"},
	{err: errFCMLegacyUnsupported, status: fasthttp.StatusGone, name: "fcm_legacy_unsupported", desc: "the legacy FCM API was shut down by Google; upload a service account to /tenants/{id}/fcm_v1"},
}

// rowOf is the index of err's row in errorNames, or -1.
func rowOf(err error) int {
	for i := range errorNames {
		if errors.Is(err, errorNames[i].err) {
			return i
		}
	}
	return -1
}

// nameOf is the contract name err is answered with: its row's, or
// internal_error's when it has none.
func nameOf(err error) string {
	i := rowOf(err)
	if i < 0 {
		i = rowOf(errInternal)
	}
	return errorNames[i].name
}

// Replies that never change are built once.
var (
	okBody            = []byte(`{"status":"OK"}`)
	contentTypeJSON   = []byte("application/json")
	staticErrorBodies = staticBodies()
)

// staticBodies encodes each row's reply for when the error adds nothing to
// it. A var initialiser rather than init: connlimit.go's refusals are built
// from these during variable initialisation.
func staticBodies() (bodies [len(errorNames)][]byte) {
	for i, row := range errorNames {
		bodies[i] = mustEnvelope(envelope{
			Status: "FAILED",
			Errors: []errorEntry{{row.name, row.desc}},
			Fields: row.fields,
		})
	}
	return bodies
}

// staticError is the status and fixed reply of cause's row.
func staticError(cause error) (int, []byte) {
	i := rowOf(cause)
	if i < 0 {
		panic("BUG: no row for " + cause.Error())
	}
	return errorNames[i].status, staticErrorBodies[i]
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

// writeError is the one writer of error replies: every handler, every
// fasthttp/router hook and the connection caps end here or in errorNames.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	var re *requestError
	isRequest := errors.As(err, &re)
	if isRequest && re.cause == nil {
		writeBody(ctx, fasthttp.StatusBadRequest, mustEnvelope(envelope{Status: "FAILED", Fields: re.fields}))
		return
	}
	// Missing both signature headers: name both fields in one reply.
	if errors.Is(err, verify.ErrMissingTimestamp) && errors.Is(err, verify.ErrMissingSignature) {
		signatureFailures.Inc()
		writeBody(ctx, fasthttp.StatusUnauthorized, bothSignatureHeadersMissing)
		return
	}
	i := rowOf(err)
	if i < 0 {
		s.log.Error("unexpected error", "request_id", requestID(ctx), "route", routeOf(ctx), "error", err.Error())
		i = rowOf(errInternal)
		writeBody(ctx, errorNames[i].status, staticErrorBodies[i])
		return
	}
	row := &errorNames[i]
	countError(row.err)
	var pr *providerRefused
	refusedBefore := errors.As(err, &pr)
	switch {
	case row.status < 500 || row.quiet:
	case refusedBefore:
		// Its description cannot say why; the operator's log does.
		s.log.Warn("request failed", "request_id", requestID(ctx), "route", routeOf(ctx), "error", err.Error(), "name", row.name, "reason", pr.reason)
	default:
		s.log.Warn("request failed", "request_id", requestID(ctx), "route", routeOf(ctx), "error", err.Error(), "name", row.name)
	}
	var pe *dispatch.ProviderError
	switch {
	case isRequest:
		desc := re.desc
		if desc == "" {
			desc = row.desc
		}
		writeBody(ctx, row.status, mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{row.name, desc}}, Fields: re.fields}))
	case errors.As(err, &pe):
		// The provider's own words help the relay operator; they hold
		// no secret (status, reason, attempts).
		writeBody(ctx, row.status, mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{row.name, pe.Error()}}, Fields: row.fields}))
	case refusedBefore:
		writeBody(ctx, row.status, mustEnvelope(envelope{Status: "FAILED", Errors: []errorEntry{{row.name, pr.Error()}}, Fields: row.fields}))
	default:
		writeBody(ctx, row.status, staticErrorBodies[i])
	}
}

// bothSignatureHeadersMissing is missing_signature's row naming both headers.
var bothSignatureHeadersMissing = func() []byte {
	ts, sig := errorNames[rowOf(verify.ErrMissingTimestamp)], errorNames[rowOf(verify.ErrMissingSignature)]
	return mustEnvelope(envelope{
		Status: "FAILED",
		Errors: []errorEntry{{ts.name, ts.desc}},
		Fields: append(append([]fieldError(nil), ts.fields...), sig.fields...),
	})
}()

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
