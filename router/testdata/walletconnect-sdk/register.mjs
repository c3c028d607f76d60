// register.mjs drives the real @walletconnect/core SDK the way a wallet does when it turns on
// push notifications: it derives the client id (the did:key of the Core's Ed25519 identity key)
// and calls core.echoClient.registerDeviceToken. The SDK posts to its hard-coded echo base URL,
// so globalThis.fetch is wrapped to send that request to GATEWAY_URL instead, unchanged.
//
// Env: GATEWAY_URL (required, e.g. http://127.0.0.1:8080), PROJECT_ID (required),
// DEVICE_TOKEN (required), NOTIFICATION_TYPE (default "apns"), ALWAYS_RAW (optional: true/1/yes).
//
// Stdout: one line of JSON, {"clientId", "request": {method, path, headers, body}, "response":
// {status, body}}. Exit 0 when the gateway answered 2xx; otherwise the line is still printed when
// a request was made (so the caller can see what was sent), the error goes to stderr, exit 1.

import { Core, ECHO_URL } from "@walletconnect/core";

// The whole run must stay well under the caller's 30 s budget even if the gateway hangs.
const OVERALL_TIMEOUT_MS = 20_000;
const REQUEST_TIMEOUT_MS = 10_000;

function fail(err) {
  process.stderr.write(`register.mjs: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

const watchdog = setTimeout(() => fail(new Error(`timed out after ${OVERALL_TIMEOUT_MS} ms`)), OVERALL_TIMEOUT_MS);
watchdog.unref();

function requiredEnv(name) {
  const v = process.env[name];
  if (!v) fail(new Error(`env ${name} is required`));
  return v;
}

function parseBool(name, v) {
  if (v === undefined || v === "") return undefined;
  const s = v.trim().toLowerCase();
  if (["1", "true", "yes"].includes(s)) return true;
  if (["0", "false", "no"].includes(s)) return false;
  fail(new Error(`env ${name} must be true/false/1/0/yes/no, got ${JSON.stringify(v)}`));
}

const gatewayUrl = requiredEnv("GATEWAY_URL").replace(/\/+$/, "");
const projectId = requiredEnv("PROJECT_ID");
const deviceToken = requiredEnv("DEVICE_TOKEN");
const notificationType = process.env.NOTIFICATION_TYPE || "apns";
const alwaysRaw = parseBool("ALWAYS_RAW", process.env.ALWAYS_RAW);

if (typeof ECHO_URL !== "string" || !/^https?:\/\//.test(ECHO_URL)) {
  fail(new Error(`@walletconnect/core no longer exports ECHO_URL as a URL (got ${ECHO_URL}); the redirect needs updating`));
}
const echoBase = ECHO_URL.replace(/\/+$/, "");

// Header values that must never reach stdout or logs.
const SECRET_HEADERS = new Set(["authorization", "cookie", "proxy-authorization"]);

function headersToObject(h) {
  const out = {};
  new Headers(h || {}).forEach((value, key) => {
    out[key] = SECRET_HEADERS.has(key) ? "<redacted>" : value;
  });
  return out;
}

const realFetch = globalThis.fetch;
const captured = [];

// The wrapper only lets the echo request through, so a future SDK that phones home (telemetry,
// verify, relay) fails loudly here instead of trying the network.
globalThis.fetch = async (input, init = {}) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  if (!(url === echoBase || url.startsWith(echoBase + "/") || url.startsWith(echoBase + "?"))) {
    throw new Error(`unexpected fetch outside the echo base URL: ${new URL(url).origin}`);
  }
  if (typeof input !== "string" && !(input instanceof URL)) {
    // A Request object: fold its fields into init so they are forwarded and captured alike.
    init = {
      method: input.method,
      headers: input.headers,
      body: input.body ? await input.text() : undefined,
      ...init,
    };
  }
  const path = url.slice(echoBase.length) || "/";
  const method = (init.method || "GET").toUpperCase();
  const bodyText = typeof init.body === "string" ? init.body : init.body == null ? null : String(init.body);
  let body = bodyText;
  try {
    if (bodyText !== null) body = JSON.parse(bodyText);
  } catch {
    // Not JSON: report it verbatim.
  }
  const entry = { method, path, headers: headersToObject(init.headers), body };
  captured.push({ request: entry, response: null });

  const res = await realFetch(gatewayUrl + path, {
    ...init,
    signal: init.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  // Read a clone so the SDK (which ignores the response today) could still read the original.
  const text = await res.clone().text();
  let resBody = text;
  try {
    resBody = JSON.parse(text);
  } catch {
    // Not JSON: report it verbatim.
  }
  captured[captured.length - 1].response = { status: res.status, body: resBody };
  return res;
};

// In-memory IKeyValueStorage: the Node default would persist a database file; a fresh identity
// per run is what the test wants, and nothing is left on disk.
class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  async getKeys() {
    return [...this.map.keys()];
  }
  async getEntries() {
    return [...this.map.entries()];
  }
  async getItem(key) {
    return this.map.get(key);
  }
  async setItem(key, value) {
    this.map.set(key, value);
  }
  async removeItem(key) {
    this.map.delete(key);
  }
}

let clientId;
try {
  // No core.start(): that would initialise the relayer and open a websocket to the relay.
  const core = new Core({
    projectId,
    storage: new MemoryStorage(),
    logger: "silent",
    telemetryEnabled: false,
  });
  await core.crypto.init();
  clientId = await core.crypto.getClientId();

  // The SDK's own parameter names (EchoClientTypes.RegisterDeviceTokenParams); it maps
  // enableEncrypted to the body's always_raw.
  const params = { clientId, token: deviceToken, notificationType };
  if (alwaysRaw !== undefined) params.enableEncrypted = alwaysRaw;
  await core.echoClient.registerDeviceToken(params);
} catch (err) {
  if (captured.length > 0) process.stdout.write(JSON.stringify({ clientId, ...captured[0] }) + "\n");
  fail(err);
}

if (captured.length !== 1) {
  fail(new Error(`expected exactly one request from registerDeviceToken, saw ${captured.length}`));
}
const { request, response } = captured[0];
process.stdout.write(JSON.stringify({ clientId, request, response }) + "\n", () => {
  if (response.status < 200 || response.status > 299) {
    fail(new Error(`gateway answered ${response.status}: ${JSON.stringify(response.body)}`));
  }
  process.exit(0);
});
