package dispatch

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sideshow/apns2/token"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// Parts of a tenant's credential upload, the names CredentialError.Part
// takes for the Check functions. They are the multipart field names of
// POST /tenants/{id}/apns and POST /tenants/{id}/fcm_v1, so the router can
// put Part in the error's fields as it is.
const (
	PartAPNSCertificate         = "apns_certificate"
	PartAPNSCertificatePassword = "apns_certificate_password"
	PartAPNSPKCS8PEM            = "apns_pkcs8_pem"
	PartAPNSKeyID               = "apns_key_id"
	PartAPNSTeamID              = "apns_team_id"
	PartAPNSTopic               = "apns_topic"
	PartFCMCredentials          = "credentials"
	PartVAPIDPrivateKey         = "vapid_private_key"
	PartVAPIDSubject            = "vapid_subject"
)

// Credentials are the settings that say who the gateway is to the
// providers: what a tenant uploads, and what single-tenant mode reads from
// the environment. A Pool builds a tenant's Dispatcher from these and
// nothing else, and the Vault seals them for storage (SealAPNS, SealFCM, SealWebPush),
// so a field added here reaches tenants without further wiring.
//
// The JSON tags are the stored form of a tenant's sealed APNs blob: blobs
// sealed since the first multi-tenant release use these names, so they
// must not change. Fields tagged "-" are stored elsewhere: the topic in
// the clear beside the blob (the tenants API shows it), FCM's service
// account in a blob of its own.
type Credentials struct {
	APNSType                string `json:"type"`                  // APNS_TYPE: "", "certificate" or "token" (lowercased by main)
	APNSTopic               string `json:"-"`                     // APNS_TOPIC
	APNSCertificate         []byte `json:"certificate,omitempty"` // APNS_CERTIFICATE, base64-decoded .p12
	APNSCertificatePassword string `json:"password,omitempty"`    // APNS_CERTIFICATE_PASSWORD
	APNSPKCS8PEM            []byte `json:"pkcs8_pem,omitempty"`   // APNS_PKCS8_PEM, PEM text (main decodes a base64 form)
	APNSKeyID               string `json:"key_id,omitempty"`      // APNS_KEY_ID
	APNSTeamID              string `json:"team_id,omitempty"`     // APNS_TEAM_ID
	FCMCredentials          []byte `json:"-"`                     // FCM_V1_CREDENTIALS, service-account JSON
	// VAPIDPrivateKey (VAPID_PRIVATE_KEY) is the base64url of the 32-byte
	// P-256 scalar that signs Web Push's VAPID JWTs; with VAPIDSubject
	// (VAPID_SUBJECT, a mailto: or https: URL) it enables "webpush". Both
	// are sealed in a blob of their own (Vault.SealWebPush).
	VAPIDPrivateKey string `json:"-"`
	VAPIDSubject    string `json:"-"`
}

// uploadNames names the inputs of a tenant's credential upload.
var uploadNames = &partNames{
	cert: PartAPNSCertificate, password: PartAPNSCertificatePassword, pem: PartAPNSPKCS8PEM,
	keyID: PartAPNSKeyID, teamID: PartAPNSTeamID, topic: PartAPNSTopic, fcm: PartFCMCredentials,
	vapidKey: PartVAPIDPrivateKey, vapidSubject: PartVAPIDSubject,
}

// CredentialError says which input of a credential set is bad and why. The
// Check functions name a multipart part (the Part constants); Parse
// names an environment variable. Err never holds secret material.
type CredentialError struct {
	Part string
	Err  error
}

func (e *CredentialError) Error() string { return e.Part + ": " + e.Err.Error() }

func (e *CredentialError) Unwrap() error { return e.Err }

// CheckAPNSCertificate checks an uploaded APNs .p12 (binary, or standard
// base64 of it): it must open with password and hold a certificate and its
// matching, unexpired key. A wrong password is blamed on
// PartAPNSCertificatePassword, anything else on PartAPNSCertificate. It is
// the check New applies, so what passes here builds.
func CheckAPNSCertificate(p12 []byte, password string) error {
	_, err := parseP12(p12, password, uploadNames)
	return err
}

// APNSCertificateNotAfter checks a .p12 as CheckAPNSCertificate does (p12
// is binary or standard base64; errors name the upload's parts) and returns
// when its certificate expires, its notAfter: the date the gateway watches
// and warns about.
func APNSCertificateNotAfter(p12 []byte, password string) (time.Time, error) {
	cert, err := parseP12(p12, password, uploadNames)
	if err != nil {
		return time.Time{}, err
	}
	return cert.Leaf.NotAfter, nil
}

// CheckAPNSKey checks an uploaded .p8 key (PEM text, or standard base64 of
// the PEM or of the DER bytes) with its key id and team id: the key must be
// a P-256 PKCS#8 key that signs a provider token, and both ids must be
// given. Whether Apple trusts the key is only known at the first push.
func CheckAPNSKey(pemOrBase64 []byte, keyID, teamID string) error {
	key, err := parseAPNSKey(pemOrBase64, uploadNames)
	if err != nil {
		return err
	}
	if err := checkAppleID(PartAPNSKeyID, keyID); err != nil {
		return err
	}
	if err := checkAppleID(PartAPNSTeamID, teamID); err != nil {
		return err
	}
	tok := &token.Token{AuthKey: key, KeyID: keyID, TeamID: teamID}
	if _, err := tok.Generate(); err != nil {
		return credErr(PartAPNSPKCS8PEM, "cannot sign a provider token: %w", err)
	}
	return nil
}

