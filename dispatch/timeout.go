package dispatch

import (
	"context"
	"time"
)

// noCancel is the CancelFunc of a context withTimeout did not derive.
func noCancel() {}

// withTimeout bounds ctx by timeout, like context.WithTimeout, unless ctx
// already ends within it: then it returns ctx itself. The router hands every
// push a context that ends within PROVIDER_TIMEOUT (one shared deadline for
// all the sends of a few milliseconds), so a timer context of a sender's own
// would only cost a runtime timer and four allocations a push; a caller
// without such a deadline (a test, the router of a future version) still
// gets the bound.
func withTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= timeout {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, timeout)
}
