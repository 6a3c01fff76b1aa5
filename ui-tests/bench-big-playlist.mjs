// Benchmark, not a test: the view with a long playlist, in real Chromium on loopback. A
// playlist of TRACKS tracks (default 10,000) is imported from a CSV, then:
// - open: from the click on its name to its rows drawn (a long playlist draws those near the
//   screen, each saying its place in the whole list);
// - add: from the add form's submit to the rows drawn again, the new track counted;
// - remove: scrolled to the end (the rows there drawn), from the last row's ✕ to the row gone.
// Prints one JSON line, and leaves a screenshot of the rows near 5,000 (or the middle of a
// shorter list) in target/ui-shots/.
// Env: WHATNEXT_BIN, CHROMIUM, TRACKS; to look into the view: ASSETS_DIR (its files from that
// folder instead of the binary, to try a change without a build), PROFILE=1 (the add's
// JavaScript profile, by function, on stderr), TRACE=FILE (the add's Chrome trace).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir, startNode, login, cleanUp, SHOTS } from './harness.mjs';

const TRACKS = Number(process.env.TRACKS || 10000);

try {
  const node = await startNode('big');
  const csv = join(tempDir('big-csv'), 'big.csv');
  const rows = ['title,artist,album,duration,uri'];
  for (let i = 0; i < TRACKS; i++) rows.push(`Song ${i},Artist ${i % 500},Album ${i % 1000},${180 + (i % 120)},`);
  writeFileSync(csv, rows.join('\n') + '\n');
  cli(node.home, ['playlist', 'import', csv]);
  const page = await login(node);
  if (process.env.ASSETS_DIR) {
    // The view's files from disk instead of the binary (to try a change without a build).
    const types = { js: 'text/javascript', css: 'text/css' };
    await page.route(/\/(app\.js|client\.js|style\.css)(\?.*)?$/, (route) => {
      const file = new URL(route.request().url()).pathname.slice(1);
      route.fulfill({ path: join(process.env.ASSETS_DIR, file), contentType: types[file.split('.').pop()] });
    });
    await page.reload();
    await page.waitForSelector('#nav-music');
  }
  await page.click('#nav-music');
  await page.waitForSelector(`#playlists button.pl`, { timeout: 60000 });
  let t = Date.now();
  await page.click('#playlists button.pl');
  // The rows drawn, and how long the list they are drawn from is.
  const drawnOf = (n) => document.querySelector('#tracks li')?.getAttribute('aria-setsize') === String(n);
  await page.waitForFunction(drawnOf, TRACKS, { timeout: 120000, polling: 'raf' });
  const openMs = Date.now() - t;
  // A look at rows far down the list: scrolled there, the rows there are drawn.
  const far = Math.min(5000, Math.ceil(TRACKS / 2));
  await page.evaluate(([n, row]) => {
    const list = document.getElementById('tracks');
    window.scrollTo(0, window.scrollY + list.getBoundingClientRect().top + (list.getBoundingClientRect().height * (row - 1)) / n);
  }, [TRACKS, far]);
  // (Where it lands is an estimate: rows never drawn count as the mean height of those drawn.)
  await page.waitForFunction((row) => [...document.querySelectorAll('#tracks li')].some((li) => {
    const box = li.getBoundingClientRect();
    return Math.abs(Number(li.getAttribute('aria-posinset')) - row) < row / 10 && box.bottom > 0 && box.top < window.innerHeight;
  }), far, { timeout: 20000, polling: 'raf' });
  await page.screenshot({ path: join(SHOTS, 'bench-big-playlist.png') });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.fill('#add-form input[name=title]', 'One more');
  await page.fill('#add-form input[name=artist]', 'Someone');
  if (process.env.TRACE) await page.context().browser().startTracing(page, { path: process.env.TRACE, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline'] });
  let cdp;
  if (process.env.PROFILE) {
    cdp = await page.context().newCDPSession(page);
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await cdp.send('Profiler.start');
  }
  t = Date.now();
  await page.click('#add-form button[type=submit]');
  // (Cheap checks: a text selector over 10,000 rows costs more than drawing them.)
  await page.waitForFunction(drawnOf, TRACKS + 1, { timeout: 120000, polling: 'raf' });
  const addMs = Date.now() - t;
  if (process.env.TRACE) await page.context().browser().stopTracing();
  if (cdp) {
    const { profile } = await cdp.send('Profiler.stop');
    const self = new Map();
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const counts = new Map();
    for (const s of profile.samples) counts.set(s, (counts.get(s) || 0) + 1);
    for (const [id, c] of counts) {
      const n = byId.get(id);
      const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber}`;
      self.set(key, (self.get(key) || 0) + c);
    }
    const total = profile.samples.length;
    console.error([...self].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, c]) => `${(100 * c / total).toFixed(1)}% ${k}`).join('\n'));
  }
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  await page.waitForFunction(() => document.querySelector('#tracks li:last-child')?.textContent.includes('One more'), null, { timeout: 20000, polling: 'raf' });
  t = Date.now();
  await page.click('#tracks li:last-child button.remove');
  await page.waitForFunction(drawnOf, TRACKS, { timeout: 120000, polling: 'raf' });
  const removeMs = Date.now() - t;
  // What the server's answers take, asked from the page (3 times each, the fastest).
  const listed = JSON.parse(cli(node.home, ['playlist', 'list', '--json']));
  const [{ id }] = Array.isArray(listed) ? listed : listed.playlists;
  const served = await page.evaluate(async (id) => {
    const time = async (path) => {
      let best = Infinity;
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const r = await fetch(path, { credentials: 'same-origin' });
        await r.json();
        best = Math.min(best, performance.now() - t0);
      }
      return Math.round(best);
    };
    const base = `/api/playlists/${encodeURIComponent(id)}`;
    return { playlist_get_ms: await time(base), session_get_ms: await time(`${base}/session`) };
  }, id);
  console.log(JSON.stringify({ tracks: TRACKS, open_ms: openMs, add_ms: addMs, remove_ms: removeMs, ...served }));
} finally {
  await cleanUp();
}
