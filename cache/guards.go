package cache

// Compile-time guards: main hands a store to router as a Limiter and, in
// multi-tenant mode, as Tenants through type assertions on a Store. A
// store that stopped implementing one (a renamed method, a changed
// signature) would pass those assertions' "ok" branch silently: rate
// limiting would turn off, or multi-tenant mode would refuse to start.
// These lines make that a build failure instead.
var (
	_ Limiter = (*Redis)(nil)
	_ Limiter = (*Embedded)(nil)
	_ Tenants = (*Redis)(nil)
	_ Tenants = (*Embedded)(nil)
)
