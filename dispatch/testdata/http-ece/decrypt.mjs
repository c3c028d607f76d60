// Decrypts one Web Push body with http_ece, as a browser would: reads
// {"body":…, "privateKey":…, "auth":…} (base64url: the aes128gcm body, the
// subscription's 32-byte P-256 private key and its 16-byte auth secret) on
// stdin and prints the plaintext, as base64url, on stdout.
import { createECDH } from 'node:crypto';
import { createRequire } from 'node:module';

const ece = createRequire(import.meta.url)('http_ece');

let input = '';
for await (const chunk of process.stdin) input += chunk;
const { body, privateKey, auth } = JSON.parse(input);

const receiver = createECDH('prime256v1');
receiver.setPrivateKey(Buffer.from(privateKey, 'base64url'));
const plain = ece.decrypt(Buffer.from(body, 'base64url'), {
  version: 'aes128gcm',
  privateKey: receiver,
  authSecret: auth,
});
process.stdout.write(plain.toString('base64url'));
