package router

import (
	"testing"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/verify"
)

// TestErrorNamesArePinned pins the error table: names are API (clients
// switch on them), so a change here must be deliberate.
func TestErrorNamesArePinned(t *testing.T) {
	want := []struct {
		err    error
		status int
		name   string
	}{
		{verify.ErrMissingTimestamp, 401, "missing_signature"},
		{verify.ErrMissingSignature, 401, "missing_signature"},
		{verify.ErrMalformedTimestamp, 401, "invalid_signature"},
		{verify.ErrStaleTimestamp, 401, "invalid_signature"},
		{verify.ErrMalformedSignature, 401, "invalid_signature"},
		{verify.ErrBadSignature, 401, "invalid_signature"},
		{verify.ErrBadJWT, 401, "authentication"},
		{cache.ErrClientBound, 401, "authentication"},
		{cache.ErrClientNotFound, 404, "client_not_found"},
		{cache.ErrTenantNotFound, 404, "tenant_not_found"},
		{cache.ErrDeliveryInProgress, 409, "delivery_in_progress"},
		{cache.ErrUnavailable, 503, "store_unavailable"},
		{dispatch.ErrTokenDead, 410, "client_deleted"},
		{dispatch.ErrPayloadTooLarge, 413, "payload_too_large"},
		{dispatch.ErrMisconfigured, 502, "provider_misconfigured"},
		{dispatch.ErrUnavailable, 502, "provider_unavailable"},
		{dispatch.ErrProviderNotAvailable, 502, "provider_not_available"},
		{dispatch.ErrTokenURINotAllowed, 400, "bad_fcm_v1_credentials"},
		{errNotFound, 404, "not_found"},
		{errMethodNotAllowed, 405, "method_not_allowed"},
		{errInternal, 500, "internal_error"},
		{errSendsOverloaded, 503, "overloaded"},
		{errConnsOverloaded, 503, "overloaded"},
		{errConnsFromPeer, 429, "rate_limited"},
		{errRateLimited, 429, "rate_limited"},
		{errShuttingDown, 503, "shutting_down"},
		{errBodyTooLarge, 413, "request_too_large"},
		{errHeadersTooLarge, 431, "headers_too_large"},
		{errRequestTimeout, 408, "request_timeout"},
		{errBadHTTP, 400, "bad_request"},
		{errUnauthenticated, 401, "authentication"},
		{errProviderNotOffered, 400, "provider_not_available"},
		{errBadAPNSCredentials, 400, "bad_apns_credentials"},
		{errBadFCMCredentials, 400, "bad_fcm_v1_credentials"},
		{errFCMLegacyUnsupported, 410, "fcm_legacy_unsupported"},
	}
	if len(want) != len(errorNames) {
		t.Fatalf("errorNames has %d rows; the pinned list has %d", len(errorNames), len(want))
	}
	for i, w := range want {
		row := errorNames[i]
		if row.err != w.err || row.status != w.status || row.name != w.name {
			t.Errorf("row %d = %v %d %q; want %v %d %q", i, row.err, row.status, row.name, w.err, w.status, w.name)
		}
	}
}
