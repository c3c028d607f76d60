// Package verify authenticates the callers of push-server.
//
// Three kinds of caller prove who they are, each with its own type:
//
//   - the relay signs every send with Ed25519 over "{timestamp}.{len(body)}.{body}"
//     (X-Ed25519-Timestamp and X-Ed25519-Signature headers): [Relay];
//   - a wallet client sends an EdDSA JWT whose issuer is the did:key of its own
//     Ed25519 key (Authorization header): [ClientAuth];
//   - an operator of the multi-tenant API sends an HS256 JWT signed with
//     JWT_SECRET whose subject is the tenant id: [TenantAuth].
//
// Everything here is a pure function of bytes and an injected clock. verify is a
// leaf: it imports only the standard library, and it says what went wrong with
// sentinel errors; the router decides which HTTP status and contract name each
// one becomes.
package verify
