// A browser tab as a peer: js-libp2p (bundled with esbuild) in headless Chromium dials our
// node over WebRTC-direct, pings it, reads identify, joins a shared playlist with the keys
// of its invite link and receives the playlist's tracks. Then our app restarts, and the tab
// dials the very same address again: the certificate (whose hash the address holds) is kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import { LoroDoc } from 'loro-crdt';
import { createLibp2p } from 'libp2p';
import { webSockets } from '@libp2p/websockets';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { BIN, HANDSHAKE, atEnd, cli, startOurNode } from './support.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LISTEN = ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws', '/ip4/127.0.0.1/udp/0/webrtc-direct'];

/** The browser peer (browser/peer.js) bundled, served on loopback (a secure context). */
async function servePeerPage() {
  const built = await esbuild.build({
    entryPoints: [new URL('./browser/peer.js', import.meta.url).pathname],
    bundle: true, format: 'iife', platform: 'browser', target: 'chrome120', write: false, logLevel: 'error',
  });
  const script = built.outputFiles[0].contents;
  const server = createServer((req, res) => {
    if (req.url === '/peer.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' })
        .end('<!doctype html><title>browser peer</title><script src="/peer.js"></script>');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  atEnd(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${server.address().port}/`;
}

/** LZ4 block decoding (the format of `lz4_flex::compress_prepend_size`: a u32 LE size first). */
function unlz4(packed) {
  const size = packed.readUInt32LE(0);
  const src = packed.subarray(4);
  const out = Buffer.alloc(size);
  let i = 0; let o = 0;
  while (i < src.length) {
    const token = src[i++];
    let literals = token >> 4;
    if (literals === 15) { let b; do { b = src[i++]; literals += b; } while (b === 255); }
    src.copy(out, o, i, i + literals); i += literals; o += literals;
    if (i >= src.length) break;
    const offset = src[i] | (src[i + 1] << 8); i += 2;
    let match = (token & 15) + 4;
    if ((token & 15) === 15) { let b; do { b = src[i++]; match += b; } while (b === 255); }
    for (let k = 0; k < match; k++, o++) out[o] = out[o - offset];
  }
  assert.equal(o, size, 'the LZ4 block decodes to its stated size');
  return out;
}

/** The Loro updates in a list of signed envelopes (postcard: varints and length-prefixed bytes). */
function envelopeUpdates(bytes) {
  let at = 0;
  const varint = () => { let v = 0n; let shift = 0n; let b; do { b = bytes[at++]; v |= BigInt(b & 0x7f) << shift; shift += 7n; } while (b & 0x80); return v; };
  const blob = () => { const n = Number(varint()); const b = bytes.subarray(at, at + n); at += n; return b; };
  const updates = [];
  for (let count = Number(varint()); count > 0; count--) {
    varint(); // kind
    blob(); // author's key
    varint(); // nonce
    updates.push(blob());
    blob(); // signature
  }
  assert.equal(at, bytes.length, 'the envelopes fill the message');
  return updates;
}

/** The titles of the tracks in a `sync` answer, read with Loro as any client would. */
function trackTitles(updatesField) {
  const doc = new LoroDoc();
  doc.importBatch(envelopeUpdates(unlz4(Buffer.from(updatesField, 'base64'))));
  return doc.getMovableList('tracks').toJSON().map((track) => track.title);
}

async function dialOverWebSocket(addr) {
  const node = await createLibp2p({
    addresses: { listen: [] }, transports: [webSockets()],
    connectionEncrypters: [noise()], streamMuxers: [yamux()],
  });
  atEnd(() => node.stop());
  const started = performance.now();
  await node.dial(multiaddr(addr));
  return performance.now() - started;
}

test('a browser tab joins a shared playlist over WebRTC-direct, and again after our app restarts', { timeout: 120000 }, async () => {
  assert.ok(existsSync(BIN), `build the binary first (${BIN})`);
  assert.ok(existsSync(CHROMIUM), `install Chromium (${CHROMIUM})`);
  let ours = await startOurNode(LISTEN);
  const peerId = ours.state.peer_id;
  const titles = ['Nightcall', 'Midnight City', 'Resonance'];
  const id = JSON.parse(cli(ours.home, ['playlist', 'create', 'Night Drive', '--json'])).id;
  for (const title of titles) cli(ours.home, ['playlist', 'add', id, '--title', title]);
  const link = new URL(JSON.parse(cli(ours.home, ['playlist', 'share', id, '--json'])).link);
  const session = link.searchParams.get('session');
  const key = link.searchParams.get('key');
  // The invite carries the WebRTC address, certificate hash included.
  const webrtcAddr = link.searchParams.getAll('addr').find((a) => a.includes('/webrtc-direct/certhash/'));
  assert.ok(webrtcAddr, `the invite has a WebRTC-direct address: ${link}`);
  const target = `${webrtcAddr}/p2p/${peerId}`;

  const page = await servePeerPage();
  // Chromium leaves loopback out of WebRTC unless told; a real tab dials a LAN or public address.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--allow-loopback-in-peer-connection'] });
  atEnd(() => browser.close());
  const tab = await browser.newPage();
  tab.on('console', (m) => { if (m.type() === 'error') console.log(`[tab] ${m.text()}`); });
  await tab.goto(page);
  await tab.waitForFunction(() => window.whatnext);

  const joined = await tab.evaluate((args) => window.whatnext.join(args), { addr: target, session, key });
  assert.equal(joined.remotePeer, peerId);
  assert.ok(joined.rttMs >= 0, 'ping over WebRTC');
  assert.ok(joined.protocols.includes(HANDSHAKE), `identify lists ${HANDSHAKE}: ${joined.protocols}`);
  assert.match(joined.agent, /^whatnext\//);
  assert.deepEqual(joined.handshake.accepted, [session], `handshake: ${JSON.stringify(joined.handshake)}`);
  assert.equal(joined.sync.type, 'updates', `sync: ${JSON.stringify(joined.sync).slice(0, 200)}`);
  assert.deepEqual(trackTitles(joined.sync.updates), titles);
  const wsAddr = ours.state.listen_addrs.find((a) => a.endsWith('/ws'));
  const wsMs = await dialOverWebSocket(`${wsAddr}/p2p/${peerId}`);
  console.log(`browser → our node over WebRTC-direct: dial ${joined.dialMs.toFixed(1)} ms, ping ${joined.rttMs} ms; Node → our node over WebSocket: dial ${wsMs.toFixed(1)} ms (same run)`);

  // Restart the app: the same address — port and certificate hash — still works.
  ours.child.kill('SIGTERM');
  await ours.exited;
  ours = await startOurNode(LISTEN, ours.home);
  assert.ok(ours.state.listen_addrs.includes(webrtcAddr), `after a restart we listen on ${webrtcAddr} again: ${ours.state.listen_addrs}`);
  const again = await tab.evaluate((args) => window.whatnext.join(args), { addr: target, session, key });
  assert.deepEqual(trackTitles(again.sync.updates), titles);
});
