// Send storm: the relay's signed sends at a fixed arrival rate, each to a
// registered client with a unique body, so every one goes to the provider
// (202). setup() registers the clients first. Usage:
//   go run ./loadtest/cmd/signer -key "$RELAY_PRIVATE_KEY" -clients 1000 -n 600000 -out requests.json
//   k6 run -e BASE_URL=http://127.0.0.1:3000 -e RATE=20000 -e DURATION=30s loadtest/k6/send-storm.js
// -n must cover RATE × DURATION; the test aborts when the sends run out.
import exec from 'k6/execution';
import { registerAll, send } from './lib.js';

export const options = {
  scenarios: {
    send: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 20000),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: Number(__ENV.VUS || 500),
      maxVUs: Number(__ENV.MAX_VUS || 2000),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    'http_req_duration{name:send}': ['p(99)<50'],
    dropped_iterations: ['count<1'],
  },
};

export function setup() {
  registerAll();
}

export default function () {
  send(exec.scenario.iterationInTest);
}
