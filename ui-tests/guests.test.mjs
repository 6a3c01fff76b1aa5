// Guests from a phone, in real Chromium at a phone's size: the host opens a guest page in
// its view, three guests open its link (the PIN in the fragment), give a name, add songs,
// vote and react; the other member's CLI sees each edit as the guest's.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pageErrors, cli, startNode, launchBrowser, cleanUp, login, accessibility, sleep, diagnosed, SHOTS } from './harness.mjs';

after(cleanUp);

const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };

/** A phone's page of the guest link, with its own cookies. */
async function phone(url, name) {
  const browser = await launchBrowser();
  const context = await browser.newContext(PHONE);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`guest ${name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && m.text().includes('Content Security Policy')) pageErrors.push(`guest ${name}: ${m.text()}`);
  });
  await page.goto(url);
  return page;
}

test('three guests join from a phone with the PIN, add, vote and react', { timeout: 120000 }, diagnosed(async () => {
  mkdirSync(SHOTS, { recursive: true });
  const a = await startNode('host');
  const b = await startNode('member');
  cli(a.home, ['config', 'set', 'display-name', 'Ann']);
  cli(b.home, ['config', 'set', 'display-name', 'Bea']);
  const id = JSON.parse(cli(a.home, ['playlist', 'create', 'Garden party', '--json'])).id;
  const link = JSON.parse(cli(a.home, ['playlist', 'share', id, '--json'])).link;
  cli(b.home, ['open', '--wait', '--timeout', '20', link]);
  cli(a.home, ['playlist', 'add', id, '--title', 'Opening tune', '--artist', 'Ann']);

  // The host opens the guest page from the view: a QR code, the address and the PIN.
  const host = await login(a);
  await host.click('#playlists button.pl:text("Garden party")');
  await host.waitForSelector('#playlist:not([hidden])');
  await host.click('#guests-panel summary');
  await host.click('#guests-on');
  await host.waitForFunction(() => document.getElementById('guests-url').getAttribute('href')?.includes('#pin='));
  const url = await host.getAttribute('#guests-url', 'href');
  const pin = await host.textContent('#guests-pin');
  assert.match(pin, /^\d{6}$/);
  await host.waitForFunction(() => document.getElementById('guests-qr').naturalWidth > 0);
  await host.locator('#guests-panel').screenshot({ path: join(SHOTS, 'host-guests-panel.png') });

  // Three phones: the link carries the PIN, so each only types a name.
  const guests = [];
  for (const name of ['Dee', 'Eli', 'Fay']) {
    const page = await phone(url, name);
    await page.waitForSelector('#join:not([hidden])');
    assert.equal(await page.isVisible('#join-pin'), false, 'the PIN came with the link');
    if (name === 'Dee') await page.screenshot({ path: join(SHOTS, 'guest-join-390.png') });
    await page.fill('#join-name', name);
    await page.click('#join-form button[type=submit]');
    await page.waitForSelector('#room:not([hidden])');
    await page.waitForFunction(() => document.getElementById('live').textContent === 'live');
    assert.equal(new URL(page.url()).hash, '', 'the PIN is off the address bar once in');
    guests.push({ name, page });
  }
  const [dee, eli, fay] = guests;
  // The host's list shows them.
  await host.waitForFunction(() => document.querySelectorAll('#guests-list li').length === 3, null, { timeout: 10000 });

  // Each adds a song; the room votes; Fay reacts.
  cli(a.home, ['session', 'mode', id, 'vote']);
  for (const { name, page } of [dee, eli]) {
    await page.fill('#add-title', `${name}'s pick`);
    await page.fill('#add-artist', 'The Band');
    await page.click('#add-form button[type=submit]');
    await page.waitForFunction((n) => document.getElementById('add-result').textContent.includes(`${n}'s pick`), name);
  }
  await fay.page.waitForSelector('#up-next li:has-text("Eli\'s pick") button[aria-label="Vote Eli\'s pick up"]', { timeout: 10000 });
  await fay.page.click('#up-next li:has-text("Eli\'s pick") button[aria-label="Vote Eli\'s pick up"]');
  await dee.page.waitForSelector('#up-next li:nth-child(1):has-text("Eli\'s pick")', { timeout: 10000 });
  await fay.page.click('button[aria-label="React 🎉"]');
  await dee.page.waitForFunction(() => document.getElementById('reactions').textContent.includes('🎉 Fay'), null, { timeout: 10000 });
  await dee.page.waitForFunction(() => [...document.querySelectorAll('#people li')].filter((li) => li.textContent.includes('guest')).length === 3);
  await dee.page.screenshot({ path: join(SHOTS, 'guest-room-390.png') });
  await dee.page.screenshot({ path: join(SHOTS, 'guest-room-390-page.png'), fullPage: true });
  const { lines, severe } = await accessibility(dee.page);
  console.log(`axe guest page: ${lines.length} findings${lines.length ? `\n  ${lines.join('\n  ')}` : ''}`);
  assert.deepEqual(severe, [], 'no serious or critical accessibility finding on the guest page');

  // The other member's CLI: each song is its guest's, the vote counts, the guests are marked.
  const deadline = Date.now() + 20000;
  for (;;) {
    const playlist = JSON.parse(cli(b.home, ['playlist', 'show', id, '--json']));
    const session = JSON.parse(cli(b.home, ['session', 'now', id, '--json']));
    const byGuest = ['Dee', 'Eli'].every((n) => playlist.tracks.some((t) => t.title === `${n}'s pick` && t.added_by.display_name === n));
    const voted = session.up_next[0]?.title === "Eli's pick" && session.up_next[0]?.score === 1;
    const marked = playlist.members.filter((m) => m.guest).map((m) => m.display_name).sort().join(',') === 'Dee,Eli,Fay';
    if (byGuest && voted && marked) break;
    assert.ok(Date.now() < deadline, `B sees the guests' edits: ${JSON.stringify({ byGuest, voted, marked })}`);
    await sleep(200);
  }

  // A member's edit → the guest page, over 20 edits (printed, not asserted).
  const delays = [];
  for (let i = 1; i <= 20; i++) {
    const t0 = Date.now();
    cli(b.home, ['playlist', 'add', id, '--title', `member song ${i}`]);
    await dee.page.waitForFunction((n) => [...document.querySelectorAll('#up-next li')].some((li) => li.textContent.includes(`member song ${n}`)), i, { timeout: 10000 });
    delays.push(Date.now() - t0);
  }
  delays.sort((x, y) => x - y);
  const at = (q) => delays[Math.min(delays.length - 1, Math.round((delays.length - 1) * q))];
  console.log(`member edit → guest page (loopback, incl. the CLI's start): p50 ${at(0.5)} ms, p99 ${at(0.99)} ms`);

  // The guest page's weight and first paint, fresh.
  const fresh = await phone(url, 'fresh');
  await fresh.waitForSelector('#join:not([hidden])');
  const weight = await fresh.evaluate(() => {
    const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    const paint = performance.getEntriesByName('first-contentful-paint')[0];
    return {
      bytes: entries.reduce((sum, e) => sum + (e.encodedBodySize || 0), 0),
      firstPaintMs: paint ? Math.round(paint.startTime) : null,
    };
  });
  console.log(`guest page weight ${weight.bytes} bytes, first contentful paint ${weight.firstPaintMs} ms`);
  assert.ok(weight.bytes < 50 * 1024, `the guest page loads in under 50 KB (${weight.bytes})`);

  // The host closes the page: the guests are told, at once.
  await host.click('#guests-off');
  await dee.page.waitForSelector('#join:not([hidden])', { timeout: 10000 });
  assert.match(await dee.page.textContent('#join-result'), /no longer in this session/);
  assert.deepEqual(pageErrors, [], 'no script error, nothing the CSP blocked');
}));
