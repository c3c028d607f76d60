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
		{errBadWebPushCredentials, 400, "bad_webpush_credentials"},
		{errWebPushNotConfigured, 404, "provider_not_available"},
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

// TestProviderRefusedReadsAsBefore: a send refused before its provider was
// asked (suspended provider, stored credentials that do not build) answers
// provider_misconfigured with the description it had when the router built
// a dispatch.ProviderError for it.
func TestProviderRefusedReadsAsBefore(t *testing.T) {
	for _, provider := range []string{"tenant", "apns", "fcm"} {
		was := &dispatch.ProviderError{Provider: provider, Reason: "suspended: InvalidProviderToken", Err: dispatch.ErrMisconfigured}
		now := &providerRefused{provider: provider, reason: "suspended: InvalidProviderToken"}
		if now.Error() != was.Error() {
			t.Errorf("%s: description %q; it was %q", provider, now.Error(), was.Error())
		}
		if errorNames[rowOf(now)].name != "provider_misconfigured" || outcomeOf(now) != "provider_misconfigured" {
			t.Errorf("%s: answered %s (metrics: %s); want provider_misconfigured", provider, errorNames[rowOf(now)].name, outcomeOf(now))
		}
	}
}
