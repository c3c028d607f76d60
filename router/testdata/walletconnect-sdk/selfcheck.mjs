// selfcheck.mjs checks register.mjs without the Go gateway: it serves a throwaway HTTP server on a
// free loopback port, runs register.mjs against it, and asserts that what the server received is
// what register.mjs reports and what the gateway expects from the SDK. Run: node selfcheck.mjs
// (after npm ci). Exits 0 and prints "N passed, 0 failed" when all cases hold.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const PROJECT_ID = "selfcheck-project_01";

// startServer answers every request with the given status and body and records what it saw.
async function startServer(status, replyBody) {
  const seen = [];
  const server = http.createServer((req, res) => {
    let data = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (data += c));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: data });
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(replyBody));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, seen, url: `http://127.0.0.1:${server.address().port}` };
}

function runRegister(env) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, ["register.mjs"], {
      cwd: here,
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const kill = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

const cases = [
  {
    name: "apns, ALWAYS_RAW unset: SDK default always_raw=false",
    env: { NOTIFICATION_TYPE: "apns", DEVICE_TOKEN: "a1b2c3d4e5f6" },
    status: 200,
    wantType: "apns",
    wantRaw: false,
    wantExit: 0,
  },
  {
    name: "fcm with ALWAYS_RAW=true",
    env: { NOTIFICATION_TYPE: "fcm", DEVICE_TOKEN: "fcm-token:xyz", ALWAYS_RAW: "true" },
    status: 200,
    wantType: "fcm",
    wantRaw: true,
    wantExit: 0,
  },
  {
    name: "gateway 404 makes register.mjs exit 1 but still report the request",
    env: { NOTIFICATION_TYPE: "apns-sandbox", DEVICE_TOKEN: "deadbeef", ALWAYS_RAW: "0" },
    status: 404,
    wantType: "apns-sandbox",
    wantRaw: false,
    wantExit: 1,
  },
];

let passed = 0;
let failed = 0;
const clientIds = new Set();

for (const tc of cases) {
  const replyBody = tc.status === 200 ? { status: "OK" } : { status: "FAILED", errors: [{ name: "tenant_not_found" }] };
  const { server, seen, url } = await startServer(tc.status, replyBody);
  try {
    const r = await runRegister({ GATEWAY_URL: url, PROJECT_ID, ...tc.env });
    assert.equal(r.code, tc.wantExit, `exit code; stderr: ${r.stderr}`);
    assert.ok(r.ms < 15_000, `took ${r.ms} ms`);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 1, `stdout must be one line, got: ${r.stdout}`);
    const out = JSON.parse(lines[0]);

    // What the server actually received.
    assert.equal(seen.length, 1, "exactly one request reached the server");
    const got = seen[0];
    assert.equal(got.method, "POST");
    assert.equal(got.url, `/${PROJECT_ID}/clients`);
    assert.match(got.headers["content-type"], /^application\/json/);
    assert.equal(got.headers.authorization, undefined, "the SDK sends no Authorization header");
    const body = JSON.parse(got.body);
    assert.deepEqual(Object.keys(body).sort(), ["always_raw", "client_id", "token", "type"]);
    assert.match(body.client_id, /^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+$/);
    assert.equal(body.type, tc.wantType);
    assert.equal(body.token, tc.env.DEVICE_TOKEN);
    assert.equal(body.always_raw, tc.wantRaw);

    // What register.mjs reports matches what was received.
    assert.equal(out.clientId, body.client_id);
    assert.equal(out.request.method, "POST");
    assert.equal(out.request.path, `/${PROJECT_ID}/clients`);
    assert.deepEqual(out.request.body, body);
    assert.equal(out.response.status, tc.status);
    assert.deepEqual(out.response.body, replyBody);
    if (tc.wantExit !== 0) assert.match(r.stderr, /gateway answered 404/);

    clientIds.add(out.clientId);
    passed++;
    console.log(`ok   ${tc.name} (${r.ms} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${tc.name}: ${err.message}`);
  } finally {
    server.close();
  }
}

// Each run makes a fresh in-memory identity, so the ids must differ.
try {
  assert.equal(clientIds.size, passed, "each run must get its own client id");
  passed++;
  console.log("ok   fresh client id per run");
} catch (err) {
  failed++;
  console.log(`FAIL fresh client id per run: ${err.message}`);
}

// Missing required env: exit 1 without any request.
{
  const { server, seen, url } = await startServer(200, { status: "OK" });
  try {
    const r = await runRegister({ GATEWAY_URL: url, PROJECT_ID });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /DEVICE_TOKEN is required/);
    assert.equal(r.stdout, "");
    assert.equal(seen.length, 0);
    passed++;
    console.log("ok   missing DEVICE_TOKEN fails");
  } catch (err) {
    failed++;
    console.log(`FAIL missing DEVICE_TOKEN fails: ${err.message}`);
  } finally {
    server.close();
  }
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
