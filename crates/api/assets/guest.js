// The guest page: a phone joins a listening session with the host's PIN and a name, then
// follows it live through one long poll (`GET state?since=V`) and adds, votes, skips, reacts
// and comments through the guest API. Nothing here reaches the host's own API: this page
// is served on a port of its own, with its own cookie. All text goes in through textContent.
// @ts-check

/** @typedef {import('./api').GuestState} GuestState */

const base = location.pathname.replace(/\/+$/, '');
const code = base.split('/').pop() || '';
const fragment = new URLSearchParams(location.hash.slice(1));

/** The link's key (`k=` in the fragment, which browsers never send): every request is
 *  signed with it, so a relay that carries them can neither make nor replay one. Kept in
 *  this browser for this page, as the fragment leaves the address bar once in. */
const linkKey = (() => {
  const fromLink = fragment.get('k');
  try {
    if (fromLink) localStorage.setItem(`wn-k-${code}`, fromLink);
    return fromLink || localStorage.getItem(`wn-k-${code}`) || '';
  } catch { return fromLink || ''; }
})();

// SHA-256 and HMAC (RFC 2104) by hand: WebCrypto exists only on https pages, and a guest
// page on a LAN or a relay is plain http.
const K256 = Uint32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

/** @param {Uint8Array} data @returns {Uint8Array} */
function sha256(data) {
  const length = data.length;
  const padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 4, length * 8);
  view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
  const h = Uint32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (/** @type {number} */ x, /** @type {number} */ n) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  h.forEach((word, i) => outView.setUint32(i * 4, word));
  return out;
}

/** @param {Uint8Array} key @param {Uint8Array} message */
function hmacSha256(key, message) {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? sha256(key) : key);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) { inner[i] = block[i] ^ 0x36; outer[i] = block[i] ^ 0x5c; }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

/** @param {Uint8Array} bytes */
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
/** @param {string} text */
const unhex = (text) => Uint8Array.from(text.match(/../g) || [], (b) => parseInt(b, 16));

/** Who this page signs as: its guest's peer id, once in. */
let me = '';

/** The `x-wn-sig` header of a request, when this page has its link's key.
 *  @param {string} method @param {string} path @param {string} body */
function signature(method, path, body) {
  if (!/^[0-9a-f]{32}$/.test(linkKey)) return null;
  const encoder = new TextEncoder();
  const at = Date.now();
  const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
  const message = [code, me, at, nonce, method, path, hex(sha256(encoder.encode(body)))].join('\n');
  return `${at}.${nonce}.${hex(hmacSha256(unhex(linkKey), encoder.encode(message)))}`;
}
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
  const verb = method || (body === undefined ? 'GET' : 'POST');
  const text = body === undefined ? '' : JSON.stringify(body);
  /** @type {Record<string, string>} */
  const headers = body === undefined ? {} : { 'Content-Type': 'application/json' };
  const signed = signature(verb, `${base}/${path}`, text);
  if (signed) headers['x-wn-sig'] = signed;
  const response = await fetch(`${base}/${path}`, {
    method: verb,
    headers,
    body: body === undefined ? undefined : text,
    credentials: 'same-origin',
  });
  const answer = await response.text();
  /** @type {any} */
  let json = null;
  try { json = answer ? JSON.parse(answer) : null; } catch { /* not JSON */ }
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
  // The host lists the first hundred (a phone drawing thousands at every change would stall).
  const more = s.up_next_total - s.up_next.length;
  $('up-next').replaceChildren(...s.up_next.map((u) => el('li', { 'data-track': u.track_id },
    el('span', { class: 'what' }, el('strong', {}, u.title), el('small', {}, [u.artists.join(', '), `added by ${who(u.added_by)}`].filter(Boolean).join(' · '))),
    ...(voting ? [
      el('button', { type: 'button', class: `ghost${u.my_vote > 0 ? ' voted' : ''}`, 'aria-pressed': String(u.my_vote > 0), 'aria-label': `Vote ${u.title} up`, onclick: () => vote(u.track_id, u.my_vote > 0 ? 'clear' : 'up') }, '▲'),
      el('span', { class: 'score', 'aria-label': `score ${u.score}` }, String(u.score)),
      el('button', { type: 'button', class: `ghost${u.my_vote < 0 ? ' voted' : ''}`, 'aria-pressed': String(u.my_vote < 0), 'aria-label': `Vote ${u.title} down`, onclick: () => vote(u.track_id, u.my_vote < 0 ? 'clear' : 'down') }, '▼'),
    ] : []))), ...(more > 0 ? [el('li', { class: 'more' }, `and ${more.toLocaleString()} more`)] : []));
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
  // With the link's key, the PIN need not be typed, nor sent.
  const pin = fragment.get('pin') || (linkKey ? '-' : '');
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
      const joined = /** @type {import('./api').GuestJoinReply} */ (await call('join', { pin: linkKey ? '' : pin, name }));
      me = joined.peer_id;
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
    me = info.me || '';
    if (info.joined) enter();
    else showJoin();
  } catch (e) {
    showJoin(/** @type {any} */ (e).status === 404 ? 'This guest page is closed. Ask the host for a new link.' : message(e));
  }
}

start();
