package router

import (
	"context"
	"fmt"

	"github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"push-server/cache"
	"push-server/dispatch"
)

// scope is whom a client route speaks for: the single tenant of the
// environment's providers (tenant ""), or one tenant of multi-tenant mode
// with its own providers.
type scope struct {
	tenant    cache.Tenant // zero in single-tenant routes
	providers *dispatch.Dispatcher
}

func (sc *scope) id() string { return sc.tenant.ID }

// scopeOf resolves {tenant_id} when the route has one: the tenant (read
// through the client-side cache) and its provider clients, built once per
// credential version and reused.
func (s *Server) scopeOf(ctx *fasthttp.RequestCtx) (scope, error) {
	id, rerr := pathParam(ctx, "tenant_id")
	if rerr != nil {
		return scope{}, rerr
	}
	if id == "" {
		return scope{providers: s.providers}, nil
	}
	if checkTenantID(id) != "" {
		return scope{}, cache.ErrTenantNotFound
	}
	t, err := s.deps.Tenants.Tenant(context.Background(), id)
	if err != nil {
		return scope{}, err
	}
	d, err := s.deps.Pool.Get(t.ID, t.Version, func() (dispatch.Config, error) { return s.tenantConfig(t) })
	if err != nil {
		// Stored credentials that no longer build are the operator's
		// problem, not the caller's: the provider is misconfigured.
		return scope{}, &dispatch.ProviderError{Provider: "tenant", Reason: err.Error(), Err: dispatch.ErrMisconfigured}
	}
	return scope{tenant: t, providers: d}, nil
}

// tenantConfig opens a tenant's sealed credentials into the settings its
// provider clients are built from.
func (s *Server) tenantConfig(t cache.Tenant) (dispatch.Config, error) {
	var c dispatch.Config
	if t.APNS != nil {
		plain, err := s.deps.Vault.Open(t.ID, t.APNS)
		if err != nil {
			return c, fmt.Errorf("cannot open tenant %s's APNs credentials: %w", t.ID, err)
		}
		var a apnsSecret
		if err := json.Unmarshal(plain, &a); err != nil {
			return c, fmt.Errorf("cannot decode tenant %s's APNs credentials: %w", t.ID, err)
		}
		c.APNSType, c.APNSTopic = a.Type, t.APNSTopic
		c.APNSCertificate, c.APNSCertificatePassword = a.Certificate, a.Password
		c.APNSPKCS8PEM, c.APNSKeyID, c.APNSTeamID = a.PKCS8PEM, a.KeyID, a.TeamID
	}
	if t.FCM != nil {
		plain, err := s.deps.Vault.Open(t.ID, t.FCM)
		if err != nil {
			return c, fmt.Errorf("cannot open tenant %s's FCM credentials: %w", t.ID, err)
		}
		c.FCMCredentials = plain
	}
	return c, nil
}

// suspended returns the reason typ's provider is suspended for the tenant,
// or "".
func (sc *scope) suspended(typ string) string {
	switch typ {
	case dispatch.TypeAPNS, dispatch.TypeAPNSSandbox:
		return sc.tenant.APNSSuspended
	case dispatch.TypeFCM:
		return sc.tenant.FCMSuspended
	}
	return ""
}

// suspend records that typ's provider rejected the tenant's credentials,
// so that later sends answer at once instead of hammering the provider.
func (s *Server) suspend(ctx *fasthttp.RequestCtx, sc *scope, typ string, cause error) {
	if sc.id() == "" || sc.suspended(typ) != "" {
		return
	}
	var change cache.TenantChange
	switch typ {
	case dispatch.TypeAPNS, dispatch.TypeAPNSSandbox:
		change.SuspendAPNS = cause.Error()
	case dispatch.TypeFCM:
		change.SuspendFCM = cause.Error()
	default:
		return
	}
	if err := s.deps.Tenants.UpdateTenant(context.Background(), sc.id(), change); err != nil {
		s.log.Warn("cannot suspend a tenant's provider", "tenant", sc.id(), "provider", typ, "request_id", requestID(ctx), "error", err.Error())
		return
	}
	s.log.Warn("tenant provider suspended: credentials rejected", "tenant", sc.id(), "provider", typ, "request_id", requestID(ctx), "reason", cause.Error())
}
