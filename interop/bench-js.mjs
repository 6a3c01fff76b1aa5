// Baselines for bench/run, measured with js-libp2p (the original app's network stack: TCP,
// noise, yamux, identify, ping) on this machine in the same run as our figures.
//
//   node bench-js.mjs all       → {"idle_rss_mb", "dial_p50_ms", "link_p50_ms", …} on stdout
//
// idle_rss_mb: a js-libp2p node process with one connection, idle for 1 s (the Electron
//   utility process of the seed design, without Electron's own ~100 MB).
// dial_p50_ms: dial → connected between two nodes in one process (fresh connection each).
// link_p50_ms: a fresh process that starts a node and dials → connected (a link click).
import { spawn } from 'node:child_process';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { multiaddr } from '@multiformats/multiaddr';

// WHATNEXT_BENCH_QUICK=1 (the tests' quick run): a few runs, to prove the script works.
const RUNS = process.env.WHATNEXT_BENCH_QUICK ? 2 : 20;

function makeNode(listen = true) {
  return createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() },
    // The default refuses more than 5 inbound connections a second from one host, which a
    // benchmark dialing in a loop exceeds at once.
    connectionManager: { inboundConnectionThreshold: 1e6 },
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs this script in `mode` as a child and resolves with its first JSON line (and the time to it). */
function child(mode, arg) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const proc = spawn(process.execPath, [new URL(import.meta.url).pathname, mode, arg ?? ''], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buffered = '';
    proc.stdout.on('data', (data) => {
      buffered += data;
      const line = buffered.split('\n')[0];
      if (buffered.includes('\n')) resolve({ value: JSON.parse(line), ms: performance.now() - started, proc });
    });
    proc.on('exit', (code) => reject(new Error(`${mode} exited with ${code}`)));
  });
}

async function main() {
  const [mode, arg] = process.argv.slice(2);
  if (mode === 'dialer') {
    // A fresh process: start a node, dial, report, stay (for RSS) until killed.
    const node = await makeNode(false);
    await node.dial(multiaddr(arg));
    if (process.argv[4] === 'rss') await new Promise((r) => setTimeout(r, 1000));
    console.log(JSON.stringify({ connected: true, rss_mb: process.memoryUsage().rss / 1048576 }));
    if (process.argv[4] !== 'rss') process.exit(0);
    return;
  }
  if (mode !== 'all') throw new Error('usage: bench-js.mjs all');

  const listener = await makeNode();
  const target = listener.getMultiaddrs()[0].toString();

  const dialer = await makeNode(false);
  const dials = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await dialer.dial(multiaddr(target));
    dials.push(performance.now() - t0);
    await dialer.hangUp(multiaddr(target));
  }
  await dialer.stop();

  const links = [];
  for (let i = 0; i < RUNS; i++) {
    const { ms, proc } = await child('dialer', target);
    links.push(ms);
    proc.removeAllListeners('exit');
    proc.kill('SIGKILL');
  }

  const idle = await new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [new URL(import.meta.url).pathname, 'dialer', target, 'rss'], { stdio: ['ignore', 'pipe', 'inherit'] });
    proc.stdout.once('data', (data) => { resolve(JSON.parse(String(data).split('\n')[0])); proc.kill('SIGKILL'); });
    proc.on('error', reject);
  });
  await listener.stop();
  console.log(JSON.stringify({
    node_version: process.version,
    idle_rss_mb: idle.rss_mb,
    dial_ms: dials,
    dial_p50_ms: median(dials),
    link_ms: links,
    link_p50_ms: median(links),
  }));
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
