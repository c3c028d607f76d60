// Shared by the k6 scripts: the pre-signed requests written by
// `go run ./loadtest/cmd/signer` (k6 cannot sign Ed25519, and signing in the
// test would measure k6), held once in memory for all VUs (SharedArray).
import http from 'k6/http';
import { check, fail } from 'k6';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';

export const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const FILE = __ENV.REQUESTS || './requests.json';

// open() may only run in the init context; each SharedArray parses the file
// once, not once per VU.
/**
 * A client to register: the body of POST /clients (loadtest/cmd/signer).
 * @typedef {{client_id: string, type: string, token: string}} Client
 */
/**
 * A pre-signed send (loadtest/cmd/signer).
 * @typedef {{path: string, timestamp: string, signature: string, body: string}} Send
 */
export const clients = new SharedArray('clients', () => /** @type {Client[]} */ (JSON.parse(open(FILE)).clients));
export const sends = new SharedArray('sends', () => /** @type {Send[]} */ (JSON.parse(open(FILE)).sends));

const jsonHeaders = { 'Content-Type': 'application/json' };

// register upserts clients[i] (wrapping): 200 {"status":"OK"}.
export function register(i) {
  const c = clients[i % clients.length];
  const res = http.post(`${BASE}/clients`, JSON.stringify(c), {
    headers: jsonHeaders,
    tags: { name: 'register' },
  });
  check(res, { 'register 200': (r) => r.status === 200 });
  return res;
}

// registerAll registers every client from the file, in batches, for setup().
export function registerAll() {
  for (let i = 0; i < clients.length; i += 100) {
    /** @type {import('k6/http').ArrayBatchRequest[]} */
    const batch = [];
    for (let j = i; j < Math.min(i + 100, clients.length); j++) {
      batch.push(['POST', `${BASE}/clients`, JSON.stringify(clients[j]), { headers: jsonHeaders }]);
    }
    for (const r of http.batch(batch)) {
      if (r.status !== 200) {
        fail(`cannot register a client: ${r.status} ${r.body}`);
      }
    }
  }
}

// send posts sends[i]: each is used once, because a repeated body would be
// answered 200 from the dedup record instead of 202 from the provider.
export function send(i) {
  if (i >= sends.length) {
    exec.test.abort(`ran out of pre-signed sends (${sends.length}): run the signer with a larger -n`);
  }
  const s = sends[i];
  const res = http.post(`${BASE}${s.path}`, s.body, {
    headers: {
      'Content-Type': 'application/json',
      'X-Ed25519-Timestamp': s.timestamp,
      'X-Ed25519-Signature': s.signature,
    },
    tags: { name: 'send' },
  });
  check(res, { 'send 202': (r) => r.status === 202 });
  return res;
}
