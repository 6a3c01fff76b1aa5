// A browser tab as a WhatNext peer: js-libp2p over WebRTC-direct, the transport a page can
// use to reach a node that has no TLS certificate from an authority (the address carries
// the hash of the node's own certificate, which the browser checks). Bundled with esbuild
// by webrtc.test.mjs and run in headless Chromium; `window.whatnext.join` is its one entry.
import { createLibp2p } from 'libp2p';
import { webRTCDirect } from '@libp2p/webrtc';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { multiaddr } from '@multiformats/multiaddr';

const HANDSHAKE = '/whatnext/handshake/1.0.0';
const SYNC = '/whatnext/sync/2.0.0';

/** One request on an app protocol: JSON out, half-close, JSON back until EOF. */
async function request(node, target, protocol, body) {
  const stream = await node.dialProtocol(target, protocol);
  stream.send(new TextEncoder().encode(JSON.stringify(body)));
  // Half-close (FIN) and read the answer at once: js-libp2p's WebRTC `close()` then waits
  // for a FIN_ACK, which rust-libp2p's WebRTC (libp2p-webrtc-utils 0.5) does not send, so
  // awaiting it first would stall every request for its 10 s timeout.
  const closing = stream.close().catch(() => {});
  const parts = [];
  for await (const chunk of stream) parts.push(chunk.subarray ? chunk.subarray() : chunk);
  void closing;
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { bytes.set(part, at); at += part.length; }
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** The peer's identify record, once identify has run (it runs right after connecting). */
async function identified(node, peer) {
  for (let i = 0; i < 100; i++) {
    try {
      const record = await node.peerStore.get(peer);
      if (record.metadata.has('AgentVersion')) return record;
    } catch { /* not yet */ }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('identify did not complete');
}

/**
 * Dials `addr` (…/webrtc-direct/certhash/…/p2p/<peer>), pings it, reads what identify told,
 * joins the shared playlist `session` with its `key`, and asks for all its updates.
 */
async function join({ addr, session, key }) {
  const node = await createLibp2p({
    addresses: { listen: [] },
    transports: [webRTCDirect()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // A browser's js-libp2p refuses private and loopback addresses by default; the test's
    // node is on loopback.
    connectionGater: { denyDialMultiaddr: async () => false },
    services: { identify: identify(), ping: ping() },
  });
  // Each step names itself in an error, so a failure says where it happened.
  const step = async (name, work) => {
    try {
      return await work();
    } catch (err) {
      const why = err.errors ? err.errors.map((e) => e.message).join('; ') : err.message;
      throw new Error(`${name}: ${err.name}: ${why}`);
    }
  };
  try {
    const target = multiaddr(addr);
    const started = performance.now();
    const connection = await step('dial', () => node.dial(target));
    const dialMs = performance.now() - started;
    const rttMs = await step('ping', () => node.services.ping.ping(target));
    const record = await step('identify', () => identified(node, connection.remotePeer));
    const handshake = await step('handshake', () => request(node, target, HANDSHAKE, {
      app_version: 'browser-peer/1',
      display_name: 'A browser tab',
      sessions: [{ session, key }],
    }));
    // An empty version: "I have nothing yet, send me everything".
    const sync = await step('sync', () => request(node, target, SYNC, { type: 'hello', session, version: '' }));
    return {
      peerId: node.peerId.toString(),
      remotePeer: connection.remotePeer.toString(),
      remoteAddr: connection.remoteAddr.toString(),
      dialMs,
      rttMs,
      protocols: record.protocols,
      agent: new TextDecoder().decode(record.metadata.get('AgentVersion')),
      handshake,
      sync,
    };
  } finally {
    await node.stop();
  }
}

window.whatnext = { join };
