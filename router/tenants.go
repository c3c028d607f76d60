package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime/multipart"
	"strings"
	"time"

	"github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"push-server/cache"
	"push-server/dispatch"
)

// The tenants API of API.md, "Multi-tenant mode". Every route checks the
// HS256 token before anything else (including whether the tenant exists),
// and every error is the envelope.

// reservedTenantIDs would shadow the server's own routes.
var reservedTenantIDs = map[string]bool{"clients": true, "tenants": true, "health": true, "metrics": true}

// checkTenantID says why id cannot name a tenant, or "".
func checkTenantID(id string) string {
	if id == "" || len(id) > 64 {
		return "must be 1 to 64 bytes"
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "may hold only A-Z, a-z, 0-9, _ and -"
		}
	}
	if reservedTenantIDs[id] {
		return "is reserved"
	}
	return ""
}

// tenantAuth checks the tenants API token for tenant id.
func (s *Server) tenantAuth(ctx *fasthttp.RequestCtx, id string) error {
	if err := s.deps.TenantAuth.Verify(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization), id); err != nil {
		return refused(errUnauthenticated, err.Error(),
			fieldError{"authorization", "a Bearer HS256 token signed with JWT_SECRET, sub = the tenant id, exp set", inHeader})
	}
	return nil
}

// tenantFromPath authenticates the request for {tenant_id} and loads the
// tenant.
func (s *Server) tenantFromPath(ctx *fasthttp.RequestCtx) (cache.Tenant, error) {
	id, err := pathTenant(ctx)
	if err != nil {
		return cache.Tenant{}, err
	}
	if err := s.tenantAuth(ctx, id); err != nil {
		return cache.Tenant{}, err
	}
	if why := checkTenantID(id); why != "" {
		return cache.Tenant{}, badFieldAt("tenant_id", why, inPath)
	}
	return s.deps.Tenants.Tenant(context.Background(), id)
}

func badFieldAt(field, why, location string) *requestError {
	return badFields(fieldError{field, why, location})
}

// createTenant is POST /tenants {"id"}: idempotent.
func (s *Server) createTenant(ctx *fasthttp.RequestCtx) error {
	var body struct {
		ID json.RawMessage `json:"id"`
	}
	if err := decodeObject(ctx.PostBody(), &body); err != nil {
		return err
	}
	var errs []fieldError
	id, ok := jsonField{"id", body.ID}.string(&errs)
	if len(errs) > 0 {
		return badFields(errs...)
	}
	// Authentication comes first, before the id is judged, so that an
	// unauthenticated caller learns nothing; sub must equal the id asked for.
	if err := s.tenantAuth(ctx, id); err != nil {
		return err
	}
	if !ok {
		return badFields(fieldError{"id", "required", inBody})
	}
	if why := checkTenantID(id); why != "" {
		return badFields(fieldError{"id", why, inBody})
	}
	if _, err := s.deps.Tenants.CreateTenant(context.Background(), id); err != nil {
		return err
	}
	return writeJSON(ctx, fasthttp.StatusOK, map[string]string{"url": s.cfg.PublicURL + "/" + id})
}

// tenantView is GET /tenants/{id}'s body: never a secret.
type tenantView struct {
	URL              string            `json:"url"`
	EnabledProviders []string          `json:"enabled_providers"`
	APNSTopic        *string           `json:"apns_topic"`
	APNSType         *string           `json:"apns_type"`
	Suspended        bool              `json:"suspended"`
	SuspendedReason  *string           `json:"suspended_reason"`
	Suspensions      map[string]string `json:"suspensions"`
	// APNSCertificateExpiresAt is the APNs certificate's notAfter (RFC
	// 3339, UTC); null for token auth, no APNs, or a certificate uploaded
	// before expiries were kept.
	APNSCertificateExpiresAt *string `json:"apns_certificate_expires_at"`
}

