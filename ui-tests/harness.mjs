// What the view's tests and the playback benchmark share: real controllers in fresh homes,
// Debian's Chromium, pages logged in to a controller, generated audio, and a clean-up that
// kills every process started, by pid.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BIN = process.env.WHATNEXT_BIN || new URL('../target/debug/whatnext', import.meta.url).pathname;
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** Where the tests' screenshots go (and a failed test's: failed-*.png). */
export const SHOTS = new URL('../target/ui-shots/', import.meta.url).pathname;
const nodes = [];
const scratch = [];
/** Every page opened by `login`, with the node it shows: what a failed test describes. */
const pages = [];
let browser;
/** Script errors and CSP violations of every page: each test ends with none. */
export const pageErrors = [];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function cli(home, args) {
  return execFileSync(BIN, ['--home', home, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

/** A temporary folder, removed by `cleanUp`. */
export function tempDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `wn-ui-${name}-`));
  scratch.push(dir);
  return dir;
}

/** A fresh home; its music folder is `musicDir` (none by default: not the user's ~/Music). */
export function newHome(name, musicDir) {
  const home = tempDir(name);
  writeFileSync(join(home, 'config.toml'), `music_dirs = [${musicDir ? JSON.stringify(musicDir) : ''}]\n`);
  return home;
}

/** An 8×8 orange PNG: a cover picture. */
export const COVER_PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000008000000080802000000'
  + '4b6d29dc000000114944415478da63b813a58115310c2d09005dc65781614'
  + '87e750000000049454e44ae426082', 'hex');

/** An ID3v2.3 tag holding `png` as the front cover (an APIC frame), as a WAV's `id3 ` chunk. */
function coverChunk(png) {
  const mime = Buffer.from('image/png\0', 'latin1');
  // Text encoding 0, MIME, picture type 3 (front cover), empty description, the bytes.
  const body = Buffer.concat([Buffer.from([0]), mime, Buffer.from([3, 0]), png]);
  const frame = Buffer.alloc(10);
  frame.write('APIC', 0); frame.writeUInt32BE(body.length, 4);
  const size = frame.length + body.length;
  const header = Buffer.from([0x49, 0x44, 0x33, 3, 0, 0, (size >> 21) & 0x7f, (size >> 14) & 0x7f, (size >> 7) & 0x7f, size & 0x7f]);
  let tag = Buffer.concat([header, frame, body]);
  if (tag.length % 2) tag = Buffer.concat([tag, Buffer.from([0])]);
  const chunk = Buffer.alloc(8);
  chunk.write('id3 ', 0); chunk.writeUInt32LE(tag.length, 4);
  return Buffer.concat([chunk, tag]);
}

/** A mono 16-bit 8 kHz WAV of `seconds` of a tone; with `cover`, its tags hold that picture. */
export function toneWav(seconds, cover = null) {
  const rate = 8000;
  const samples = rate * seconds;
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write('RIFF', 0); wav.writeUInt32LE(36 + samples * 2, 4); wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16); wav.writeUInt16LE(1, 20); wav.writeUInt16LE(1, 22);
  wav.writeUInt32LE(rate, 24); wav.writeUInt32LE(rate * 2, 28); wav.writeUInt16LE(2, 32); wav.writeUInt16LE(16, 34);
  wav.write('data', 36); wav.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) wav.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * 440 * i / rate)), 44 + i * 2);
  if (!cover) return wav;
  const tagged = Buffer.concat([wav, coverChunk(cover)]);
  tagged.writeUInt32LE(tagged.length - 8, 4);
  return tagged;
}