// checkAppleID accepts a key or team id: Apple's are 10 letters and
// digits. Only the alphabet is enforced, so a pasted space, quote or line
// break is caught here rather than as InvalidProviderToken at every push.
func checkAppleID(part, id string) error {
	if id == "" {
		return credErr(part, "required")
	}
	if len(id) > 64 {
		return credErr(part, "want Apple's 10-character id, got %d characters", len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return credErr(part, "want letters and digits only, like Apple's 10-character ids")
		}
	}
	return nil
}

// CheckAPNSTopic checks a tenant's APNs topic: the app's bundle id,
// possibly with a suffix such as ".voip". It goes into the apns-topic
// header of every push, so it must be printable ASCII without spaces.
func CheckAPNSTopic(topic string) error {
	if topic == "" {
		return credErr(PartAPNSTopic, "required")
	}
	if len(topic) > 255 {
		return credErr(PartAPNSTopic, "want a bundle id, got %d bytes", len(topic))
	}
	for i := 0; i < len(topic); i++ {
		if c := topic[i]; c <= ' ' || c >= 0x7f {
			return credErr(PartAPNSTopic, "want a bundle id such as com.example.wallet, without spaces or control characters")
		}
	}
	return nil
}

// maxTokenErrorText bounds how much of the token endpoint's explanation is
// put in a CredentialError: the text goes back to the tenant.
const maxTokenErrorText = 200

// CheckFCMCredentials checks an uploaded service-account JSON and returns
// its project id. Beyond parsing it, it proves the key: it signs a JWT
// grant and fetches one access token from the JSON's token_uri, as every
// push would, within ctx (DefaultTimeout when ctx has no deadline). rootCAs
// replaces the system roots for that request (nil = system).
//
// Every failure is a *CredentialError for PartFCMCredentials. When the
// endpoint refused the grant, Err carries its reason (e.g. invalid_grant:
// invalid JWT signature). When it could not say (unreachable, no answer
// before ctx ended, 429 or 5xx), Err also wraps ErrUnavailable: the key may
// be fine, so the router may answer 502 and let the tenant try again.
//
// The request goes to the URL the tenant wrote in token_uri (as every
// push's token fetch does later), and only when allowed lists it (nil
// means GoogleTokenURIs; pass the Pool's TokenURIs, the list its pushes
// use). A token_uri off the list is refused before any request, with an
// Err wrapping ErrTokenURINotAllowed; a redirect off the list is not
// followed. Only the endpoint's OAuth error code and description are
// reported back.
func CheckFCMCredentials(ctx context.Context, serviceAccountJSON []byte, rootCAs *x509.CertPool, allowed *TokenURIs) (projectID string, err error) {
	sa, err := parseServiceAccount(serviceAccountJSON, uploadNames)
	if err != nil {
		return "", err
	}
	jc, err := google.JWTConfigFromJSON(serviceAccountJSON, fcmScope)
	if err != nil {
		return "", credErr(PartFCMCredentials, "%w", err)
	}
	if allowed == nil {
		allowed = googleOnly
	}
	// jc.TokenURL is what the fetch below and every push would POST to
	// (Google's when token_uri is empty), so it is what is judged.
	if err := allowed.Check(jc.TokenURL); err != nil {
		return "", &CredentialError{Part: PartFCMCredentials, Err: err}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	// Through the egress proxy, as the pushes will go.
	tr := newFCMTransport(rootCAs, ProxyFromEnvironment())
	defer tr.CloseIdleConnections()
	// oauth2's JWT source posts without a context, so the transport puts
	// ctx on each request (redirects included) to bound the fetch. It also
	// flattens the client's error to text, so the guard remembers a refused
	// redirect.
	guard := &redirectGuard{allowed: allowed, next: &contextTransport{ctx: ctx, next: tr}}
	hc := &http.Client{Transport: guard, CheckRedirect: guard.checkRedirect}
	tok, err := jc.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc)).Token()
	if rerr := guard.refusedRedirect(); rerr != nil {
		return "", &CredentialError{Part: PartFCMCredentials, Err: fmt.Errorf("token_uri %s redirected: %w", jc.TokenURL, rerr)}
	}
	if err != nil {
		return "", tokenError(ctx, jc.TokenURL, err)
	}
	if tok.AccessToken == "" {
		return "", credErr(PartFCMCredentials, "token_uri %s answered without an access token", jc.TokenURL)
	}
	return sa.ProjectID, nil
}

// tokenError turns a failed token fetch into the CredentialError of
// CheckFCMCredentials.
func tokenError(ctx context.Context, tokenURL string, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		if ctx.Err() != nil {
			return credErr(PartFCMCredentials, "no answer from token_uri %s in time: %w", tokenURL, ErrUnavailable)
		}
		return credErr(PartFCMCredentials, "cannot get an access token from token_uri %s (%v): %w", tokenURL, err, ErrUnavailable)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	// oauth2's JWT source leaves ErrorCode empty: read RFC 6749's error
	// body ourselves.
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(re.Body, &body)
	reason := body.Error
	if body.Description != "" {
		reason += ": " + body.Description
	}
	reason = strings.TrimSpace(truncate(reason, maxTokenErrorText))
	if status == http.StatusTooManyRequests || status >= 500 {
		return credErr(PartFCMCredentials, "token_uri %s answered %d %s: %w", tokenURL, status, reason, ErrUnavailable)
	}
	if reason == "" {
		reason = "no reason given"
	}
	return credErr(PartFCMCredentials, "token_uri %s refused the service account's key (%d): %s", tokenURL, status, reason)
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// contextTransport sends each request with ctx, for clients that build
// their requests without one.
type contextTransport struct {
	ctx  context.Context
	next http.RoundTripper
}

func (t *contextTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.next.RoundTrip(req.WithContext(t.ctx))
}