func (s *Server) getTenant(ctx *fasthttp.RequestCtx) error {
	t, err := s.tenantFromPath(ctx)
	if err != nil {
		return err
	}
	v := tenantView{URL: s.cfg.PublicURL + "/" + t.ID, Suspensions: map[string]string{}}
	if t.APNS != nil {
		v.EnabledProviders = append(v.EnabledProviders, dispatch.TypeAPNS, dispatch.TypeAPNSSandbox)
		v.APNSTopic, v.APNSType = &t.APNSTopic, &t.APNSType
		if t.APNSCertificateNotAfter != 0 {
			at := time.Unix(t.APNSCertificateNotAfter, 0).UTC().Format(time.RFC3339)
			v.APNSCertificateExpiresAt = &at
		}
	}
	if t.FCM != nil {
		v.EnabledProviders = append(v.EnabledProviders, dispatch.TypeFCM)
	}
	if t.WebPush != nil {
		v.EnabledProviders = append(v.EnabledProviders, dispatch.TypeWebPush)
	}
	v.EnabledProviders = append(v.EnabledProviders, dispatch.TypeNoop)
	var reasons []string
	if t.APNSSuspended != "" {
		v.Suspensions[dispatch.TypeAPNS] = t.APNSSuspended
		reasons = append(reasons, "apns: "+t.APNSSuspended)
	}
	if t.APNSSandboxSuspended != "" {
		v.Suspensions[dispatch.TypeAPNSSandbox] = t.APNSSandboxSuspended
		reasons = append(reasons, "apns-sandbox: "+t.APNSSandboxSuspended)
	}
	if t.FCMSuspended != "" {
		v.Suspensions["fcm"] = t.FCMSuspended
		reasons = append(reasons, "fcm: "+t.FCMSuspended)
	}
	if t.WebPushSuspended != "" {
		v.Suspensions[dispatch.TypeWebPush] = t.WebPushSuspended
		reasons = append(reasons, "webpush: "+t.WebPushSuspended)
	}
	if len(reasons) > 0 {
		reason := strings.Join(reasons, "; ")
		v.Suspended, v.SuspendedReason = true, &reason
	}
	return writeJSON(ctx, fasthttp.StatusOK, v)
}

func (s *Server) deleteTenant(ctx *fasthttp.RequestCtx) error {
	id, err := pathTenant(ctx)
	if err != nil {
		return err
	}
	if err := s.tenantAuth(ctx, id); err != nil {
		return err
	}
	if why := checkTenantID(id); why != "" {
		return badFieldAt("tenant_id", why, inPath)
	}
	err = s.deps.Tenants.DeleteTenant(context.Background(), id)
	// The record goes first in DeleteTenant, so even when it failed later
	// the tenant may be gone: its provider clients go at once on this
	// instance (a send racing this rebuilds them for the old incarnation
	// at worst, which nothing matches once the tenant is gone). Other
	// instances drop theirs on their next request for the tenant
	// (recordScope).
	s.deps.Pool.Remove(id)
	s.expiry.changed()
	if err != nil {
		return err
	}
	return writeJSON(ctx, fasthttp.StatusOK, map[string]bool{"success": true})
}

// tenantUpload authenticates a credential upload, loads its tenant and
// parses the multipart body.
func (s *Server) tenantUpload(ctx *fasthttp.RequestCtx) (cache.Tenant, *multipart.Form, error) {
	t, err := s.tenantFromPath(ctx)
	if err != nil {
		return t, nil, err
	}
	form, err := ctx.MultipartForm()
	if err != nil {
		return t, nil, badFields(fieldError{"body", "want multipart/form-data: " + err.Error(), inBody})
	}
	return t, form, nil
}

