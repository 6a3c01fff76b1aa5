// A js-libp2p peer — the stack of the original Electron app and of browser peers — against
// our node: it dials over TCP and over WebSocket, checks identify, pings, and completes
// /whatnext/handshake/1.0.0. Runs on Node 22 (npm `node@22`, see package.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { multiaddr } from '@multiformats/multiaddr';
import { BIN, HANDSHAKE, atEnd, startOurNode, status, eventually } from './support.mjs';

async function jsPeer() {
  const node = await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() },
  });
  atEnd(() => node.stop());
  return node;
}

/** One request on an app protocol: JSON out, half-close, JSON back until EOF. */
async function request(node, addr, protocol, body) {
  const stream = await node.dialProtocol(addr, protocol);
  stream.send(new TextEncoder().encode(JSON.stringify(body)));
  await stream.close();
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk.subarray ? chunk.subarray() : chunk);
  return JSON.parse(Buffer.concat(chunks.map((c) => Buffer.from(c))).toString('utf8'));
}

test('a js-libp2p peer dials our node over TCP and WebSocket, pings it and completes the handshake', { timeout: 60000 }, async () => {
  assert.ok(existsSync(BIN), `build the binary first (${BIN})`);
  const ours = await startOurNode(['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws']);
  const peerId = ours.state.peer_id;
  const tcpAddr = ours.state.listen_addrs.find((a) => a.includes('/tcp/') && !a.includes('/ws'));
  const wsAddr = ours.state.listen_addrs.find((a) => a.endsWith('/ws'));
  assert.ok(tcpAddr && wsAddr, `TCP and WebSocket listen addresses: ${ours.state.listen_addrs}`);
  const js = await jsPeer();

  for (const [name, addr] of [['tcp', tcpAddr], ['websocket', wsAddr]]) {
    const target = multiaddr(`${addr}/p2p/${peerId}`);
    const started = performance.now();
    const connection = await js.dial(target);
    const dialMs = performance.now() - started;
    assert.equal(connection.remotePeer.toString(), peerId);

    const rtt = await js.services.ping.ping(target);
    assert.ok(rtt >= 0, `ping over ${name}`);

    // Identify told the JS peer who we are and what we speak.
    const peer = await js.peerStore.get(connection.remotePeer);
    assert.ok(peer.protocols.includes(HANDSHAKE), `identify over ${name} lists ${HANDSHAKE}: ${peer.protocols}`);
    const agent = new TextDecoder().decode(peer.metadata.get('AgentVersion'));
    assert.match(agent, /^whatnext\//);

    const reply = await request(js, target, HANDSHAKE, { app_version: 'js-interop/1', display_name: 'JS peer', sessions: [] });
    assert.match(reply.app_version, /^whatnext\//);
    assert.deepEqual(reply.accepted, []);
    assert.deepEqual(reply.refused, []);

    // Our side sees the JS peer, on the right transport.
    const seen = await eventually(() => status(ours.home).connections
      .find((c) => c.peer_id === js.peerId.toString() && c.transport === name));
    assert.ok(seen, `our node lists the JS peer's ${name} connection`);
    console.log(`js-libp2p → our node over ${name}: dial ${dialMs.toFixed(1)} ms, ping ${rtt} ms, handshake ok`);
    await js.hangUp(target);
  }
});
