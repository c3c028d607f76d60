package router

import (
	"context"
	"errors"

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
// incarnation and credential version and reused. Sends only: registration
// has no use for provider clients (see recordScope).
func (s *Server) scopeOf(ctx *fasthttp.RequestCtx) (scope, error) {
	sc, err := s.recordScope(ctx)
	if err != nil || sc.id() == "" {
		return sc, err
	}
	t := sc.tenant
	d, err := s.deps.Pool.Get(t.ID, t.Incarnation, t.Version, func() (dispatch.Config, error) { return s.tenantConfig(t) })
	if err != nil {
		// Stored credentials that no longer build are the operator's
		// problem, not the caller's: the provider is misconfigured.
		return scope{}, &providerRefused{provider: "tenant", reason: err.Error()}
	}
	return scope{tenant: t, providers: d}, nil
}

// recordScope is scopeOf without provider clients: the tenant record only
// (providers is nil in a tenant's scope). Registrations and unregistrations
// use it, so requests cycling over many tenants build nothing and cannot
// churn the Pool; they are rate-limited before they get here, too.
//
// A tenant found gone has its provider clients dropped from this
// instance's Pool, whichever instance deleted it: they were built from
// credentials nobody may push with any more. (A tenant created again is a
// new incarnation, which Pool.Get never matches to the old clients.)
func (s *Server) recordScope(ctx *fasthttp.RequestCtx) (scope, error) {
	id, err := pathTenant(ctx)
	if err != nil {
		return scope{}, err
	}
	if id == "" {
		return scope{providers: s.providers}, nil
	}
	if checkTenantID(id) != "" {
		return scope{}, cache.ErrTenantNotFound
	}
	t, err := s.deps.Tenants.Tenant(context.Background(), id)
	if errors.Is(err, cache.ErrTenantNotFound) {
		s.deps.Pool.Remove(id)
	}
	if err != nil {
		return scope{}, err
	}
	return scope{tenant: t}, nil
}

// watchStaleTenants has the Pool close, every Config.StaleTenantSweep,
// the provider clients of tenants deleted or created again through another
// instance, which this one would otherwise keep until idle eviction
// without a request for the tenant. The reads go through the client-side
// cache, so a round over a full pool costs little. A read that fails
// keeps the clients: the tenant may well exist.
func (s *Server) watchStaleTenants() {
	s.deps.Pool.WatchStale(s.cfg.StaleTenantSweep, func(id string, incarnation uint64) bool {
		t, err := s.deps.Tenants.Tenant(context.Background(), id)
		if errors.Is(err, cache.ErrTenantNotFound) {
			return true
		}
		return err == nil && t.Incarnation != incarnation
	})
}

// pathTenant is the route's {tenant_id}, "" on single-tenant routes.
// It is percent-decoded like every path id (pathParam).
func pathTenant(ctx *fasthttp.RequestCtx) (string, error) {
	id, err := pathParam(ctx, "tenant_id")
	if err != nil {
		return "", err
	}
	return id, nil
}

// available reports whether clients of type typ may register here: for a
// tenant, whether its record holds credentials for that provider (whether
// they still build is found out by the first send).
func (sc *scope) available(typ string) bool {
	if sc.id() == "" {
		return sc.providers.Available(typ)
	}
	switch typ {
	case dispatch.TypeAPNS, dispatch.TypeAPNSSandbox:
		return sc.tenant.APNS != nil
	case dispatch.TypeFCM:
		return sc.tenant.FCM != nil
	case dispatch.TypeWebPush:
		return sc.tenant.WebPush != nil
	case dispatch.TypeNoop:
		return true
	}
	return false
}

// tenantConfig opens a tenant's sealed credentials into the settings its
// provider clients are built from.
func (s *Server) tenantConfig(t cache.Tenant) (dispatch.Config, error) {
	creds, err := s.deps.Vault.OpenCredentials(t.ID, t.APNS, t.FCM, t.APNSTopic, t.WebPush)
	return dispatch.Config{Credentials: creds}, err
}

// suspended returns the reason typ's provider host is suspended for the
// tenant, or "". Apple's two hosts are suspended apart. Web Push counts as
// one host: a 401 means the push service refused the tenant's VAPID key,
// which every push service would.
func (sc *scope) suspended(typ string) string {
	switch typ {
	case dispatch.TypeAPNS:
		return sc.tenant.APNSSuspended
	case dispatch.TypeAPNSSandbox:
		return sc.tenant.APNSSandboxSuspended
	case dispatch.TypeFCM:
		return sc.tenant.FCMSuspended
	case dispatch.TypeWebPush:
		return sc.tenant.WebPushSuspended
	}
	return ""
}

// suspend records that typ's provider host refused the tenant's
// credentials (cause is a dispatch.ErrCredentialsRejected), so that later
// sends to that host answer at once instead of hammering it. Only that
// host: a sandbox refusal, which any client can provoke by registering as
// apns-sandbox, leaves production pushes running. Only the credentials the
// send used: see the condition below.
func (s *Server) suspend(ctx *fasthttp.RequestCtx, sc *scope, typ string, cause error) {
	if sc.id() == "" || sc.suspended(typ) != "" {
		return
	}
	var change cache.TenantChange
	switch typ {
	case dispatch.TypeAPNS:
		change.SuspendAPNS = cause.Error()
	case dispatch.TypeAPNSSandbox:
		change.SuspendAPNSSandbox = cause.Error()
	case dispatch.TypeFCM:
		change.SuspendFCM = cause.Error()
	case dispatch.TypeWebPush:
		change.SuspendWebPush = cause.Error()
	default:
		return
	}
	// The send read the tenant when it started, and the refusal may come
	// up to a provider timeout later: by then the operator may have
	// uploaded new credentials or deleted and re-created the tenant, which
	// this refusal says nothing about.
	change.If = &cache.TenantCondition{Incarnation: sc.tenant.Incarnation, APNS: sc.tenant.APNS, FCM: sc.tenant.FCM, WebPush: sc.tenant.WebPush}
	err := s.deps.Tenants.UpdateTenant(context.Background(), sc.id(), change)
	if errors.Is(err, cache.ErrTenantChanged) || errors.Is(err, cache.ErrTenantNotFound) {
		s.log.Info("tenant provider not suspended: the tenant or its credentials changed since the send read them", "tenant", sc.id(), "provider", typ, "request_id", requestID(ctx), "reason", cause.Error())
		return
	}
	if err != nil {
		s.log.Warn("cannot suspend a tenant's provider", "tenant", sc.id(), "provider", typ, "request_id", requestID(ctx), "error", err.Error())
		return
	}
	s.log.Warn("tenant provider suspended: credentials rejected", "tenant", sc.id(), "provider", typ, "request_id", requestID(ctx), "reason", cause.Error())
}