// putAPNS is POST /tenants/{id}/apns: validate, seal, store.
func (s *Server) putAPNS(ctx *fasthttp.RequestCtx) error {
	t, form, err := s.tenantUpload(ctx)
	if err != nil {
		return err
	}
	topic, _ := formPart(form, dispatch.PartAPNSTopic)
	cert, hasCert := formPart(form, dispatch.PartAPNSCertificate)
	pemKey, hasKey := formPart(form, dispatch.PartAPNSPKCS8PEM)
	var creds dispatch.Credentials
	var cerr error
	var notAfter time.Time
	switch {
	case len(topic) == 0:
		return credentialsError(errBadAPNSCredentials, dispatch.PartAPNSTopic, "required: the app's bundle id")
	case hasCert == hasKey:
		return credentialsError(errBadAPNSCredentials, dispatch.PartAPNSCertificate,
			"send either apns_certificate (+ apns_certificate_password) or apns_pkcs8_pem (+ apns_key_id, apns_team_id)")
	case hasCert:
		password, _ := formPart(form, dispatch.PartAPNSCertificatePassword)
		creds = dispatch.Credentials{APNSType: dispatch.APNSTypeCertificate, APNSCertificate: cert, APNSCertificatePassword: string(password)}
		// The same checks as CheckAPNSCertificate (an expired certificate
		// is refused, naming apns_certificate), and the date to watch.
		notAfter, cerr = dispatch.APNSCertificateNotAfter(cert, string(password))
	default:
		keyID, _ := formPart(form, dispatch.PartAPNSKeyID)
		teamID, _ := formPart(form, dispatch.PartAPNSTeamID)
		creds = dispatch.Credentials{APNSType: dispatch.APNSTypeToken, APNSPKCS8PEM: pemKey, APNSKeyID: string(keyID), APNSTeamID: string(teamID)}
		cerr = dispatch.CheckAPNSKey(pemKey, string(keyID), string(teamID))
	}
	if cerr == nil {
		cerr = dispatch.CheckAPNSTopic(string(topic))
	}
	if cerr != nil {
		return credentialError(errBadAPNSCredentials, cerr)
	}
	creds.APNSTopic = string(topic)
	change := cache.TenantChange{SetAPNS: true, APNSTopic: creds.APNSTopic, APNSType: creds.APNSType, APNS: s.deps.Vault.SealAPNS(t.ID, &creds)}
	if !notAfter.IsZero() {
		change.APNSCertificateNotAfter = notAfter.Unix()
	}
	if err := s.deps.Tenants.UpdateTenant(context.Background(), t.ID, change); err != nil {
		return err
	}
	s.expiry.changed()
	s.log.Info("tenant APNs credentials set", "tenant", t.ID, "apns_type", creds.APNSType, "request_id", requestID(ctx))
	return writeJSON(ctx, fasthttp.StatusOK, map[string]bool{"success": true})
}

// putFCM is POST /tenants/{id}/fcm_v1: the service account must parse,
// its token_uri must be on the Pool's allow-list (checked before any
// request: a tenant must not make the gateway POST where it likes), and its
// key must sign a token that its token_uri accepts.
func (s *Server) putFCM(ctx *fasthttp.RequestCtx) error {
	t, form, err := s.tenantUpload(ctx)
	if err != nil {
		return err
	}
	sa, ok := formPart(form, dispatch.PartFCMCredentials)
	if !ok || len(sa) == 0 {
		return credentialsError(errBadFCMCredentials, dispatch.PartFCMCredentials, "required: the service-account JSON, as a file or text")
	}
	check, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := dispatch.CheckFCMCredentials(check, sa, s.deps.RootCAs, s.deps.Pool.TokenURIs()); err != nil {
		if errors.Is(err, dispatch.ErrTokenURINotAllowed) {
			// The error table answers it (bad_fcm_v1_credentials, the field naming token_uri); the
			// operator hears of it, as it may be a probe or a missing entry.
			s.log.Warn("tenant FCM upload refused: token_uri not allowed", "tenant", t.ID, "request_id", requestID(ctx), "error", err.Error())
			return err
		}
		return credentialError(errBadFCMCredentials, err)
	}
	change := cache.TenantChange{SetFCM: true, FCM: s.deps.Vault.SealFCM(t.ID, &dispatch.Credentials{FCMCredentials: sa})}
	if err := s.deps.Tenants.UpdateTenant(context.Background(), t.ID, change); err != nil {
		return err
	}
	s.log.Info("tenant FCM credentials set", "tenant", t.ID, "request_id", requestID(ctx))
	return writeJSON(ctx, fasthttp.StatusOK, map[string]bool{"success": true})
}

