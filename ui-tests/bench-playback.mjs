// Benchmark, not a test: two members' players in real Chromium pages, on loopback.
// - play → sound: from the add and play of a track the member lacks (it is fetched, first
//   group verified) to sound on that member's page; and on the holder's own page.
// - skew: each page records (wall clock, media time) every 20 ms; at the same wall time the
//   difference of the two players' positions is the skew. Three phases of PHASE_MS each —
//   after a start, after a seek, after a pause and resume — the first second after each
//   action left out (players converge) and reported apart.
// Prints one JSON line. Env: WHATNEXT_BIN, CHROMIUM, PHASE_MS (default 20000).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir, newHome, toneWav, startNode, login, cleanUp, sleep } from './harness.mjs';

const PHASE_MS = Number(process.env.PHASE_MS || 20000);
const SETTLE_MS = 1000;

const quantiles = (values) => {
  const v = [...values].sort((x, y) => x - y);
  const at = (q) => (v.length ? Math.round(v[Math.min(v.length - 1, Math.round((v.length - 1) * q))] * 10) / 10 : null);
  return { samples: v.length, p50: at(0.5), p95: at(0.95), max: at(1) };
};

/** Starts a sampler in the page: [wall ms, media ms, paused] every 20 ms. */
const startSampling = (page) => page.evaluate(() => {
  window.benchSamples = [];
  clearInterval(window.benchTimer);
  window.benchTimer = setInterval(() => {
    const audio = document.getElementById('np-audio');
    window.benchSamples.push([Date.now(), audio.currentTime * 1000, audio.paused]);
  }, 20);
});
const takeSamples = (page) => page.evaluate(() => window.benchSamples.splice(0));

/** Skews at the holder's samples, each against the member's sample nearest in time (≤ 15 ms). */
function skews(holder, member, from) {
  const out = [];
  let j = 0;
  for (const [t, pos, paused] of holder) {
    if (t < from || paused) continue;
    while (j + 1 < member.length && Math.abs(member[j + 1][0] - t) <= Math.abs(member[j][0] - t)) j++;
    const [u, other, otherPaused] = member[j] || [];
    if (u === undefined || otherPaused || Math.abs(u - t) > 15) continue;
    // Both positions brought to the same instant t (media time moves at 1 ms per ms).
    out.push(Math.abs(pos - (other + (t - u))));
  }
  return out;
}

async function phase(pages, label, act) {
  await act();
  const at = Date.now();
  await Promise.all(pages.map(startSampling));
  await sleep(PHASE_MS);
  const [h, m] = await Promise.all(pages.map(takeSamples));
  return { label, settled: skews(h, m, at + SETTLE_MS), converging: skews(h, m, 0).slice(0, Math.round(SETTLE_MS / 20)) };
}

async function main() {
  const music = tempDir('music');
  writeFileSync(join(music, 'Bench - Long Tone.wav'), toneWav(150));
  const holderNode = await startNode('holder', newHome('holder', music));
  cli(holderNode.home, ['library', 'scan', '--json']);
  const id = JSON.parse(cli(holderNode.home, ['playlist', 'create', 'Bench', '--json'])).id;
  const link = JSON.parse(cli(holderNode.home, ['playlist', 'share', id, '--json'])).link;
  const memberNode = await startNode('member');
  cli(memberNode.home, ['open', '--wait', '--timeout', '20', link]);
  const pages = [await login(holderNode), await login(memberNode)];
  for (const page of pages) {
    await page.waitForSelector('#playlists button.pl:text("Bench")', { timeout: 15000 });
    await page.click('#playlists button.pl:text("Bench")');
  }
  const playing = (page) => page.waitForFunction(() => {
    const audio = document.getElementById('np-audio');
    return audio.getAttribute('src') && !audio.paused && audio.currentTime > 0 ? Date.now() : false;
  }, null, { timeout: 60000, polling: 5 }).then((h) => h.jsonValue());

  // The member has never had the file: it is fetched after the add, played at the instant.
  const t0 = Date.now();
  cli(holderNode.home, ['playlist', 'add', id, '--from-library', 'long tone']);
  cli(holderNode.home, ['session', 'play', id]);
  const [holderSound, memberSound] = await Promise.all(pages.map(playing));

  const phases = [];
  phases.push(await phase(pages, 'start', async () => {}));
  phases.push(await phase(pages, 'seek', async () => cli(holderNode.home, ['session', 'seek', id, '30000'])));
  phases.push(await phase(pages, 'pause_resume', async () => {
    cli(holderNode.home, ['session', 'pause', id]);
    await sleep(2000);
    cli(holderNode.home, ['session', 'resume', id]);
  }));
  const settled = phases.flatMap((p) => p.settled);
  console.log(JSON.stringify({
    add_play_to_sound_member_ms: memberSound - t0,
    add_play_to_sound_holder_ms: holderSound - t0,
    phase_ms: PHASE_MS,
    skew_ms: quantiles(settled),
    by_phase: Object.fromEntries(phases.map((p) => [p.label, quantiles(p.settled)])),
    converging_ms: quantiles(phases.flatMap((p) => p.converging)),
  }));
}

try {
  await main();
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
