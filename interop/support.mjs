// What the interop tests share: our binary, its CLI, and a node of ours in a temp home that
// is killed (with its network service) when the tests end, pass or fail.
import { after } from 'node:test';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.WHATNEXT_BIN || new URL('../target/debug/whatnext', import.meta.url).pathname;
export const HANDSHAKE = '/whatnext/handshake/1.0.0';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cleanup = [];
/** Runs `step` when the tests end (last registered, first run). */
export function atEnd(step) { cleanup.push(step); }
after(async () => { for (const step of cleanup.reverse()) await step(); });

export function cli(home, args) {
  return execFileSync(BIN, ['--home', home, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function status(home) {
  return JSON.parse(cli(home, ['status', '--json']));
}

/**
 * Runs our controller on `listen` (multiaddrs) in `home` (a new temp home when not given)
 * and waits until its node listens on all of them.
 */
export async function startOurNode(listen, home = null) {
  if (!home) {
    home = mkdtempSync(join(tmpdir(), 'wn-interop-'));
    atEnd(() => rmSync(home, { recursive: true, force: true }));
  }
  const args = ['--home', home, 'run', '--no-mdns', '--no-upnp', '--no-browser', '--no-register'];
  for (const addr of listen) args.push('--listen', addr);
  const child = spawn(BIN, args, { stdio: 'ignore' });
  const servicePids = new Set();
  const stop = () => {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
    for (const pid of servicePids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  };
  atEnd(stop);
  for (let i = 0; i < 400; i++) {
    try {
      const state = status(home);
      if (state.service.pid) servicePids.add(state.service.pid);
      if (state.node === 'running' && state.listen_addrs.length >= listen.length) {
        return { home, state, child, exited: new Promise((resolve) => child.once('exit', resolve)) };
      }
    } catch { /* not up yet */ }
    await sleep(50);
  }
  throw new Error('our node did not start');
}

/** Polls `check` (bounded: `tries` × 50 ms) until it returns something truthy. */
export async function eventually(check, tries = 100) {
  for (let i = 0; i < tries; i++) {
    const found = await check();
    if (found) return found;
    await sleep(50);
  }
  return null;
}