// putWebPush is POST /tenants/{id}/webpush: a VAPID private key and
// subject, as JSON or multipart, checked (the key is a P-256 scalar, the
// subject a mailto: or https: URL), sealed and stored with the public key
// derived from it, which GET /{id}/webpush/vapid-public-key serves.
func (s *Server) putWebPush(ctx *fasthttp.RequestCtx) error {
	t, err := s.tenantFromPath(ctx)
	if err != nil {
		return err
	}
	var key, subject string
	if bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("multipart/form-data")) {
		form, err := ctx.MultipartForm()
		if err != nil {
			return badFields(fieldError{"body", "want JSON or multipart/form-data: " + err.Error(), inBody})
		}
		k, _ := formPart(form, dispatch.PartVAPIDPrivateKey)
		sub, _ := formPart(form, dispatch.PartVAPIDSubject)
		key, subject = string(k), string(sub)
	} else {
		var body struct {
			Key     json.RawMessage `json:"vapid_private_key"`
			Subject json.RawMessage `json:"vapid_subject"`
		}
		if err := decodeObject(ctx.PostBody(), &body); err != nil {
			return err
		}
		var errs []fieldError
		key, _ = jsonField{dispatch.PartVAPIDPrivateKey, body.Key}.string(&errs)
		subject, _ = jsonField{dispatch.PartVAPIDSubject, body.Subject}.string(&errs)
		if len(errs) > 0 {
			return badFields(errs...)
		}
	}
	key, subject = strings.TrimSpace(key), strings.TrimSpace(subject)
	public, err := dispatch.CheckVAPID(key, subject)
	if err != nil {
		return credentialError(errBadWebPushCredentials, err)
	}
	creds := dispatch.Credentials{VAPIDPrivateKey: key, VAPIDSubject: subject}
	change := cache.TenantChange{SetWebPush: true, WebPush: s.deps.Vault.SealWebPush(t.ID, &creds), WebPushPublicKey: public}
	if err := s.deps.Tenants.UpdateTenant(context.Background(), t.ID, change); err != nil {
		return err
	}
	s.log.Info("tenant Web Push credentials set", "tenant", t.ID, "vapid_public_key", public, "request_id", requestID(ctx))
	return writeJSON(ctx, fasthttp.StatusOK, map[string]bool{"success": true})
}

// vapidPublicKey is GET /webpush/vapid-public-key and GET
// /{tenant_id}/webpush/vapid-public-key: the applicationServerKey a web
// wallet subscribes with. It is public (no authentication): a wallet's
// service worker fetches it before it can register. The operator's comes
// from its providers, a tenant's from its record, stored in the clear
// beside the sealed key, so neither opens anything. It is not
// rate-limited: it costs one tenant read through the client-side cache,
// which is what the limiter's own count would cost, and wallets behind one
// address would share the register limits with it.
func (s *Server) vapidPublicKey(ctx *fasthttp.RequestCtx) error {
	sc, err := s.recordScope(ctx)
	if err != nil {
		return err
	}
	key := sc.tenant.WebPushPublicKey
	if sc.id() == "" {
		key = sc.providers.VAPIDPublicKey()
	}
	if key == "" {
		return errWebPushNotConfigured
	}
	return writeJSON(ctx, fasthttp.StatusOK, map[string]string{"vapid_public_key": key})
}

// legacyFCM is POST /tenants/{id}/fcm: Google shut the legacy API down.
func (s *Server) legacyFCM(ctx *fasthttp.RequestCtx) error {
	if _, err := s.tenantFromPath(ctx); err != nil {
		return err
	}
	return errFCMLegacyUnsupported
}

// clearProvider is DELETE /tenants/{id}/apns, /fcm_v1 and /webpush: 204.
// change clears the one provider.
func (s *Server) clearProvider(change cache.TenantChange) func(ctx *fasthttp.RequestCtx) error {
	return func(ctx *fasthttp.RequestCtx) error {
		t, err := s.tenantFromPath(ctx)
		if err != nil {
			return err
		}
		if err := s.deps.Tenants.UpdateTenant(context.Background(), t.ID, change); err != nil {
			return err
		}
		if change.ClearAPNS {
			s.expiry.changed()
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	}
}

// formPart reads a multipart part sent as a file or as a text value.
func formPart(form *multipart.Form, name string) ([]byte, bool) {
	if files := form.File[name]; len(files) > 0 {
		f, err := files[0].Open()
		if err != nil {
			return nil, false
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 1<<20))
		return b, err == nil
	}
	if vals := form.Value[name]; len(vals) > 0 {
		return []byte(vals[0]), true
	}
	return nil, false
}

// credentialsError is the 400 of cause (errBadAPNSCredentials,
// errBadFCMCredentials or errBadWebPushCredentials) naming the part at
// fault.
func credentialsError(cause error, part, why string) *requestError {
	return refused(cause, part+": "+why, fieldError{part, why, inBody})
}

// credentialError turns a dispatch check's error into the 400 naming the
// part; the check's words never hold secret material.
func credentialError(cause, err error) *requestError {
	var ce *dispatch.CredentialError
	if errors.As(err, &ce) {
		return credentialsError(cause, ce.Part, ce.Err.Error())
	}
	return credentialsError(cause, "body", err.Error())
}

// writeJSON answers v as JSON with status (the tenants API's success
// bodies, which are the reference server's, not the envelope).
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeBody(ctx, status, b)
	return nil
}
