// The guest page: a phone joins a listening session with the host's PIN and a name, then
// follows it live through one long poll (`GET state?since=V`) and adds, votes, skips, reacts
// and comments through the guest API. Nothing here reaches the host's own API: this page
// is served on a port of its own, with its own cookie. All text goes in through textContent.
// @ts-check

/** @typedef {import('./api').GuestState} GuestState */

const base = location.pathname.replace(/\/+$/, '');
/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
/** @param {string} id */
const $input = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));

/** @type {GuestState | null} */
let shown = null;
let shownAt = 0;

/**
 * @param {string} path
 * @param {unknown} [body]
 * @param {string} [method]
 */
async function call(path, body, method) {
  const response = await fetch(`${base}/${path}`, {
    method: method || (body === undefined ? 'GET' : 'POST'),
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const text = await response.text();
  /** @type {any} */
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!response.ok) {
    const error = new Error((json && json.error) || `the host answered ${response.status}`);
    /** @type {any} */ (error).status = response.status;
    throw error;
  }
  return json;
}

/**
 * @param {string} tag
 * @param {Record<string, any>} [props]
 * @param {...(Node | string)} children
 */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** @param {number} ms */
const clock = (ms) => {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

/** @param {unknown} e */
const message = (e) => (e instanceof Error ? e.message : String(e));

function tick() {
  const np = shown?.now_playing;
  if (!np) return;
  const position = np.paused ? np.position_ms : np.position_ms + (Date.now() - shownAt);
  const duration = np.duration_ms;
  const bar = /** @type {HTMLProgressElement} */ ($('np-progress'));
  bar.value = duration ? Math.min(1, position / duration) : 0;
  $('np-time').textContent = duration ? `${clock(Math.min(position, duration))} / ${clock(duration)}` : clock(position);
}

/** @param {GuestState} s */
function render(s) {
  shown = s;
  shownAt = Date.now();
  document.title = `${s.playlist} — WhatNext`;
  $('me').textContent = s.my_name;
  /** @type {Record<string, string>} */
  const names = {};
  for (const p of s.people) names[p.peer_id] = p.name;
  /** @param {string | null | undefined} peer */
  const who = (peer) => (!peer ? 'nobody' : peer === s.me ? 'you' : names[peer] || 'someone');
  const np = s.now_playing;
  $('np-none').hidden = !!np;
  $('np-track').hidden = !np;
  if (np) {
    $('np-title').textContent = np.title;
    $('np-artist').textContent = np.artists.join(', ');
    $('skip').textContent = `Vote to skip (${s.skip.votes}/${s.skip.needed})`;
  }
  tick();
  $('turn').textContent = s.turn ? (s.turn.peer_id === s.me ? "It's your turn to add." : `${who(s.turn.peer_id)}'s turn to add.`) : '';
  $('reactions').textContent = s.reactions.slice(-6).reverse().map((r) => `${r.emoji} ${who(r.peer_id)}`).join('  ');
  const voting = s.mode === 'vote';
  $('no-next').hidden = s.up_next.length > 0;
  $('up-next').replaceChildren(...s.up_next.map((u) => el('li', { 'data-track': u.track_id },
    el('span', { class: 'what' }, el('strong', {}, u.title), el('small', {}, [u.artists.join(', '), `added by ${who(u.added_by)}`].filter(Boolean).join(' · '))),
    ...(voting ? [
      el('button', { type: 'button', class: `ghost${u.my_vote > 0 ? ' voted' : ''}`, 'aria-pressed': String(u.my_vote > 0), 'aria-label': `Vote ${u.title} up`, onclick: () => vote(u.track_id, u.my_vote > 0 ? 'clear' : 'up') }, '▲'),
      el('span', { class: 'score', 'aria-label': `score ${u.score}` }, String(u.score)),
      el('button', { type: 'button', class: `ghost${u.my_vote < 0 ? ' voted' : ''}`, 'aria-pressed': String(u.my_vote < 0), 'aria-label': `Vote ${u.title} down`, onclick: () => vote(u.track_id, u.my_vote < 0 ? 'clear' : 'down') }, '▼'),
    ] : []))));
  $('people').replaceChildren(...s.people.map((p) => el('li', {},
    el('span', { class: 'dot', 'aria-hidden': 'true' }),
    el('span', { class: 'what' }, p.peer_id === s.me ? `${p.name} (you)` : p.name, p.guest ? el('span', { class: 'mark' }, 'guest') : ''))));
  $('comments').replaceChildren(...s.comments.filter((c) => !c.deleted).slice(-30).map((c) => el('li', {},
    el('span', { class: 'what' }, el('strong', {}, c.peer_id === s.me ? 'You' : c.display_name || who(c.peer_id)), `: ${c.text}`))));
}

/** Adds a song (typed in, or a hit of the host's music); says how it went.
 *  @param {import('./api').GuestTrackRequest} track @param {string} title */
async function addTrack(track, title) {
  try {
    await call('tracks', track);
    $('add-result').textContent = `Added “${title}”.`;
    $('add-result').className = 'ok';
    return true;
  } catch (err) {
    $('add-result').textContent = message(err);
    $('add-result').className = 'bad';
    return false;
  }
}

/** @param {string} trackId @param {'up' | 'down' | 'clear'} how */
async function vote(trackId, how) {
  try { await call('vote', { track_id: trackId, vote: how }); } catch (e) { $('add-result').textContent = message(e); }
}

/** Follows the session: each answer comes as soon as something changed. */
async function follow() {
  /** @type {number | null} */
  let since = null;
  for (;;) {
    try {
      const s = /** @type {GuestState} */ (await call(since === null ? 'state' : `state?since=${since}`));
      since = s.version;
      $('live').textContent = 'live';
      $('live').className = 'badge ok';
      render(s);
    } catch (e) {
      if (/** @type {any} */ (e).status === 401 || /** @type {any} */ (e).status === 404) {
        $('room').hidden = true;
        showJoin('You are no longer in this session. Join again with the PIN.');
        return;
      }
      $('live').textContent = 'reconnecting…';
      $('live').className = 'badge bad';
      since = null;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

/** @param {string} [why] */
function showJoin(why = '') {
  $('join').hidden = false;
  $('join-result').textContent = why;
  const pin = new URLSearchParams(location.hash.slice(1)).get('pin');
  if (pin) {
    $input('join-pin').value = pin;
    $('join-pin').hidden = true;
    $('join-pin-label').hidden = true;
  }
  $input('join-name').focus();
}

function enter() {
  $('join').hidden = true;
  $('room').hidden = false;
  // The PIN has done its job: off the address bar (and out of a shared screenshot).
  if (location.hash) history.replaceState(null, '', location.pathname);
  follow();
}

function wire() {
  $('join-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $input('join-name').value.trim();
    const pin = $input('join-pin').value.trim();
    if (!pin) {
      $('join-pin').hidden = false;
      $('join-pin-label').hidden = false;
      $('join-result').textContent = 'Type the PIN the host gave you.';
      return;
    }
    try {
      await call('join', { pin, name });
      enter();
    } catch (err) {
      if (/** @type {any} */ (err).status === 401) {
        $('join-pin').hidden = false;
        $('join-pin-label').hidden = false;
      }
      $('join-result').textContent = message(err);
    }
  });
  $('add-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const title = $input('add-title').value.trim();
    const artist = $input('add-artist').value.trim();
    if (!title) return;
    if (await addTrack({ title, artists: artist ? [artist] : [] }, title)) {
      $input('add-title').value = '';
      $input('add-artist').value = '';
    }
  });
  $('search-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const q = $input('search-q').value.trim();
    if (!q) return;
    try {
      const { hits } = /** @type {import('./api').GuestLibraryReply} */ (await call(`library?q=${encodeURIComponent(q)}`));
      $('hits').replaceChildren(...hits.map((h) => el('li', {},
        el('span', { class: 'what' }, el('strong', {}, h.title), el('small', {}, [h.artists.join(', '), h.album].filter(Boolean).join(' · '))),
        el('button', { type: 'button', class: 'ghost', 'aria-label': `Add ${h.title}`, onclick: () => addTrack({ title: h.title, artists: h.artists, from_library: h.blake3 }, h.title) }, 'Add'))));
      if (!hits.length) $('hits').replaceChildren(el('li', { class: 'hint' }, `Nothing in the host's music matches “${q}”.`));
    } catch (err) { $('add-result').textContent = message(err); }
  });
  $('skip').addEventListener('click', async () => {
    try { await call('skip', {}); } catch (e) { $('add-result').textContent = message(e); }
  });
  for (const b of document.querySelectorAll('button.react')) {
    b.addEventListener('click', async () => {
      try { await call('react', { emoji: /** @type {HTMLElement} */ (b).dataset.emoji }); } catch (e) { $('add-result').textContent = message(e); }
    });
  }
  $('comment-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $input('comment-text').value.trim();
    if (!text) return;
    const playing = shown?.now_playing?.track_id;
    try {
      await call('comments', playing ? { text, track_id: playing } : { text });
      $input('comment-text').value = '';
    } catch (err) { $('add-result').textContent = message(err); }
  });
  setInterval(tick, 1000);
}

async function start() {
  wire();
  try {
    const info = await call('info');
    $('join-what').textContent = info.playlist ? `: ${info.playlist}` : '';
    if (info.joined) enter();
    else showJoin();
  } catch (e) {
    showJoin(/** @type {any} */ (e).status === 404 ? 'This guest page is closed. Ask the host for a new link.' : message(e));
  }
}

start();
