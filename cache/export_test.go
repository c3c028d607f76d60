package cache

import "crypto/sha256"

// KeysForTest exposes the key layout to the cluster tests, which check where
// the keys land: the client record, the dedup record of messageID, and the
// owner index of token.
func (r *Redis) KeysForTest(tenant, id, messageID, token string) (client, dedup, owner string) {
	hash := sha256.Sum256([]byte(token))
	return r.clientKey(tenant, id), r.dedupKey(tenant, id, messageID), r.tokenKey(tenant, &hash)
}
