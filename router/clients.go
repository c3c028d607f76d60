package router

import (
	"context"
	"strings"
	"unicode"

	"github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"push-server/cache"
	"push-server/dispatch"
)

// registerBody is POST /clients's body before type checks.
type registerBody struct {
	ClientID  json.RawMessage `json:"client_id"`
	Type      json.RawMessage `json:"type"`
	Token     json.RawMessage `json:"token"`
	AlwaysRaw json.RawMessage `json:"always_raw"`
}

// maxTokenSize bounds device tokens (API.md).
const maxTokenSize = 4096

// knownTypes are the provider types a client may register with.
var knownTypes = map[string]bool{cache.TypeAPNS: true, cache.TypeAPNSSandbox: true, cache.TypeFCM: true, cache.TypeNoop: true, cache.TypeWebPush: true}

// register is POST /clients: validate every field, authenticate the client
// when a JWT is given (or required), check the provider, store durably.
func (s *Server) register(ctx *fasthttp.RequestCtx) error {
	c, perr := parseRegister(ctx.PostBody(), s.cfg.WebPushAllowedOrigins)
	if perr != nil {
		return perr
	}
	proved, err := s.authorize(ctx, c.ID)
	if err != nil {
		return err
	}
	// A registration that proves the key binds the id to it (README).
	c.Bound = proved
	tenant, err := pathTenant(ctx)
	if err != nil {
		return err
	}
	if err := s.rateLimit(ctx, tenant, c.ID); err != nil {
		return err
	}
	sc, err := s.recordScope(ctx)
	if err != nil {
		return err
	}
	if !sc.available(c.Type) {
		return refused(errProviderNotOffered, "provider "+c.Type+" is not configured on this server",
			fieldError{"type", c.Type + " is not configured on this server", inBody})
	}
	if err := s.store.Register(context.Background(), sc.id(), c); err != nil {
		return err
	}
	writeOK(ctx, fasthttp.StatusOK)
	return nil
}

// parseRegister type-checks the body and reports every bad field at once.
// webpush is the allow-list a webpush subscription's endpoint is held to
// (nil: the browsers' push services only).
func parseRegister(body []byte, webpush *dispatch.WebPushOrigins) (cache.Client, error) {
	var raw registerBody
	if err := decodeObject(body, &raw); err != nil {
		return cache.Client{}, err
	}
	var c cache.Client
	var errs []fieldError
	idField, typeField, tokenField := jsonField{"client_id", raw.ClientID}, jsonField{"type", raw.Type}, jsonField{"token", raw.Token}
	id, ok := idField.string(&errs)
	if ok {
		c.ID = strings.TrimPrefix(id, didKeyPrefix)
		if why := checkClientID(c.ID); why != "" {
			errs = append(errs, fieldError{"client_id", why, inBody})
		}
	} else if !idField.present() {
		errs = append(errs, fieldError{"client_id", "required", inBody})
	}
	typ, ok := typeField.string(&errs)
	if ok {
		c.Type = strings.ToLower(typ)
		if !knownTypes[c.Type] {
			errs = append(errs, fieldError{"type", "must be one of apns, apns-sandbox, fcm, noop, webpush", inBody})
		}
	} else if !typeField.present() {
		errs = append(errs, fieldError{"type", "required", inBody})
	}
	token, ok := tokenField.string(&errs)
	switch {
	case ok && token == "":
		errs = append(errs, fieldError{"token", "must not be empty", inBody})
	case ok && len(token) > maxTokenSize:
		errs = append(errs, fieldError{"token", "must be at most 4096 bytes", inBody})
	case ok:
		if why := checkText(token); why != "" {
			errs = append(errs, fieldError{"token", why, inBody})
		} else if why := checkToken(c.Type, token, webpush); why != "" {
			errs = append(errs, fieldError{"token", why, inBody})
		}
		c.Token = token
	case !tokenField.present():
		errs = append(errs, fieldError{"token", "required", inBody})
	}
	c.AlwaysRaw, _ = jsonField{"always_raw", raw.AlwaysRaw}.bool(&errs)
	if len(errs) > 0 {
		return cache.Client{}, badFields(errs...)
	}
	return c, nil
}

// checkToken refuses a token that could change the provider request it is
// put into, for the providers whose alphabet is known. APNs puts the token in
// the request path (/3/device/<token>), so a '/', '?', '#' or '%' would
// change the path, add a query or cut it short; whitespace and control
// characters are no part of any hex token either. FCM's registration tokens
// are URL-safe base64 with ':' between the instance id and the rest (and
// '.' seen in some), so anything else is not an FCM token. Dispatch escapes
// the token as well, for tokens stored before this check existed. A
// webpush token is a PushSubscription whose endpoint is where the gateway
// will POST: it must be on the allow-list, checked here so that a refused
// one is never stored (the sender checks again before each request).
func checkToken(typ, token string, webpush *dispatch.WebPushOrigins) string {
	switch typ {
	case cache.TypeAPNS, cache.TypeAPNSSandbox:
		for _, r := range token {
			if strings.ContainsRune("/?#%", r) || unicode.IsSpace(r) || unicode.IsControl(r) {
				return "an APNs device token must not contain '/', '?', '#', '%', whitespace or control characters"
			}
		}
	case cache.TypeFCM:
		for i := 0; i < len(token); i++ {
			if !fcmTokenByte(token[i]) {
				return "an FCM registration token has only letters, digits, '-', '_', ':' and '.'"
			}
		}
	case cache.TypeWebPush:
		// Its words never quote the endpoint's path or the keys; the
		// sentinels' package prefixes say nothing to a wallet developer.
		if err := dispatch.CheckWebPushSubscription(token, webpush); err != nil {
			why := strings.TrimSuffix(err.Error(), ": "+dispatch.ErrBadSubscription.Error())
			return "not a usable PushSubscription: " + strings.ReplaceAll(why, "dispatch: ", "")
		}
	}
	return ""
}

func fcmTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == '.'
}

// unregister is DELETE /clients/{client_id}; idempotent.
func (s *Server) unregister(ctx *fasthttp.RequestCtx) error {
	id, err := clientIDFromPath(ctx)
	if err != nil {
		return err
	}
	proved, err := s.authorize(ctx, id)
	if err != nil {
		return err
	}
	tenant, err := pathTenant(ctx)
	if err != nil {
		return err
	}
	if err := s.rateLimit(ctx, tenant, id); err != nil {
		return err
	}
	sc, err := s.recordScope(ctx)
	if err != nil {
		return err
	}
	if err := s.store.Unregister(context.Background(), sc.id(), id, proved); err != nil {
		return err
	}
	writeOK(ctx, fasthttp.StatusOK)
	return nil
}

// authorize checks the client JWT of API.md when one is sent, or when
// REQUIRE_CLIENT_AUTH makes it mandatory: it must be valid and prove id.
// proved reports that a valid JWT for id was sent.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, id string) (proved bool, err error) {
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(h) == 0 {
		if s.cfg.RequireClientAuth {
			return false, authError("a client JWT is required (REQUIRE_CLIENT_AUTH)", "required")
		}
		return false, nil
	}
	iss, err := s.clientAuth.Verify(h)
	if err != nil {
		return false, authError(err.Error(), "invalid client JWT")
	}
	if iss != id {
		return false, authError("the JWT's issuer is another client id", "issued for another client id")
	}
	return true, nil
}

func authError(desc, field string) *requestError {
	return refused(errUnauthenticated, desc, fieldError{"authorization", field, inHeader})
}
