// Register storm: wallets registering (and re-registering: an upsert) at a
// fixed arrival rate. Usage (see BENCHMARKS.md):
//   go run ./loadtest/cmd/signer -key "$RELAY_PRIVATE_KEY" -clients 100000 -n 1 -out requests.json
//   k6 run -e BASE_URL=http://127.0.0.1:3000 -e RATE=5000 loadtest/k6/register-storm.js
import exec from 'k6/execution';
import { register } from './lib.js';

export const options = {
  scenarios: {
    register: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 5000),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: Number(__ENV.VUS || 200),
      maxVUs: Number(__ENV.MAX_VUS || 1000),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    'http_req_duration{name:register}': ['p(99)<50'],
  },
};

export default function () {
  register(exec.scenario.iterationInTest);
}
