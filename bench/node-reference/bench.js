// The reference DDCC mediator's hot path: makeCWT + signAndPack (@pathcheck/dcc-sdk)
// then qrcode.toDataURL at error-correction level Q, with the versions its lockfile
// pins. Prints one JSON line with rates, for BENCHMARKS.md.
//
// usage: node bench.js <iterations> <dsc-cert.pem> <private-key-pkcs8.pem> <payload.json>
'use strict';
const fs = require('fs');
const dcc = require('@pathcheck/dcc-sdk');
const QRCode = require('qrcode');

async function main() {
  const [n, certPath, keyPath, payloadPath] = process.argv.slice(2);
  const iterations = parseInt(n, 10);
  const cert = fs.readFileSync(certPath, 'utf8');
  const key = fs.readFileSync(keyPath, 'utf8');
  const payload = JSON.parse(fs.readFileSync(payloadPath, 'utf8'));

  // Warm up the JIT and the SDK's key caches, as a long-running mediator would be.
  for (let i = 0; i < 20; i++) {
    const hc1 = await dcc.signAndPack(await dcc.makeCWT(payload, 12, 'XX'), cert, key);
    await QRCode.toDataURL(hc1, { errorCorrectionLevel: 'Q' });
  }

  let hc1 = '';
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    hc1 = await dcc.signAndPack(await dcc.makeCWT(payload, 12, 'XX'), cert, key);
  }
  const signNs = Number(process.hrtime.bigint() - t0);

  t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    await QRCode.toDataURL(hc1, { errorCorrectionLevel: 'Q' });
  }
  const qrNs = Number(process.hrtime.bigint() - t0);

  t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const h = await dcc.signAndPack(await dcc.makeCWT(payload, 12, 'XX'), cert, key);
    await QRCode.toDataURL(h, { errorCorrectionLevel: 'Q' });
  }
  const bothNs = Number(process.hrtime.bigint() - t0);

  const rate = (ns) => Math.round((iterations / (ns / 1e9)) * 10) / 10;
  console.log(JSON.stringify({
    stack: 'node-reference',
    iterations,
    hc1_length: hc1.length,
    sign_per_s: rate(signNs),
    qr_png_per_s: rate(qrNs),
    certificates_per_s: rate(bothNs),
    rss_mib: Math.round(process.memoryUsage().rss / 1048576),
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });
