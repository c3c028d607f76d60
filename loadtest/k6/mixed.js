// Mixed: a send storm with registrations alongside (new wallets arriving
// while the relay sends), each at its own fixed arrival rate. Usage:
//   go run ./loadtest/cmd/signer -key "$RELAY_PRIVATE_KEY" -clients 100000 -n 600000 -out requests.json
//   k6 run -e SEND_RATE=15000 -e REGISTER_RATE=1000 loadtest/k6/mixed.js
// Registrations cycle through the file's clients (re-registering is an
// upsert), so sends keep finding them registered.
import exec from 'k6/execution';
import { register, registerAll, send } from './lib.js';

const duration = __ENV.DURATION || '30s';

export const options = {
  scenarios: {
    sends: {
      executor: 'constant-arrival-rate',
      exec: 'sends',
      rate: Number(__ENV.SEND_RATE || 15000),
      timeUnit: '1s',
      duration,
      preAllocatedVUs: Number(__ENV.VUS || 500),
      maxVUs: Number(__ENV.MAX_VUS || 2000),
    },
    registers: {
      executor: 'constant-arrival-rate',
      exec: 'registers',
      rate: Number(__ENV.REGISTER_RATE || 1000),
      timeUnit: '1s',
      duration,
      preAllocatedVUs: 50,
      maxVUs: 200,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    'http_req_duration{name:send}': ['p(99)<50'],
    'http_req_duration{name:register}': ['p(99)<50'],
  },
};

export function setup() {
  registerAll();
}

export function sends() {
  send(exec.scenario.iterationInTest);
}

export function registers() {
  register(exec.scenario.iterationInTest);
}
