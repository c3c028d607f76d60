package router

import (
	"context"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"push-server/cache"
	"push-server/dispatch"
)

// leaseMargin is how much longer a dedup claim lives than the send it
// guards, so that a claim is never dropped under a send still running, yet
// frees itself soon after an instance died mid-send.
const leaseMargin = 5 * time.Second

// sendDeadlineTick is how long provider hand-offs share one deadline
// context (deadline.Shared): a hand-off may run this much past
// SendTimeout, well inside leaseMargin, and the server makes one context
// and timer per tick instead of one per send.
const sendDeadlineTick = 10 * time.Millisecond

// send is POST /clients/{client_id}, the relay's call. The sequence is the
// product: verify the relay → parse → look up the client → select what is
// pushed → claim the message id → push → remember it as delivered, or
// release the claim so the relay's retry goes through.
//
// The dedup record of (tenant, client, message id) goes through these
// states (docs/redis.md, "The dedup protocol"):
//
//	claimed   Store.Reserve took it (ErrDeliveryInProgress for others;
//	          expires after the lease if this instance dies)
//	pushed    the provider accepted the push; the relay hears 202
//	marked    Store.CommitBehind wrote "delivered" (ErrAlreadyDelivered,
//	          200, for DEDUP_TTL)
//	released  the push failed: Store.Release dropped the claim, so the
//	          relay's retry is delivered
//
// While the store's primary is unreachable, localDedup (fallback.go) holds
// the same states in this instance, and its marks go to the store too.
func (s *Server) send(ctx *fasthttp.RequestCtx) error {
	body := ctx.PostBody()
	if s.cfg.ValidateSignatures {
		h := &ctx.Request.Header
		st := s.stepOf(ctx, spanVerify)
		err := s.relay.Verify(h.Peek(headerTimestamp), h.Peek(headerSignature), body)
		if st.end(err); err != nil {
			return err
		}
	}
	id, err := clientIDFromPath(ctx)
	if err != nil {
		return err
	}
	req := acquireSendRequest()
	defer releaseSendRequest(req)
	rerr := req.parse(body)
	if rerr != nil {
		return rerr
	}

	// Store calls are not tied to the connection: a send in flight when
	// shutdown begins must still finish and be recorded.
	bg := context.Background()
	sc, err := s.scopeOf(ctx)
	if err != nil {
		return err
	}
	st := s.stepOf(ctx, spanLookup)
	client, err := s.store.Lookup(bg, sc.id(), id)
	if st.end(err); err != nil {
		return err
	}
	// The notification lives in the pooled request: a provider takes it by
	// pointer, which would otherwise move it to the heap on every send.
	n := &req.out
	if *n, rerr = req.notification(client.AlwaysRaw); rerr != nil {
		return rerr
	}
	sender, err := sc.providers.Sender(client.Type)
	if err != nil {
		return err
	}
	if reason := sc.suspended(client.Type); reason != "" {
		return &providerRefused{provider: client.Type, reason: "suspended: " + reason}
	}

	st = s.stepOf(ctx, spanClaim)
	claim, err := s.store.Reserve(bg, sc.id(), id, n.MessageID, s.cfg.SendTimeout+leaseMargin)
	st.endClaim(err)
	local := ""
	switch {
	case errors.Is(err, cache.ErrAlreadyDelivered):
		dedupHits.Inc()
		writeOK(ctx, fasthttp.StatusOK)
		return nil
	case errors.Is(err, cache.ErrUnavailable):
		// The client was found (replica or cache) but the primary that
		// holds dedup marks is gone: deliver, deduplicating locally.
		local = sc.id() + "\x00" + id + "\x00" + n.MessageID
		switch lerr := s.localDedup.reserve(local, s.cfg.SendTimeout+leaseMargin); {
		case errors.Is(lerr, cache.ErrAlreadyDelivered):
			dedupHits.Inc()
			writeOK(ctx, fasthttp.StatusOK)
			return nil
		case lerr != nil:
			return lerr
		}
		dedupDegraded.Inc()
	case err != nil:
		return err
	}

	sendCtx, cancel := s.sendDeadlines.Within(bg)
	st = s.stepOf(ctx, spanPush)
	start := time.Now()
	err = sender.Send(sendCtx, client.Token, n)
	cancel()
	st.endPush(client.Type, err)
	s.sent(sc.id(), client.Type, err, start, n.MessageID)
	if err != nil {
		// Not delivered: forget the claim so that a retry is delivered.
		if local != "" {
			s.localDedup.release(local)
		} else if rerr := s.store.Release(bg, claim); rerr != nil {
			s.log.Warn("cannot release a dedup claim; the relay's retry waits for the lease to expire",
				"request_id", requestID(ctx), "error", rerr.Error())
		}
		if errors.Is(err, dispatch.ErrCredentialsRejected) {
			// Counted for the operator's own providers too; only a tenant's
			// provider host is suspended.
			credentialsRejected.inc(client.Type)
			s.suspend(ctx, &sc, client.Type, err)
		}
		if errors.Is(err, dispatch.ErrTokenDead) {
			// Remove the client only while it still holds the dead token,
			// in one step: a wallet that re-registered a fresh token
			// meanwhile keeps it.
			if removed, uerr := s.store.UnregisterIfToken(bg, sc.id(), id, client.Token); uerr != nil {
				s.log.Warn("cannot remove a client whose token is dead", "request_id", requestID(ctx), "error", uerr.Error())
			} else if removed {
				deadTokensRemoved.Inc()
			}
		}
		return err
	}
	if local != "" {
		s.localDedup.commit(local, s.cfg.DedupTTL)
		// The store gets the mark too: it keeps a mark it cannot write
		// until the primary is back and takes it, so that a retry after
		// the outage, through any instance, hears 200 rather than being
		// delivered again.
		claim = cache.Reservation{Tenant: sc.id(), ClientID: id, MessageID: n.MessageID}
	}
	if err := s.store.CommitBehind(bg, claim, s.cfg.DedupTTL); err != nil {
		// Delivered, so the relay hears success; the claim's lease still
		// blocks a duplicate for a while. The mark is written behind the
		// answer: the relay waits for one store round trip, not two.
		s.log.Warn("delivered but cannot record it for deduplication",
			"request_id", requestID(ctx), "error", err.Error())
	}
	writeOK(ctx, fasthttp.StatusAccepted)
	return nil
}

// outcomeOf names a provider hand-off's result for metrics: "delivered" or
// the contract name of its failure.
func outcomeOf(err error) string {
	if err == nil {
		return "delivered"
	}
	return nameOf(err)
}
