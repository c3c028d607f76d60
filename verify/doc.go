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
// leaf: it imports no other package of push-server, and it says what went wrong
// with sentinel errors; the router decides which HTTP status and contract name
// each one becomes. Its one dependency outside the standard library is
// github.com/oasisprotocol/curve25519-voi, for the relay check (see batch.go
// for why).
//
// # Which relay signatures are accepted
//
// The relay check is Ed25519 (RFC 8032) with the cofactored verification
// equation, which RFC 8032 and FIPS 186-5 both allow. In plain words, a
// signature is accepted when:
//
//   - its second half, S, is a number below the Ed25519 group order (so a
//     signature cannot be altered into a second valid one);
//   - its first half, R, is the standard (canonical) encoding of a point on
//     the curve;
//   - the equation [8]([S]B - [k]A - R) = 0 holds, where B is the curve's base
//     point, A the relay key and k = SHA-512(R || A || message).
//
// Every signature is judged by this one rule, whether it is checked alone or
// in a batch with others that arrived at the same moment. A batch that fails
// is searched by halves for its bad signatures; each one it rejects has been
// tested with its own equation, and what it accepts is confirmed by a random
// batch equation (batch.go), so a request never passes or fails because of
// its neighbours (but for the chance, about 2^-128, that a random batch
// equation accepts a bad signature, which all batch verification has).
//
// The relay key itself is checked once, by [NewRelay]: it must be the
// canonical encoding of a point in the prime-order subgroup, as every key made
// by Ed25519 key generation is. Small-order keys (under which crypto/ed25519
// accepts signatures that anyone can make), mixed-order keys and
// non-canonical encodings are refused at start-up.
//
// # How this differs from crypto/ed25519
//
// Go's crypto/ed25519 uses the cofactorless equation, [S]B - [k]A = R
// compared byte for byte. For the keys NewRelay accepts, both agree on every
// signature except one kind: a signature whose R has a small-order component
// other than the identity (R is one of the 7 non-trivial points of order 2, 4
// or 8, or such a point added to an ordinary R). The relay accepts such a
// signature when it is otherwise correct; crypto/ed25519 rejects it. Making
// one requires the relay's private key (S still has to satisfy the equation
// for the relay key), so this lets no one else forge anything: it only means
// that a relay holding the key could produce signatures that this server
// accepts and crypto/ed25519 would not. Ordinary signers (crypto/ed25519,
// libsodium, the relay itself) never produce them.
//
// The two agree, by rejecting, on: S at or above the group order,
// non-canonical encodings of R (including the non-canonical encodings of
// small-order points), R not on the curve, and of course wrong signatures.
// They also agree on an R that is exactly the identity point. The table in
// edge_test.go lists each case with both results.
//
// The cofactored equation is the one batch verification can check correctly
// (the ZIP-215 reasoning), and batching is what makes the check several times
// cheaper than crypto/ed25519 under load. Unlike ZIP-215, non-canonical R
// encodings are rejected, which keeps the difference above the only one.
package verify