/** Starts `whatnext run` on loopback (no mDNS, no UPnP) in `home`; resolves once its node runs. */
export async function startNode(name, home = newHome(name)) {
  // Its log (stderr) stays in its home until the clean-up: a failed test shows its problems.
  const log = join(home, 'controller.stderr');
  const child = spawn(BIN, ['--home', home, 'run', '--no-mdns', '--no-upnp', '--no-browser', '--no-register',
    '--listen', '/ip4/127.0.0.1/tcp/0'], { stdio: ['ignore', 'ignore', openSync(log, 'w')] });
  const node = { name, home, child, servicePids: new Set(), log };
  nodes.push(node);
  for (let i = 0; i < 400; i++) {
    try {
      const state = JSON.parse(cli(home, ['status', '--json']));
      if (state.service.pid) node.servicePids.add(state.service.pid);
      if (state.node === 'running') return { ...node, state };
    } catch { /* not up yet */ }
    await sleep(50);
  }
  throw new Error(`${name} did not start`);
}

/** Launches Chromium once; later calls return the same browser. */
export async function launchBrowser() {
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
  });
  return browser;
}

/** Ends the browser, kills every controller and service seen (by pid), removes the homes. */
export async function cleanUp() {
  if (browser) await browser.close();
  browser = undefined;
  for (const node of nodes) {
    try { node.child.kill('SIGKILL'); } catch { /* gone */ }
    for (const pid of node.servicePids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  }
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
}

/** A page of `node`'s view, logged in through `whatnext ui --print`. */
export async function login(node) {
  const url = cli(node.home, ['ui', '--print']).trim();
  const page = await (await launchBrowser()).newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(`${node.name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && m.text().includes('Content Security Policy')) pageErrors.push(`${node.name}: ${m.text()}`);
  });
  pages.push({ name: node.name, page });
  await page.goto(url);
  await page.waitForFunction((id) => document.getElementById('peer-id')?.textContent === id, node.state.peer_id, { timeout: 20000 });
  return page;
}

/** `body` as a test's function which, when it fails, first shows what each page it logged
 *  in showed: a screenshot (SHOTS/failed-*.png) and a line of what is shown and hidden, so a
 *  failure seen once on a loaded CI machine can be read afterwards. */
export function diagnosed(body) {
  return async (...args) => {
    const earlier = pages.length; // pages of the file's earlier tests stay open until cleanUp
    try {
      return await body(...args);
    } catch (error) {
      for (const [i, { name, page }] of pages.slice(earlier).entries()) {
        try {
          const path = join(SHOTS, `failed-${i}-${name}.png`);
          await page.screenshot({ path, timeout: 5000 });
          const seen = await page.evaluate(() => {
            const s = /** @type {any} */ (window).whatnextDebug?.();
            const shown = [...document.querySelectorAll('[id]')]
              .filter((e) => e.matches('section, main > div, form, dialog') && e.getClientRects().length > 0)
              .map((e) => e.id);
            return {
              url: location.pathname, version: s?.version, display_name_chosen: s?.display_name_chosen,
              viewport: `${innerWidth}x${innerHeight}`, shown,
            };
          });
          console.log(`failed test, page ${i} (${name}): ${path} ${JSON.stringify(seen)}`);
        } catch (e) { console.log(`failed test, page ${i} (${name}): not readable (${e.message})`); }
      }
      for (const node of nodes) {
        try {
          const problems = readFileSync(node.log, 'utf8').split('\n')
            .filter((line) => /WARN|ERROR|panicked/.test(line)).slice(-20);
          if (problems.length) console.log(`failed test, ${node.name}'s log:\n  ${problems.join('\n  ')}`);
        } catch { /* no log */ }
      }
      throw error;
    }
  };
}

const axeSource = readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');

/** axe-core's findings on what `page` shows now, as `impact rule: target` lines, and the
 *  serious and critical ones apart. (Evaluated through the DevTools protocol, which the
 *  page's CSP does not govern: the page itself still runs no inline script.) */
export async function accessibility(page) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) }));
  });
  const lines = violations.map((v) => `${v.impact} ${v.id} (${v.help}): ${v.targets.slice(0, 3).join(', ')}`);
  const severe = lines.filter((_, i) => ['serious', 'critical'].includes(violations[i].impact));
  return { lines, severe };
}
