// WhatNext view: one long-poll loop on /api/state?since=V keeps every panel live; actions
// call the same JSON API as the CLI, through the typed client. All text goes in through
// textContent (no HTML from data).
// @ts-check

import * as api from './client.js';

/** @typedef {import('./api').AppState} AppState */

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
/** @param {string} id */
const $input = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));
/** @type {AppState | null} */
let state = null;
/** @type {string | null} */
let openId = null;
let openVersion = -1;
/** The open playlist as last shown (what an undo puts back). */
/** @type {import('./api').PlaylistView | null} */
let shownPlaylist = null;
/** The undo offer on screen, ended after a few seconds. */
let toastTimer = 0;
/** The link attempt last shown in the Connect panel: links clicked elsewhere show up there too. */
let shownAttempt = '';
/** The addresses the shown invite was made for: a new set (restart, new network) needs a new invite. */
let inviteAddrs = '';

/**
 * @param {string} tag
 * @param {Record<string, any>} [props]
 * @param {...(Node | string)} children
 */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    // Through the CSSOM: a style attribute would break the page's CSP (style-src 'self').
    else if (key === 'style') node.style.cssText = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

/** @param {unknown} e */
const message = (e) => (e instanceof Error ? e.message : String(e));

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {boolean} ok */
function setLive(ok) {
  const badge = $('live');
  badge.textContent = ok ? 'live' : 'reconnecting…';
  badge.className = `badge ${ok ? 'live' : 'down'}`;
}

/**
 * @param {HTMLElement} node
 * @param {HTMLElement[]} items
 * @param {HTMLElement} [empty]
 */
function replaceChildren(node, items, empty) {
  node.replaceChildren(...items);
  if (empty) empty.hidden = items.length > 0;
}

/**
 * Makes `items` the children of `node`, in order, moving and removing only what differs:
 * a long list where one row changed is one insertion, not every row taken out and put back
 * (which makes the browser style every row again: seconds at 10,000 tracks).
 * @param {HTMLElement} node @param {HTMLElement[]} items
 */
function patchChildren(node, items) {
  const keep = new Set(items);
  let current = node.firstElementChild;
  for (const item of items) {
    while (current && !keep.has(/** @type {HTMLElement} */ (current))) {
      const next = current.nextElementSibling;
      current.remove();
      current = next;
    }
    if (current === item) current = current.nextElementSibling;
    else node.insertBefore(item, current);
  }
  while (current) {
    const next = current.nextElementSibling;
    current.remove();
    current = next;
  }
}

/** Where the track row holding `node` is in the list now (-1: none).
 *  @param {EventTarget | null} node */
function rowIndex(node) {
  const row = /** @type {HTMLElement | null} */ (node)?.closest('#tracks li');
  return row ? drawnRows.first + [...$('tracks').children].indexOf(row) : -1;
}

/** @param {AppState} s */
function renderNode(s) {
  $('peer-id').textContent = s.peer_id;
  $('node-state').textContent = s.node;
  $('node-state').className = s.node === 'running' ? 'ok' : (s.node === 'failed' ? 'bad' : '');
  replaceChildren($('listen'), s.listen_addrs.map((a) => el('li', {}, el('code', {}, a))));
  const pid = s.service.pid === null ? 'not running' : `pid ${s.service.pid}`;
  const lastExit = s.service.last_exit ? ` (the last: ${s.service.last_exit})` : '';
  $('service').textContent = `${pid}, ${s.service.restarts} restart${s.service.restarts === 1 ? '' : 's'}${lastExit}`;
  const nat = { public: 'yes, directly', private: 'behind a NAT', unknown: 'not known yet' }[s.nat] || s.nat;
  const relays = s.relay_reservations.length;
  $('reach').textContent = relays ? `${nat}; through ${relays} relay${relays === 1 ? '' : 's'} too` : nat;
  $('last-error').textContent = s.last_error || 'none';
  $('last-error').className = s.last_error ? 'bad' : '';
}

/** @param {AppState} s */
function renderPeers(s) {
  const items = s.connections.map((c) => {
    const rtt = c.rtt_ms === null ? 'measuring…' : `${c.rtt_ms.toFixed(2)} ms`;
    const since = new Date(c.since_ms).toLocaleTimeString();
    const name = s.people[c.peer_id];
    return el('li', { 'data-peer': c.peer_id, title: c.peer_id },
      name ? el('strong', {}, name) : el('code', {}, c.peer_id),
      ` — ${c.transport}, ${c.relayed ? 'relayed' : 'direct'}, ${c.direction}, rtt ${rtt}, since ${since}`);
  });
  replaceChildren($('peers'), items, $('no-peers'));
}

/** @param {AppState} s */
function renderPlaylists(s) {
  // Many playlists have a find field (by name, case and accents aside); it stays while
  // it holds something.
  const find = $input('playlist-find');
  const words = wordsOf(find.value);
  find.hidden = s.playlists.length <= FIND_FROM && !words.length;
  const shown = words.length ? s.playlists.filter((p) => { const name = folded(p.name); return words.every((w) => name.includes(w)); }) : s.playlists;
  $('no-playlist-match').hidden = shown.length > 0 || !words.length;
  $('no-playlist-match').textContent = shown.length || !words.length ? '' : `No playlist is called anything like “${find.value.trim()}”.`;
  $('no-playlists').hidden = s.playlists.length > 0;
  // A row that shows the same as before is kept (a home of a thousand playlists is redrawn
  // at every change of any of them).
  /** @type {Map<string, HTMLElement>} */
  const drawn = new Map([...$('playlists').children].map((li) => [/** @type {HTMLElement} */ (li).dataset.shows || '', /** @type {HTMLElement} */ (li)]));
  patchChildren($('playlists'), shown.map((p) => {
    const shows = JSON.stringify([p.id, p.name, p.track_count, p.damaged, p.id === openId]);
    return drawn.get(shows) ?? el('li', { class: p.id === openId ? 'current' : '', 'data-shows': shows },
      tile(p.name, 'small'),
      el('span', { class: 'what' },
        el('button', { type: 'button', class: 'pl', onclick: () => openPlaylist(p.id) }, p.name),
        el('br'),
        el('span', { class: 'by' }, `${p.track_count} track${p.track_count === 1 ? '' : 's'}${p.damaged ? ' · damaged, being repaired' : ''}`)));
  }));
}

/** A short notice when the store found damage; `whatnext doctor` has the details. @param {AppState} s */
function renderStoreNotice(s) {
  let notice = document.getElementById('store-notice');
  if (!notice) {
    notice = el('p', { id: 'store-notice', class: 'bad', role: 'status' });
    $('playlists').before(notice);
  }
  const open = (s.store_problems || []).filter((p) => !p.what.includes('since restored'));
  notice.hidden = open.length === 0;
  notice.textContent = open.length === 0 ? ''
    : `${open.length === 1 ? 'A playlist was' : `${open.length} playlists were`} found damaged on disk; nothing was deleted. `
      + 'Run `whatnext doctor` to see what happened and where the pieces are kept.';
}

/** @param {AppState} s */
function renderLastLink(s) {
  const attempt = s.link_attempts[s.link_attempts.length - 1];
  if (!attempt) return;
  const key = `${attempt.id}:${attempt.status}:${s.started_at_ms}`;
  if (key === shownAttempt) return;
  shownAttempt = key;
  const raw = [attempt.error, ...attempt.steps.map((step) => `${step.method}: ${step.ok ? 'ok' : step.error || 'failed'}`)]
    .filter(Boolean).join('\n');
  const failed = attempt.status === 'failed' || attempt.status === 'invalid';
  say(explain(attempt, s), failed ? raw : '', attempt.status === 'connected' ? 'ok' : (failed ? 'bad' : ''));
}

/** The Connect box's answer: a sentence, and the raw reasons behind a Details toggle.
 *  @param {string} sentence @param {string} raw @param {string} className */
function say(sentence, raw, className) {
  const out = $('connect-result');
  const details = raw ? [el('details', {}, el('summary', {}, 'Details'), el('pre', {}, raw))] : [];
  replaceChildren(out, [el('span', { class: 'sentence' }, sentence), ...details]);
  out.className = className;
}

/** A failure's raw text, as a sentence with a next step.
 *  @param {string} raw @param {string} who */
function failureSentence(raw, who) {
  const text = raw.toLowerCase();
  if (text.includes('wrong key')) return "The link's key is no longer valid — ask for a new link.";
  if (text.includes('revoked') || text.includes('taken out')) return 'You were taken out of this playlist; ask its owner for a new link.';
  if (text.includes('own peer id') || text.includes('yourself')) return 'That link is your own: send it to a friend instead.';
  if (text.includes('connection refused') || text.includes('os error 111')) {
    return `Could not reach ${who}: nothing answers at the addresses in the link. Their WhatNext may be closed — ask them to open it and send a fresh link.`;
  }
  if (text.includes('timed out') || text.includes('timeout')) {
    return `No answer from ${who}: a firewall or router may be in the way. Try again when you are both online; the Connection page says how reachable you are.`;
  }
  if (text.includes('not found') || text.includes('no address')) {
    return `Could not find ${who} on the network. Ask for a fresh link while their WhatNext is open.`;
  }
  if (text.includes('multiaddr') || text.includes('not a valid') || text.includes('invalid')) {
    return 'That is not a WhatNext link. A link starts with whtnxt://connect/ — ask your friend to copy it again.';
  }
  return `Could not connect to ${who}. Ask them to check that WhatNext is open, and to send a fresh link.`;
}

/**
 * What happened to a link, in a sentence a person can act on; the raw reasons stay in the
 * Details toggle.
 * @param {import('./api').LinkAttempt} attempt
 * @param {AppState} s
 */
function explain(attempt, s) {
  const who = attempt.peer_id ? (s.people[attempt.peer_id] || `${attempt.peer_id.slice(-4)}'s WhatNext`) : 'your friend';
  if (attempt.status === 'pending') return `Opening the link to ${who}…`;
  if (attempt.status === 'connected') {
    const joined = attempt.session && s.playlists.find((p) => p.id === attempt.session);
    if (!joined) return `Connected to ${who}.`;
    const online = (s.sessions.find((x) => x.id === joined.id)?.connected_members || [])
      .map((peer) => s.people[peer]).filter(Boolean);
    const tracks = `${joined.track_count} track${joined.track_count === 1 ? '' : 's'}`;
    return `Joined ${joined.name} — ${tracks}${online.length ? `, with ${andList(online)}` : ''}.`;
  }
  if (attempt.status === 'invalid') {
    return 'That is not a WhatNext link. A link starts with whtnxt://connect/ — ask your friend to copy it again.';
  }
  const raw = [attempt.error || '', ...attempt.steps.map((step) => step.error || '')].join(' ');
  if (attempt.needs_discovery && !raw.toLowerCase().includes('wrong key')) {
    return `Could not find ${who} on the network. Ask for a fresh link while their WhatNext is open.`;
  }
  return failureSentence(raw, who);
}

/** "Ann", "Ann and Bea", "Ann, Bea and Cid". @param {string[]} names */
const andList = (names) => (names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`);

/** A stable hue for a text (a playlist's or an album's name). @param {string} text */
function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + (ch.codePointAt(0) || 0)) % 360;
  return h;
}

/** A drawn cover for what has no picture: its initial on a colour of its own.
 *  @param {string} text @param {string} [size] */
function tile(text, size = '') {
  const initial = [...(text.trim() || '♪')][0].toUpperCase();
  return el('span', { class: `tile ${size}`, 'aria-hidden': 'true', style: `--hue: ${hue(text)}` }, initial);
}

/** What we know of each file's cover picture: 'yes' (served), 'no' (none), or loading. */
/** @type {Map<string, 'yes' | 'no' | 'loading'>} */
const covers = new Map();

/** A picture or a tile for one track's album.
 *  @param {{ title: string, artists: string[], album?: string | null, content?: import('./api').Content }} t */
function artwork(t) {
  const key = t.album || t.artists[0] || t.title;
  const b3 = t.content?.blake3;
  if (!b3) return tile(key);
  const known = covers.get(b3);
  if (known === 'yes') return el('img', { src: `/media/${b3}/cover`, alt: '', class: 'tile' });
  if (known === undefined) {
    covers.set(b3, 'loading');
    const probe = new Image();
    probe.onload = () => { covers.set(b3, 'yes'); redrawCovers(); };
    probe.onerror = () => covers.set(b3, 'no');
    probe.src = `/media/${b3}/cover`;
  }
  return tile(key);
}

/** The covers as they stand: a picture that loaded since is drawn in. */
function redrawCovers() {
  if (shownPlaylist) drawCover(shownPlaylist);
  const np = shownSession?.view.now_playing;
  replaceChildren($('np-cover'), np ? [artwork(np)] : []);
}

/** The open playlist's cover: four albums' artwork in a square when it has four, else the
 *  first one's, else a tile of its name. @param {import('./api').PlaylistView} p */
function drawCover(p) {
  /** @type {Map<string, import('./api').Track>} */
  const albums = new Map();
  for (const t of p.tracks) {
    const key = t.album || t.artists[0] || t.title;
    const seen = albums.get(key);
    if (!seen || (!seen.content && t.content)) albums.set(key, t);
  }
  const picks = [...albums.values()];
  const cover = $('cover');
  cover.classList.toggle('mosaic', picks.length >= 4);
  if (picks.length >= 4) {
    replaceChildren(cover, picks.slice(0, 4).map(artwork));
    return;
  }
  // Fewer albums: the first real picture, else the playlist's own tile (as in the list).
  const drawn = picks.map(artwork);
  replaceChildren(cover, [drawn.find((d) => d.tagName === 'IMG') || tile(p.name)]);
}

/** Who we are to friends: asked once (the account's name until then), changeable.
 *  @param {AppState} s */
function renderName(s) {
  $('me-name').textContent = s.display_name || 'you';
  const welcome = $('welcome');
  if (!s.display_name_chosen && welcome.hidden && !welcome.dataset.dismissed) {
    $input('welcome-name').value = s.display_name;
    welcome.hidden = false;
  } else if (s.display_name_chosen) welcome.hidden = true;
}

/** @param {string} name */
async function setName(name) {
  try {
    await api.setConfig({ display_name: name });
    $('welcome').hidden = true;
    $('welcome').dataset.dismissed = 'yes';
  } catch (e) { $('playlist-result').textContent = message(e); }
}

/** @param {AppState} s */
function render(s) {
  state = s;
  renderName(s);
  renderNode(s);
  renderPeers(s);
  renderPlaylists(s);
  renderStoreNotice(s);
  renderLastLink(s);
  const addrs = [...s.listen_addrs, ...s.external_addrs].join(' ');
  if (s.node === 'running' && addrs !== inviteAddrs) {
    inviteAddrs = addrs;
    loadInvite();
  }
  renderTransfer(s);
  renderLibraryNote(s);
  $('raw-state').textContent = JSON.stringify(s, null, 2);
  if (/** @type {HTMLDetailsElement} */ ($('debug')).open) refreshIpcLog();
  if (openId && openVersion !== s.version) refreshPlaylist();
}

/** The music (playlists, the open one, now playing) or the connection's machinery.
 *  @param {'music' | 'connection'} name */
function showPage(name) {
  $('page-music').hidden = name !== 'music';
  $('page-connection').hidden = name !== 'connection';
  for (const [tab, page] of /** @type {const} */ ([['nav-music', 'music'], ['nav-connection', 'connection']])) {
    if (page === name) $(tab).setAttribute('aria-current', 'page');
    else $(tab).removeAttribute('aria-current');
  }
}

/** @param {string} id */
async function openPlaylist(id) {
  openId = id;
  openVersion = -1;
  if (id !== shownPlaylist?.id) {
    shownSession = null;
    // Another playlist's rows are not this one's: it starts from its top.
    $('tracks').replaceChildren();
    Object.assign(drawnRows, { first: 0, last: 0 });
    forgetRowHeights();
    findText.clear();
    $input('track-find').value = '';
    findWords = [];
  }
  hideToast();
  showPage('music');
  await refreshPlaylist();
  $('playlist').hidden = false;
  $('pick').hidden = true;
  $('page-music').classList.add('open');
  $('pl-name').focus();
}

/** Back to the list (on a phone the open playlist takes the whole screen). */
function closePlaylist() {
  openId = null;
  shownSession = null;
  shownPlaylist = null;
  $('playlist').hidden = true;
  $('pick').hidden = false;
  $('page-music').classList.remove('open');
  const audio = /** @type {HTMLAudioElement} */ ($('np-audio'));
  if (!audio.paused) audio.pause();
}

async function refreshPlaylist() {
  if (!openId) return;
  const id = openId;
  const version = state ? state.version : 0;
  // Both asked at once (each costs a round trip); the tracks are drawn as soon as the
  // playlist is here, with the votes and now playing last known, then again if the session
  // changed those.
  const session = api.session(id).catch((e) => {
    $('session-result').textContent = message(e);
    return null;
  });
  /** @type {import('./api').PlaylistView} */
  let p;
  try {
    p = await api.showPlaylist(id);
  } catch (e) {
    $('playlist-result').textContent = message(e);
    return;
  }
  if (id !== openId) return; // another one was opened meanwhile
  openVersion = version;
  shownPlaylist = p;
  /** @type {Record<string, string>} */
  const names = {};
  for (const m of p.members || []) names[m.peer_id] = m.display_name || m.peer_id.slice(0, 12);
  memberNames = names;
  const before = shownSession?.view ?? null;
  renderPlaylistHead(p);
  renderTracks(p, before);
  const v = await session;
  if (!v || id !== openId) return;
  renderSession(v, names);
  if (rowFacts(v) !== rowFacts(before)) renderTracks(p, v);
  refreshGuests();
}

/** What of a session the track rows show: now playing, and the votes when the room votes.
 *  @param {import('./api').SessionView | null} v */
const rowFacts = (v) => (v ? JSON.stringify([v.now_playing?.track_id, v.playback_owner === v.me, v.mode === 'vote' && v.up_next.map((u) => [u.track_id, u.score, u.my_vote])]) : '');

/** Name, cover, who is in it, what it holds. @param {import('./api').PlaylistView} p */
function renderPlaylistHead(p) {
  $('pl-name').textContent = p.name;
  // The name, as far as a file's name may hold it.
  const file = p.name.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, ' ').trim() || 'playlist';
  for (const [format, extension] of [['m3u', 'm3u'], ['xspf', 'xspf'], ['md', 'md']]) {
    const link = /** @type {HTMLAnchorElement} */ ($(`export-${format}`));
    link.href = api.exportUrl(p.id, format);
    link.download = `${file}.${extension}`;
  }
  $('pl-kind').textContent = p.shared ? 'Shared playlist' : 'Playlist';
  const total = p.tracks.reduce((sum, t) => sum + (t.duration_ms || 0), 0);
  const length = total >= 3600000 ? `${Math.floor(total / 3600000)} h ${Math.round((total % 3600000) / 60000)} min`
    : total ? `${Math.max(1, Math.round(total / 60000))} min` : '';
  const count = `${p.tracks.length} track${p.tracks.length === 1 ? '' : 's'}`;
  $('pl-meta').textContent = [`by ${p.owner.display_name || 'its owner'}`, length ? `${count}, ${length}` : count, p.description]
    .filter(Boolean).join(' · ');
  drawCover(p);
  replaceChildren($('members'), (p.members || []).map((m) => el('li', { title: m.peer_id },
    el('span', { class: `dot ${m.online ? 'on' : ''}`, 'aria-hidden': 'true' }),
    `${m.display_name || m.peer_id.slice(0, 12)}${m.owner ? ' (owner)' : ''}${m.guest ? ' (guest)' : ''}`,
    el('span', { class: 'sr-only' }, m.online ? ', online' : ', offline'))));
}

/** The words asked for in the playlist's find field, folded (see {@link folded}): a track
 *  is shown when each is in its title, artists, album or who added it. None: every track. */
let findWords = /** @type {string[]} */ ([]);

/** Songs of your music a search shows (the most likely first). */
const LIBRARY_HITS_SHOWN = 8;

/** Songs found at most for "Add all" (an album, a few; not half the library by mistake). */
const ADD_ALL_UP_TO = 100;

/** Searches of your music asked so far: only the newest one's answer is drawn. */
let librarySearches = 0;

/** The search of your music, while nothing is asked: how many songs, a scan under way;
 *  without any music, only adding by hand, and where music would come from.
 *  @param {AppState} s */
function renderLibraryNote(s) {
  const { files, dirs, scanning } = s.library;
  const search = $input('library-q');
  search.placeholder = files ? `Title, artist or album, among ${files.toLocaleString('en')} song${files === 1 ? '' : 's'}` : 'Title, artist or album';
  const none = !files && !scanning;
  $('from-library').hidden = none && !search.value.trim();
  const where = dirs.length ? dirs.join(', ') : 'your music folders (choose them above)';
  $('by-hand').textContent = none
    ? `Add a track: a title is enough, a link plays in its app. The songs of ${where} can be added here once it has some.`
    : 'Or add one by hand — a title is enough, a link plays in its app:';
  $('music-folders-summary').textContent = dirs.length ? `Your music folders: ${dirs.join(', ')}` : 'Choose where your music is';
  const field = /** @type {HTMLTextAreaElement} */ ($('music-dirs'));
  // What the user is typing is theirs until they send it.
  if (document.activeElement !== field && !field.dataset.editing) field.value = dirs.join('\n');
  if (search.value.trim()) return; // the search's answer is showing
  $('library-note').textContent = scanning ? `Reading your music… ${scanning.done} of ${scanning.total} files.` : '';
}

/** Sends the music folders typed (one a line); the library reads them, and says so. */
async function setMusicFolders() {
  const field = /** @type {HTMLTextAreaElement} */ ($('music-dirs'));
  const dirs = field.value.split('\n').map((line) => line.trim()).filter(Boolean);
  const note = $('music-dirs-note');
  try {
    await api.setConfig({ music_dirs: dirs });
    delete field.dataset.editing;
    note.textContent = dirs.length ? 'Your music will be read from there: its songs appear as they are found.' : 'No music folders: songs are added by hand.';
  } catch (e) { note.textContent = message(e); }
}

/** Shows the songs of your music that what is typed finds, each with a button to add it. */
async function searchLibrary() {
  const q = $input('library-q').value.trim();
  const asked = ++librarySearches;
  if (!q) {
    $('library-hits').replaceChildren();
    if (state) renderLibraryNote(state);
    return;
  }
  /** @type {import('./api').LibraryReply} */
  let reply;
  try { reply = await api.library(q, LIBRARY_HITS_SHOWN); } catch (e) {
    if (asked === librarySearches) $('library-note').textContent = message(e);
    return;
  }
  if (asked !== librarySearches) return; // typed on since
  const hits = reply.entries;
  const note = !hits.length ? `Nothing in your music matches “${q}”.`
    : reply.found > hits.length ? `The first ${hits.length} of ${reply.found.toLocaleString('en')} found: another word finds fewer.` : '';
  // An album, or a few songs: all of them at once.
  const all = reply.found > 1 && reply.found <= ADD_ALL_UP_TO
    ? el('button', { type: 'button', class: 'small ghost', onclick: (/** @type {MouseEvent} */ e) => addAllFound(q, reply.found, /** @type {HTMLButtonElement} */ (e.currentTarget)) }, `Add all ${reply.found}`)
    : null;
  $('library-note').replaceChildren(note, ...(all ? [note ? ' ' : '', all] : []));
  $('library-hits').replaceChildren(...hits.map((h) => el('li', {},
    el('span', { class: 'what' }, el('strong', {}, h.title), el('br'),
      el('span', { class: 'by' }, [h.artists.join(', ') || 'Unknown artist', h.album].filter(Boolean).join(' · '))),
    el('span', { class: 'dur' }, h.duration_ms ? clock(h.duration_ms) : ''),
    el('button', { type: 'button', class: 'small', 'aria-label': `Add ${h.title}`, onclick: (/** @type {MouseEvent} */ e) => addFromLibrary(h, /** @type {HTMLButtonElement} */ (e.currentTarget)) }, 'Add'))));
}

/** Adds every song the search `q` finds (`count` of them), in the order found, in one
 *  change. @param {string} q @param {number} count @param {HTMLButtonElement} button */
async function addAllFound(q, count, button) {
  if (!openId) return;
  button.disabled = true;
  try {
    const { entries } = await api.library(q, count);
    await api.addTracks(openId, entries.map((h) => ({ title: h.title, artists: h.artists, album: h.album, duration_ms: h.duration_ms, uri: null, content: h.content })));
    button.textContent = `✓ Added ${entries.length}`;
    $('playlist-result').textContent = '';
  } catch (e) {
    button.disabled = false;
    $('playlist-result').textContent = message(e);
  }
}

/** Adds a song of your music to the open playlist: the track carries the file's content
 *  id, so it plays here and friends fetch it.
 *  @param {import('./api').LibraryEntry} h @param {HTMLButtonElement} button */
async function addFromLibrary(h, button) {
  if (!openId) return;
  button.disabled = true;
  try {
    await api.addTrack(openId, { title: h.title, artists: h.artists, album: h.album, duration_ms: h.duration_ms, uri: null, content: h.content });
    button.textContent = '✓ Added';
    $('playlist-result').textContent = '';
  } catch (e) {
    button.disabled = false;
    $('playlist-result').textContent = message(e);
  }
}

/** The largest playlist file the controller imports (`MAX_IMPORT_BYTES`): a bigger one is
 *  not read into the page. */
const IMPORT_MAX_BYTES = 64 * 1024 * 1024;

/** Makes a playlist of a file from another app (M3U/M3U8, XSPF, CSV) or a WhatNext
 *  export, and opens it; one that is here already can come in as a copy.
 *  @param {File} file @param {boolean} [asNew] */
async function importFile(file, asNew = false) {
  const out = $('import-result');
  // (An M3U is audio/x-mpegurl to a browser: a playlist by its name, a song by its type.)
  const playlistFile = /\.(m3u8?|xspf|csv|md|markdown|txt)$/i.test(file.name) || /mpegurl|xspf|csv|markdown|^text\//i.test(file.type);
  if (!playlistFile && /^(audio|video)\//.test(file.type)) {
    out.replaceChildren(`${file.name} is a song, not a playlist file: songs come from your music folder (Add from your music, under a playlist).`);
    return;
  }
  if (file.size > IMPORT_MAX_BYTES) {
    out.replaceChildren(`${file.name} is ${Math.round(file.size / 1048576)} MB: a playlist file is at most 64 MB. Is it a playlist?`);
    return;
  }
  out.replaceChildren(`Reading ${file.name}…`);
  try {
    const text = await file.text();
    const { id } = await api.importPlaylist({ markdown: text, name: file.name.replace(/\.[^.]*$/, ''), as_new: asNew });
    out.replaceChildren();
    await openPlaylist(id);
  } catch (e) {
    if (/** @type {{ status?: number }} */ (e).status === 409) {
      out.replaceChildren(`${file.name} is a playlist you have here already. `,
        el('button', { type: 'button', class: 'small ghost', onclick: () => importFile(file, true) }, 'Import a copy'));
    } else {
      out.replaceChildren(`${file.name} could not be imported: ${message(e)}`);
    }
  }
}

/** Playlists longer than this have a find field. */
const FIND_FROM = 12;

/** Lower case without accents: "Beyoncé" is found by "beyonce". @param {string} text */
const folded = (text) => text.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

/** The words a find field asks for, folded. @param {string} text */
const wordsOf = (text) => folded(text).split(/\s+/).filter(Boolean);

/** What find looks through, folded, by track id, with what it was folded from (a track
 *  edited is folded again; a 10,000-track playlist is folded once, not at every key). */
const findText = /** @type {Map<string, [string, string]>} */ (new Map());

/** @param {import('./api').Track} t */
function foundIn(t) {
  const source = [t.title, t.artists.join(' '), t.album || '', t.added_by.display_name || ''].join('\n');
  const known = findText.get(t.id);
  if (known?.[0] === source) return known[1];
  const text = folded(source);
  findText.set(t.id, [source, text]);
  return text;
}

/** The tracks the list shows: every one, or those found, each with its place in the
 *  playlist (`places`, null when every track is shown: the place is the index).
 *  @param {import('./api').PlaylistView} p */
function shownTracks(p) {
  if (!findWords.length) return { tracks: p.tracks, places: null };
  // Asked at every frame of a scroll: filtered once per playlist fetched and words asked.
  if (lastFound.p === p && lastFound.words === findWords) return lastFound.shown;
  const tracks = [];
  const places = [];
  for (const [place, t] of p.tracks.entries()) {
    const text = foundIn(t);
    if (findWords.every((w) => text.includes(w))) { tracks.push(t); places.push(place); }
  }
  Object.assign(lastFound, { p, words: findWords, shown: { tracks, places } });
  return lastFound.shown;
}

/** The last tracks found: for which playlist (as fetched) and words.
 *  @type {{ p: unknown, words: unknown, shown: { tracks: import('./api').Track[], places: number[] | null } }} */
const lastFound = { p: null, words: null, shown: { tracks: [], places: null } };

/** Takes what the find field holds, and shows the tracks found (from the list's top). */
function findInPlaylist() {
  const words = wordsOf($input('track-find').value);
  if (words.join(' ') === findWords.join(' ')) return;
  findWords = words;
  Object.assign(drawnRows, { first: 0, last: 0 });
  const list = $('tracks');
  // The list shrinks to what is found: from its top, the field still in view.
  if (list.getBoundingClientRect().top < 0) $('find-row').scrollIntoView({ block: 'start' });
  if (shownPlaylist) renderTracks(shownPlaylist, shownSession?.view ?? null, 0, false);
}

/** Escape in a search field that holds something empties it, then `then` shows what it hid.
 *  @param {string} id @param {() => void} then */
function clearOnEscape(id, then) {
  $(id).addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || !$input(id).value) return;
    e.preventDefault();
    $input(id).value = '';
    then();
  });
}

/** Empties the find field: every track shown again. */
function stopFinding() {
  $input('track-find').value = '';
  findInPlaylist();
}

/** Playlists up to this long are drawn whole; a longer one draws only the rows near the
 *  screen (a 10,000-track playlist drawn whole took 1.5-2 s to open and again after every
 *  change, most of it laying out rows nobody sees). */
const DRAW_ALL_UP_TO = 300;

/** The rows drawn: tracks [first, last) of the playlist shown; and how tall each row drawn
 *  so far was (px, by track id: titles wrap, so rows differ), with the heights' sum. The
 *  rows not drawn are the list's padding: as tall as they were, or the mean when never
 *  drawn. Positions of rows seen stay put however the mean moves. */
const drawnRows = { first: 0, last: 0, /** @type {Map<string, number>} */ heights: new Map(), sum: 0 };

/** Forgets the rows' heights (another playlist is shown). */
function forgetRowHeights() {
  drawnRows.heights.clear();
  drawnRows.sum = 0;
}

/** How tall a row not drawn is taken to be: the mean of those drawn, or at first what the
 *  style makes a one-line row. */
const meanRowHeight = () => (drawnRows.heights.size ? drawnRows.sum / drawnRows.heights.size
  : 3.2 * parseFloat(getComputedStyle(document.documentElement).fontSize));

/** The height of the rows of `tracks`: as drawn, or the mean.
 *  @param {import('./api').Track[]} tracks */
function rowsHeight(tracks) {
  const mean = meanRowHeight();
  return tracks.reduce((sum, t) => sum + (drawnRows.heights.get(t.id) ?? mean), 0);
}

/** The rows to draw of `tracks`: every one, or those within a screen's height of what is on
 *  screen (`onScreen`: the first row there; `perScreen`: how many fit).
 *  @param {import('./api').Track[]} tracks @param {number} [keep] a row to draw in any case (the focused one) */
function rowsToDraw(tracks, keep = -1) {
  const count = tracks.length;
  if (count <= DRAW_ALL_UP_TO) return { first: 0, last: count, onScreen: 0, perScreen: count };
  const list = $('tracks');
  const mean = meanRowHeight();
  let onScreen = drawnRows.first; // not shown (yet): as it was
  if (list.getClientRects().length) {
    // Down the rows from the list's top (the padding is the rows above those drawn, as
    // tall as they are taken to be) to the screen's top.
    const screenTop = -list.getBoundingClientRect().top;
    let y = 0;
    onScreen = 0;
    while (onScreen < count - 1) {
      const height = drawnRows.heights.get(tracks[onScreen].id) ?? mean;
      if (y + height > screenTop) break;
      y += height;
      onScreen += 1;
    }
  }
  const perScreen = Math.ceil(window.innerHeight / mean);
  let first = Math.max(0, onScreen - perScreen);
  let last = Math.min(count, onScreen + 2 * perScreen);
  if (keep >= 0) { first = Math.min(first, keep); last = Math.max(last, keep + 1); }
  return { first, last, onScreen, perScreen };
}

/** The first track row drawn that is on screen, and how far from the screen's top (px).
 *  @param {HTMLElement} list */
function rowAtScreenTop(list) {
  for (const row of list.children) {
    const box = row.getBoundingClientRect();
    if (box.bottom > 0 && box.top < window.innerHeight) return { id: row.getAttribute('data-track') || '', top: box.top };
  }
  return null;
}

/** Brings the row of a track to the screen, drawn first in a long playlist (and every track
 *  shown again if a find hid it). @param {string} trackId */
function showTrack(trackId) {
  const p = shownPlaylist;
  if (!p) return;
  const shown = () => shownTracks(p).tracks.findIndex((t) => t.id === trackId);
  if (shown() < 0 && findWords.length) stopFinding();
  const index = shown();
  if (index < 0) return;
  const row = () => document.querySelector(`#tracks li[data-track="${CSS.escape(trackId)}"]`);
  if (!row()) {
    // Not drawn: to where it is taken to be, and the rows there drawn.
    const list = $('tracks');
    const above = rowsHeight(shownTracks(p).tracks.slice(0, index));
    window.scrollTo(0, list.getBoundingClientRect().top + window.scrollY + above - window.innerHeight / 3);
    renderTracks(p, shownSession?.view ?? null, 0, false);
  }
  row()?.scrollIntoView({ block: 'center' });
}

/** Draws the rows near the screen again once less than half a screen of drawn rows is
 *  left beyond what is on screen. */
function followScroll() {
  const p = shownPlaylist;
  if (!p) return;
  const { tracks } = shownTracks(p);
  if (tracks.length <= DRAW_ALL_UP_TO) return;
  const { onScreen, perScreen } = rowsToDraw(tracks);
  const nearTop = drawnRows.first > 0 && onScreen - drawnRows.first < perScreen / 2;
  const nearEnd = drawnRows.last < tracks.length && drawnRows.last - (onScreen + perScreen) < perScreen / 2;
  if (nearTop || nearEnd) renderTracks(p, shownSession?.view ?? null);
}
// (At another width rows wrap anew: each is measured again when drawn. Forgetting them all
// would move every row not drawn at once, and the screen with them.)
let scrollPending = false;
for (const event of ['scroll', 'resize']) {
  window.addEventListener(event, () => {
    if (scrollPending) return;
    scrollPending = true;
    requestAnimationFrame(() => { scrollPending = false; followScroll(); });
  }, { passive: true });
}

/** A row per track: position, title and artist, album, who added it, length, votes (when
 *  the room votes), and a handle to move it. A long playlist draws the rows near the screen
 *  (see {@link rowsToDraw}); the rest of the list is padding as tall as they would be.
 *  @param {import('./api').PlaylistView} p @param {import('./api').SessionView | null} v
 *  @param {number} [redrawn] how many times in a row the rows drawn missed the screen
 *  @param {boolean} [inPlace] whether what is on screen stays where it is (not when the
 *  list shown is another: a find) */
function renderTracks(p, v, redrawn = 0, inPlace = true) {
  const voting = v?.mode === 'vote';
  /** @type {Map<string, import('./api').UpNext>} */
  const queued = new Map((v?.up_next || []).map((u) => [u.track_id, u]));
  const playing = v?.now_playing?.track_id;
  // Who holds playback plays any track at once: its number (▶ under the pointer), or a
  // double click on its row.
  const canPlay = Boolean(v) && v?.playback_owner === v?.me;
  const list = $('tracks');
  // Those found, when finding: they keep their numbers (their places in the playlist) and
  // stay where they are (moving one among those found would say nothing of where it lands).
  const { tracks, places } = shownTracks(p);
  $('no-tracks').hidden = p.tracks.length > 0;
  // A playlist longer than a screen has the find field (a shorter one is seen at a glance);
  // it stays while finding, however few are left.
  $('find-row').hidden = p.tracks.length <= FIND_FROM && !places;
  $('track-find-count').textContent = places ? `${tracks.length} of ${p.tracks.length.toLocaleString('en')} tracks` : '';
  $('no-match').hidden = !places || tracks.length > 0;
  if (places && !tracks.length) $('no-match').textContent = `No track in this playlist matches “${$input('track-find').value.trim()}”.`;
  /** @type {HTMLElement} */ (document.querySelector('.track-head')).hidden = tracks.length === 0;
  list.classList.toggle('found', Boolean(places));
  // The rows are redrawn on every change, a friend's too: a focused control keeps the focus
  // (in its row, wherever the row went).
  const focused = /** @type {HTMLElement | null} */ (document.activeElement);
  const focusedRow = focused?.closest('#tracks li')?.getAttribute('data-track');
  const focusedClass = focused?.classList[0];
  const { first, last } = rowsToDraw(tracks, focusedRow ? tracks.findIndex((t) => t.id === focusedRow) : -1);
  // The row at the screen's top, and where: it stays there. The rows above those drawn are
  // padding of their height as last measured (or the mean), and a redraw measures rows
  // anew; without this, what is on screen would move by the difference. (The browser's own
  // scroll anchoring gives up when the list's padding changes.)
  const anchor = inPlace && tracks.length > DRAW_ALL_UP_TO ? rowAtScreenTop(list) : null;
  // A row that shows the same as before is kept, not built again, and stays in the page
  // (a long playlist changes a row or two at a time). Rows hold no position: the numbers
  // are CSS counters (starting at the first row drawn), and a row asks where it is when
  // it is moved.
  /** @type {Map<string, HTMLElement>} */
  const drawn = new Map([...list.children].map((li) => [li.getAttribute('data-track') || '', /** @type {HTMLElement} */ (li)]));
  patchChildren(list, tracks.slice(first, last).map((t, k) => {
    const by = t.added_by.display_name || t.added_by.peer_id.slice(0, 12);
    const up = voting ? queued.get(t.id) : undefined;
    // The number is counted by CSS, unless the row is one found (then it is written).
    const pos = t.id === playing ? '♪' : places ? String(places[first + k] + 1) : '';
    const shows = JSON.stringify([t.title, t.artists, t.album, by, t.duration_ms, pos, canPlay, up?.score, up?.my_vote]);
    const kept = drawn.get(t.id);
    if (kept && kept.dataset.shows === shows) return kept;
    const movable = !places;
    return el('li', {
      'data-shows': shows,
      'data-track': t.id,
      class: t.id === playing ? 'playing' : '',
      ...(canPlay ? { ondblclick: (/** @type {MouseEvent} */ e) => { if (!(/** @type {HTMLElement} */ (e.target)).closest('button')) act({ action: 'play', track_id: t.id }); } } : {}),
      ...(movable ? {
        draggable: 'true',
        ondragstart: (/** @type {DragEvent} */ e) => { e.dataTransfer?.setData('text/plain', t.id); if (e.dataTransfer) e.dataTransfer.effectAllowed = 'move'; },
        ondragover: (/** @type {DragEvent} */ e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = 'move'; },
        ondrop: (/** @type {DragEvent} */ e) => { e.preventDefault(); const id = e.dataTransfer?.getData('text/plain'); if (id && id !== t.id) move(id, rowIndex(e.currentTarget)); },
      } : {}),
    },
      !movable ? el('span', { class: 'handle', 'aria-hidden': 'true' }) : el('button', {
        type: 'button', class: 'handle ghost', 'aria-label': `Move ${t.title}: drag, or press the up and down arrow keys`,
        onkeydown: (/** @type {KeyboardEvent} */ e) => {
          if (e.key === 'ArrowUp' || e.key === 'ArrowDown') { e.preventDefault(); move(t.id, rowIndex(e.currentTarget) + (e.key === 'ArrowUp' ? -1 : 1)); }
        },
        onpointerdown: (/** @type {PointerEvent} */ e) => dragByHandle(e, t.id, rowIndex(e.currentTarget)),
      }, '⠿'),
      canPlay
        ? el('button', { type: 'button', class: 'pos play', 'aria-label': `${pos ? `${pos}: play` : 'Play'} ${t.title} now`, onclick: () => act({ action: 'play', track_id: t.id }) }, el('span', { class: 'num' }, pos))
        : el('span', { class: 'pos' }, el('span', { class: 'num' }, pos)),
      el('span', { class: 'what' }, el('strong', {}, t.title),
        el('br'), el('span', { class: 'by' }, t.artists.join(', ') || 'Unknown artist',
          el('span', { class: 'phone-only' }, ` · added by ${by}`))),
      el('span', { class: 'album' }, t.album || ''),
      el('span', { class: 'who' }, by),
      el('span', { class: 'dur' }, t.duration_ms ? clock(t.duration_ms) : ''),
      up ? el('button', {
        type: 'button', class: `small ghost vote${up.my_vote > 0 ? ' voted' : ''}`, 'aria-pressed': String(up.my_vote > 0),
        onclick: () => act({ action: 'vote', track_id: t.id, vote: up.my_vote > 0 ? 0 : 1 }),
      }, `▲ ${up.score}`, el('span', { class: 'sr-only' }, `: vote for ${t.title}`)) : el('span', { class: 'vote' }),
      el('button', { type: 'button', class: 'small ghost remove', 'aria-label': `Remove ${t.title}`, onclick: () => removeTrack(t.id) }, '✕'));
  }));
  drawnRows.first = first;
  drawnRows.last = last;
  if (last - first < tracks.length) {
    // The rows not drawn, as padding of their height.
    for (const row of list.children) {
      const height = row.getBoundingClientRect().height;
      const id = row.getAttribute('data-track') || '';
      if (height <= 0) continue; // not laid out (the playlist not shown yet)
      drawnRows.sum += height - (drawnRows.heights.get(id) ?? 0);
      drawnRows.heights.set(id, height);
    }
    list.style.paddingTop = `${rowsHeight(tracks.slice(0, first))}px`;
    list.style.paddingBottom = `${rowsHeight(tracks.slice(last))}px`;
  } else {
    list.style.paddingTop = list.style.paddingBottom = '';
  }
  list.style.counterReset = first && !places ? `track ${first}` : '';
  const anchored = anchor && list.querySelector(`li[data-track="${CSS.escape(anchor.id)}"]`);
  if (anchor && anchored) {
    const moved = anchored.getBoundingClientRect().top - anchor.top;
    if (Math.abs(moved) >= 1) window.scrollBy(0, moved);
  }
  // Heights just measured move where the drawn rows are (after a jump, into rows never
  // drawn): once they miss the screen, the rows there are drawn instead (it settles within
  // a try or two).
  if (last - first < tracks.length && redrawn < 3) {
    const { onScreen } = rowsToDraw(tracks);
    if (onScreen < first || onScreen >= last) {
      renderTracks(p, v, redrawn + 1, inPlace);
      return;
    }
  }
  // Assistive technology hears each row's place in the whole list (of those found, when
  // finding), drawn or not.
  for (const [k, row] of [...list.children].entries()) {
    row.setAttribute('aria-posinset', String(first + k + 1));
    row.setAttribute('aria-setsize', String(tracks.length));
  }
  if (focusedRow && focusedClass) {
    /** @type {HTMLElement | null} */ (document.querySelector(`#tracks li[data-track="${CSS.escape(focusedRow)}"] .${CSS.escape(focusedClass)}`))?.focus();
  }
}

/**
 * Drags a row by its handle with a finger or a pen (the mouse drags the row itself): the
 * row follows the pointer's place in the list, and lands where it is let go.
 * @param {PointerEvent} e @param {string} trackId @param {number} from
 */
function dragByHandle(e, trackId, from) {
  if (e.pointerType === 'mouse') return;
  e.preventDefault();
  const handle = /** @type {HTMLElement} */ (e.currentTarget);
  const list = $('tracks');
  const row = /** @type {HTMLElement} */ (handle.closest('li'));
  handle.setPointerCapture(e.pointerId);
  row.classList.add('dragging');
  let to = from;
  /** @param {PointerEvent} ev */
  const over = (ev) => {
    // Among the rows drawn (a long playlist draws those near the screen).
    const rows = [...list.children];
    const start = drawnRows.first;
    const at = rows.findIndex((r) => { const box = r.getBoundingClientRect(); return ev.clientY < box.top + box.height / 2; });
    const drawnTo = at === -1 ? rows.length - 1 : (at + start > from ? at - 1 : at);
    to = start + drawnTo;
    for (const [k, r] of rows.entries()) r.classList.toggle('drop-before', k === (to > from ? drawnTo + 1 : drawnTo) && start + k !== from);
    list.classList.toggle('drop-end', drawnTo === rows.length - 1 && to !== from);
  };
  const done = () => {
    handle.removeEventListener('pointermove', over);
    row.classList.remove('dragging');
    list.classList.remove('drop-end');
    for (const r of list.children) r.classList.remove('drop-before');
    if (to !== from) move(trackId, to);
  };
  handle.addEventListener('pointermove', over);
  handle.addEventListener('pointerup', done, { once: true });
  handle.addEventListener('pointercancel', () => { to = from; done(); }, { once: true });
}

/** The start at a shared instant, waiting. */
let startTimer = 0;

/** When the player last tried the audio again. */
let lastReload = 0;

/** The session last shown, and when it was read (the progress bar ticks from there). */
/** @type {{ view: import('./api').SessionView, at: number } | null} */
let shownSession = null;

/** @param {number} ms */
const clock = (ms) => {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

/** How many tracks of up next are listed under now playing. */
const UP_NEXT_SHOWN = 30;

/** The listening session: now playing, who picks, up next, comments, reactions.
 *  @param {import('./api').SessionView} v @param {Record<string, string>} names peer id → name */
function renderSession(v, names) {
  shownSession = { view: v, at: Date.now() };
  /** @param {string | null | undefined} peer */
  const who = (peer) => (peer ? (peer === v.me ? 'you' : names[peer] || peer.slice(0, 12)) : 'nobody');
  const holder = v.playback_owner;
  const mine = holder === v.me;
  const np = v.now_playing;
  $('np-none').hidden = !!np;
  const nothingNext = !np && v.up_next.length === 0;
  $('np-none').textContent = nothingNext ? 'Nothing is playing. Add a track, and the music can start.'
    : mine || !holder ? 'Nothing is playing. Press Play to start the first track of up next.'
      : `Nothing is playing. ${who(holder)} starts the music.`;
  $('np-track').hidden = !np;
  if (np) {
    $('np-title').textContent = np.title;
    $('np-artist').textContent = np.artists.join(', ');
  }
  replaceChildren($('np-cover'), np ? [artwork(np)] : []);
  $('np-cover').hidden = !np;
  /** @type {HTMLButtonElement} */ ($('pl-play')).hidden = !mine || (!!np && !np.paused) || !shownPlaylist?.tracks.length;
  $('pl-play').textContent = np && np.paused ? '▶ Resume' : '▶ Play';
  tickProgress();
  playHere(np);
  /** @type {HTMLButtonElement} */ ($('np-play')).hidden = !mine || (!!np && !np.paused) || nothingNext;
  /** @type {HTMLButtonElement} */ ($('np-play')).textContent = np && np.paused ? 'Resume' : 'Play';
  /** @type {HTMLButtonElement} */ ($('np-pause')).hidden = !mine || !np || np.paused;
  /** @type {HTMLButtonElement} */ ($('np-next')).hidden = !mine || nothingNext;
  /** @type {HTMLButtonElement} */ ($('np-skip')).hidden = !np;
  $('np-skip').textContent = `Vote to skip (${v.skip.votes}/${v.skip.needed})`;
  /** @type {HTMLButtonElement} */ ($('np-take')).hidden = mine || v.my_role === 'member';
  // Comments: replies under what they answer; a removed one keeps its place.
  /** @type {Record<string, string>} */
  const titles = {};
  for (const u of v.up_next) titles[u.track_id] = u.title;
  if (v.now_playing) titles[v.now_playing.track_id] = v.now_playing.title;
  /** @param {string | null} parent @param {number} depth @returns {HTMLElement[]} */
  const thread = (parent, depth) => v.comments
    .filter((c) => (c.reply_to ?? null) === parent)
    .flatMap((c) => [el('li', { 'data-comment': c.id, style: `padding-left: ${Math.min(depth, 6) * 1.25}rem` },
      el('strong', {}, c.display_name || who(c.peer_id)),
      c.track_id && titles[c.track_id] ? el('span', { class: 'hint' }, ` on ${titles[c.track_id]}`) : '',
      ': ',
      c.deleted ? el('em', { class: 'hint' }, '(removed)') : c.text,
      !c.deleted && (c.peer_id === v.me || v.my_role === 'owner')
        ? el('button', { type: 'button', class: 'small ghost', 'aria-label': 'Remove comment', onclick: () => act({ action: 'uncomment', comment_id: c.id }) }, '✕')
        : ''), ...thread(c.id, depth + 1)]);
  $('no-comments').hidden = v.comments.length > 0;
  replaceChildren($('comments'), thread(null, 0));
  // Reactions are to the music: none to send while nothing plays (those sent stay shown).
  $('react-row').hidden = !np && v.reactions.length === 0;
  // Reactions of the last 30 s, newest first, with who sent them.
  $('reactions').textContent = v.reactions.slice(-8).reverse().map((r) => `${r.emoji} ${who(r.peer_id)}`).join('  ');
  const turn = v.turn ? ` · ${v.turn.peer_id === v.me ? 'your turn' : `${who(v.turn.peer_id)}'s turn`} (${v.turn.tracks_left} left)` : '';
  $('session-meta').textContent = `${who(holder)} ${holder === v.me ? 'hold' : 'holds'} playback${turn}`;
  /** @type {HTMLSelectElement} */ ($('session-mode')).value = v.mode;
  /** @type {HTMLSelectElement} */ ($('session-mode')).disabled = v.my_role === 'member';
  const voting = v.mode === 'vote';
  $('no-up-next').hidden = v.up_next.length > 0;
  // The next few; the whole order is the playlist's (a long one would be thousands here).
  const more = v.up_next.length - UP_NEXT_SHOWN;
  replaceChildren($('up-next'), v.up_next.slice(0, UP_NEXT_SHOWN).map((u) => el('li', { 'data-track': u.track_id },
    el('span', { class: 'what' }, el('strong', {}, u.title), u.artists.length ? ` — ${u.artists.join(', ')}` : '',
      el('br'), el('span', { class: 'by' }, `added by ${who(u.added_by)}`)),
    voting ? el('button', { type: 'button', class: `small ghost${u.my_vote > 0 ? ' voted' : ''}`, 'aria-label': `Vote ${u.title} up`, 'aria-pressed': String(u.my_vote > 0), onclick: () => act({ action: 'vote', track_id: u.track_id, vote: u.my_vote > 0 ? 0 : 1 }) }, '▲') : '',
    voting ? el('span', { class: 'score', 'aria-label': `score ${u.score}` }, String(u.score)) : '',
    voting ? el('button', { type: 'button', class: `small ghost${u.my_vote < 0 ? ' voted' : ''}`, 'aria-label': `Vote ${u.title} down`, 'aria-pressed': String(u.my_vote < 0), onclick: () => act({ action: 'vote', track_id: u.track_id, vote: u.my_vote < 0 ? 0 : -1 }) }, '▼') : '',
    mine ? el('button', { type: 'button', class: 'small ghost', 'aria-label': `Play ${u.title} now`, onclick: () => act({ action: 'play', track_id: u.track_id }) }, '▶') : ''))
    .concat(more > 0 ? [el('li', { class: 'hint more' }, `and ${more.toLocaleString()} more${voting ? ', to vote on in the playlist below' : ''}`)] : []));
}

/** Where now playing is, in ms, as of now: from when playback (re)started when the
 *  session says (exact, whatever the answer's delay), else from when it was read. */
function expectedPosition() {
  const np = shownSession?.view.now_playing;
  if (!np || !shownSession) return 0;
  if (np.paused) return np.position_ms;
  // The holder's clock: ours plus the offset measured to it.
  const now = Date.now() + (shownSession.view.clock_offset_ms ?? 0);
  const position = np.started_at_ms != null && np.start_position_ms != null
    ? np.start_position_ms + (now - np.started_at_ms)
    : np.position_ms + (Date.now() - shownSession.at);
  return np.duration_ms ? Math.min(position, np.duration_ms) : position;
}

/** Links the player may hand on: a streaming service's URI, or a web page. */
const OPENABLE = /^(https?:|spotify:|deezer:|tidal:|music:|itms:)/i;

/**
 * Plays now playing here when this home has its audio (`/media/<blake3>`), following the
 * holder: started, paused and moved to where it should be; a track that is only a link
 * gets an Open button instead.
 * @param {import('./api').NowPlaying | null} np
 */
function playHere(np) {
  const audio = /** @type {HTMLAudioElement} */ ($('np-audio'));
  const open = /** @type {HTMLAnchorElement} */ ($('np-open'));
  const uri = np && !np.content && np.uri && OPENABLE.test(np.uri) ? np.uri : null;
  open.hidden = !uri;
  if (uri) open.href = uri;
  if (!np || !np.content) {
    if (!audio.paused) audio.pause();
    audio.removeAttribute('src');
    $('np-source').textContent = np && !uri ? 'No audio for this track on this device.' : '';
    $('np-listen').hidden = true;
    return;
  }
  const src = `/media/${np.content.blake3}`;
  if (audio.getAttribute('src') !== src) {
    audio.src = src;
    $('np-source').textContent = '';
  }
  followHolder();
}

/** Names of the open playlist's members, by peer id (for what the state only names by id). */
/** @type {Record<string, string>} */
let memberNames = {};

/** Says how far the audio of now playing is on its way here, while it is.
 *  @param {import('./api').AppState} s */
function renderTransfer(s) {
  const np = shownSession?.view.now_playing;
  if (!np || !np.content) return;
  const blake3 = np.content.blake3;
  const t = (s.transfers || []).find((x) => x.blake3 === blake3 && x.direction === 'download');
  if (t) {
    const pct = t.size ? Math.floor((100 * t.bytes) / t.size) : 0;
    $('np-source').textContent = `Getting the audio from ${memberNames[t.peer_id] || t.peer_id.slice(0, 12)}… ${pct}%`;
    return;
  }
  // It cannot come now (e.g. its members are reachable only through a relay): say why,
  // rather than a player that silently stays empty.
  const waiting = (s.media_waiting || []).find((x) => x.blake3 === blake3);
  if (waiting) {
    $('np-source').textContent = waiting.reason;
    $('np-source').dataset.waiting = 'true';
    return;
  }
  const audio = /** @type {HTMLAudioElement} */ ($('np-audio'));
  const arrived = $('np-source').textContent.startsWith('Getting the audio') || $('np-source').dataset.waiting === 'true';
  delete $('np-source').dataset.waiting;
  // It arrived (or may have, between two states): load it again, at most every 2 s.
  if (arrived || (audio.error && Date.now() - lastReload > 2000)) {
    lastReload = Date.now();
    $('np-source').textContent = '';
    audio.load();
    followHolder();
  }
}



/** Keeps the player where the holder's playback is: paused with it, and within reach of
 *  its position (a seek when far off, a slightly faster or slower rate when close). */
function followHolder() {
  const audio = /** @type {HTMLAudioElement} */ ($('np-audio'));
  const np = shownSession?.view.now_playing;
  if (!np || !np.content || !audio.getAttribute('src')) return;
  const holderNow = Date.now() + (shownSession?.view.clock_offset_ms ?? 0);
  if (!np.paused && np.started_at_ms != null && holderNow < np.started_at_ms) {
    // It (re)starts at a shared instant a moment from now: ready at its place, it starts then.
    if (!audio.paused) audio.pause();
    audio.currentTime = (np.start_position_ms ?? np.position_ms) / 1000;
    clearTimeout(startTimer);
    startTimer = setTimeout(followHolder, np.started_at_ms - holderNow);
    return;
  }
  if (np.paused) {
    if (!audio.paused) audio.pause();
    audio.playbackRate = 1;
    if (Math.abs(audio.currentTime * 1000 - np.position_ms) > 250) audio.currentTime = np.position_ms / 1000;
    return;
  }
  const drift = audio.currentTime * 1000 - expectedPosition();
  // Far off: jump. Close: play a little slower or faster until caught up (at most 10%, so
  // nobody hears it), in proportion to the drift.
  if (Math.abs(drift) > 150 || audio.paused) {
    audio.currentTime = Math.max(0, expectedPosition()) / 1000;
    audio.playbackRate = 1;
  } else audio.playbackRate = Math.abs(drift) < 10 ? 1 : 1 - Math.max(-0.1, Math.min(0.1, drift / 500));
  if (audio.paused && !audio.ended) {
    audio.play().then(() => { $('np-listen').hidden = true; }).catch(() => {
      // The browser wants a click before it plays sound.
      $('np-listen').hidden = false;
    });
  }
}

/** Moves the progress bar on between refreshes (no polling: a change of the session
 *  arrives through the state's long poll). */
function tickProgress() {
  const np = shownSession?.view.now_playing;
  if (!np || !shownSession) return;
  const position = np.paused ? np.position_ms : np.position_ms + (Date.now() - shownSession.at);
  const duration = np.duration_ms;
  const bar = /** @type {HTMLProgressElement} */ ($('np-progress'));
  bar.value = duration ? Math.min(1, position / duration) : 0;
  $('np-time').textContent = duration ? `${clock(Math.min(position, duration))} / ${clock(duration)}` : clock(position);
}

/** @param {import('./api').SessionAction} action */
async function act(action) {
  if (!openId) return;
  const out = $('session-result');
  try {
    await api.sessionAct(openId, action);
    out.textContent = '';
  } catch (err) { out.textContent = message(err); }
}

/**
 * @param {string} trackId
 * @param {number} to
 */
async function move(trackId, to) {
  const count = shownPlaylist?.tracks.length ?? 0;
  if (!openId || to < 0 || to >= count) return;
  try { await api.moveTrack(openId, { track_id: trackId, to }); }
  catch (e) { $('playlist-result').textContent = message(e); }
}

/** Shows the open playlist's guest page: its QR code, address and PIN, and who is in.
 *  @param {import('./api').GuestsReply | null} [reply] what an action answered */
async function refreshGuests(reply = null) {
  if (!openId || !/** @type {HTMLDetailsElement} */ ($('guests-panel')).open) return;
  const id = openId;
  let g = reply;
  try { g ??= await api.guests(id); } catch (e) { $('guests-result').textContent = message(e); return; }
  if (id !== openId) return;
  $('guests-on').hidden = g.on;
  $('guests-lan').closest('label')?.toggleAttribute('hidden', g.on);
  $('guests-off').hidden = !g.on;
  $('guests-open').hidden = !g.on;
  if (!g.on || !g.url) return;
  const link = /** @type {HTMLAnchorElement} */ ($('guests-url'));
  if (link.href !== g.url) {
    link.href = g.url;
    link.textContent = g.url.split('#')[0];
    /** @type {HTMLImageElement} */ ($('guests-qr')).src = `/api/playlists/${encodeURIComponent(id)}/guests.svg?v=${Date.now()}`;
  }
  $('guests-pin').textContent = g.pin || '';
  replaceChildren($('guests-list'), g.guests.map((guest) => el('li', { title: guest.peer_id },
    el('span', { class: 'what' }, guest.name, el('span', { class: 'hint' }, ` · ${guest.added_last_hour} added this hour`)),
    el('button', { type: 'button', class: 'small ghost', 'aria-label': `Take ${guest.name} out`, onclick: async () => {
      try { await api.removeGuest(id, guest.peer_id); await refreshGuests(); } catch (e) { $('guests-result').textContent = message(e); }
    } }, 'Take out'))), $('no-guests'));
}

/** @param {string} trackId */
async function removeTrack(trackId) {
  if (!openId) return;
  const playlistId = openId;
  const tracks = shownPlaylist?.id === playlistId ? shownPlaylist.tracks : [];
  const index = tracks.findIndex((t) => t.id === trackId);
  const track = tracks[index];
  try { await api.removeTrack(playlistId, trackId); }
  catch (e) { $('playlist-result').textContent = message(e); return; }
  if (!track) return;
  // Removed for everyone at once; for a few seconds, Undo adds it back where it was (a new
  // edit, which reaches everyone the same way).
  const undo = el('button', { type: 'button', class: 'small', onclick: async () => {
    hideToast();
    try {
      const { track_id } = await api.addTrack(playlistId, {
        title: track.title, artists: track.artists, album: track.album,
        duration_ms: track.duration_ms, uri: track.uri, content: track.content,
      });
      if (track_id) await api.moveTrack(playlistId, { track_id, to: index });
    } catch (e) { $('playlist-result').textContent = message(e); }
  } }, 'Undo');
  replaceChildren($('toast'), [el('span', {}, `Removed “${track.title}”.`), undo]);
  $('toast').hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, 5000);
}

function hideToast() {
  clearTimeout(toastTimer);
  $('toast').hidden = true;
}

/**
 * @param {string} text
 * @param {HTMLElement} button
 */
async function copy(text, button) {
  try { await navigator.clipboard.writeText(text); button.textContent = 'Copied'; }
  catch { button.textContent = 'Select and copy'; }
  setTimeout(() => { button.textContent = button.dataset.label ?? ''; }, 1500);
}

/** What the share dialog says of its link until a new one is made. */
const SHARE_NOTE = document.getElementById('share-note')?.textContent ?? '';
/** Whether "New link" was clicked once and now asks to be clicked again. */
let rotateArmed = false;
let rotateTimer = 0;

/** @param {boolean} armed */
function armRotate(armed) {
  rotateArmed = armed;
  clearTimeout(rotateTimer);
  const button = $('rotate-share');
  button.textContent = armed ? 'Replace the link' : (button.dataset.label ?? '');
  button.classList.toggle('danger', armed);
  if (armed) {
    rotateTimer = window.setTimeout(() => {
      armRotate(false);
      $('share-note').textContent = SHARE_NOTE;
    }, 6000);
  }
}

function wire() {
  for (const b of document.querySelectorAll('button')) b.dataset.label = b.textContent;
  $('debug').addEventListener('toggle', () => { if (/** @type {HTMLDetailsElement} */ ($('debug')).open) refreshIpcLog(); });
  $('copy-peer').addEventListener('click', () => copy($('peer-id').textContent || '', $('copy-peer')));
  $('copy-invite').addEventListener('click', () => copy($input('invite-link').value, $('copy-invite')));
  $('copy-share').addEventListener('click', () => copy($input('share-link').value, $('copy-share')));
  $('rotate-share').addEventListener('click', async () => {
    if (!openId) return;
    // The link given out before stops working: asked once more before it is done.
    if (!rotateArmed) {
      armRotate(true);
      $('share-note').textContent = 'Click “Replace the link” to make a new one: the link you gave out before will let no one else in. Members already in stay.';
      return;
    }
    armRotate(false);
    try {
      const { link } = await api.sharePlaylist(openId, { rotate: true });
      $input('share-link').value = link;
      $input('share-link').select();
      $('share-note').textContent = 'A new link: the one you gave out before lets no one else in. Members already in stay.';
    } catch (err) { $('share-note').textContent = message(err); }
  });

  $('connect-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = $input('connect-input').value.trim();
    if (!value) return;
    say('Connecting…', '', '');
    const link = value.toLowerCase().startsWith('whtnxt://');
    try {
      if (link) {
        // The attempt is in the state: the long poll shows how it went (renderLastLink).
        shownAttempt = '';
        const attempt = await api.open({ url: value, wait: true });
        if (state) { shownAttempt = ''; renderLastLink({ ...state, link_attempts: [...state.link_attempts.filter((a) => a.id !== attempt.id), attempt] }); }
      } else {
        const reply = await api.connect({ addr: value });
        say(`Connected to ${reply.peer_id.slice(-4)}'s WhatNext.`, '', 'ok');
      }
      $input('connect-input').value = '';
    } catch (err) {
      say(failureSentence(message(err), 'your friend'), message(err), 'bad');
    }
  });

  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $input('new-name').value.trim();
    if (!name) return;
    try {
      const { id } = await api.createPlaylist({ name });
      $input('new-name').value = '';
      await openPlaylist(id);
    } catch (err) { $('playlist-result').textContent = message(err); }
  });

  $('add-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const form = /** @type {HTMLFormElement} */ (e.target);
    /** @param {string} name */
    const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
    const f = { title: field('title'), artist: field('artist'), album: field('album'), duration: field('duration'), uri: field('uri') };
    // "3:45", "1:02:03" or "225" (seconds); the field's pattern lets nothing else through.
    const seconds = f.duration.value.trim().split(':').reduce((sum, part) => sum * 60 + Number(part), 0);
    /** @type {import('./api').NewTrack} */
    const track = {
      title: f.title.value,
      artists: f.artist.value.trim() ? [f.artist.value.trim()] : [],
      album: f.album.value.trim() || null,
      duration_ms: seconds > 0 ? Math.round(seconds * 1000) : null,
      uri: f.uri.value.trim() || null,
    };
    if (!openId) return;
    try {
      await api.addTrack(openId, track);
      form.reset();
      $('playlist-result').textContent = '';
    } catch (err) { $('playlist-result').textContent = message(err); }
  });

  const play = () => {
    const np = shownSession?.view.now_playing;
    act(np && np.paused ? { action: 'resume' } : { action: 'play' });
  };
  $('np-play').addEventListener('click', play);
  $('pl-play').addEventListener('click', play);
  $('delete').addEventListener('click', () => {
    $('delete-name').textContent = shownPlaylist?.name || '';
    /** @type {HTMLDetailsElement} */ ($('more')).open = false;
    /** @type {HTMLDialogElement} */ ($('confirm-delete')).showModal();
  });
  $('confirm-delete').addEventListener('close', async () => {
    const dialog = /** @type {HTMLDialogElement} */ ($('confirm-delete'));
    if (dialog.returnValue !== 'delete' || !openId) return;
    dialog.returnValue = '';
    const id = openId;
    try {
      await api.deletePlaylist(id);
      closePlaylist();
    } catch (err) { $('playlist-result').textContent = message(err); }
  });
  $('np-pause').addEventListener('click', () => act({ action: 'pause' }));
  $('np-next').addEventListener('click', () => act({ action: 'next' }));
  $('np-skip').addEventListener('click', () => act({ action: 'skip' }));
  $('np-take').addEventListener('click', () => act({ action: 'take' }));
  for (const b of document.querySelectorAll('button.react')) {
    const emoji = /** @type {HTMLElement} */ (b).dataset.emoji || '';
    b.addEventListener('click', () => act({ action: 'react', emoji }));
  }
  $('session-mode').addEventListener('change', () => {
    const mode = /** @type {import('./api').SessionMode} */ (/** @type {HTMLSelectElement} */ ($('session-mode')).value);
    act({ action: 'mode', mode });
  });
  setInterval(tickProgress, 1000);
  // Drift is measured and corrected four times a second (no request: local clocks only).
  setInterval(followHolder, 250);
  $('np-listen').addEventListener('click', () => followHolder());
  $('np-audio').addEventListener('error', () => {
    $('np-source').textContent = 'The audio is not on this device yet.';
  });
  $('comment-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $input('comment-input').value.trim();
    if (!text) return;
    const playing = shownSession?.view.now_playing?.track_id;
    await act(playing ? { action: 'comment', text, track_id: playing } : { action: 'comment', text });
    $input('comment-input').value = '';
  });

  $('rename-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $input('rename-input').value.trim();
    if (!name || !openId) return;
    try {
      await api.renamePlaylist(openId, { name });
      $input('rename-input').value = '';
    } catch (err) { $('playlist-result').textContent = message(err); }
  });

  $('welcome-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $input('welcome-name').value.trim();
    if (name) setName(name);
  });
  $('me-name').addEventListener('click', () => {
    $input('welcome-name').value = state?.display_name || '';
    $('welcome').hidden = false;
    $input('welcome-name').focus();
    $input('welcome-name').select();
  });
  $('nav-music').addEventListener('click', () => showPage('music'));
  $('nav-connection').addEventListener('click', () => showPage('connection'));
  $('nav-invite').addEventListener('click', () => {
    showPage('connection');
    $input('invite-link').focus();
    $input('invite-link').select();
  });
  $('back').addEventListener('click', closePlaylist);
  $('np-title').addEventListener('click', () => {
    const playing = shownSession?.view.now_playing?.track_id;
    if (playing) showTrack(playing);
  });
  $('track-find').addEventListener('input', findInPlaylist);
  $('import-button').addEventListener('click', () => $input('import-file').click());
  // A playlist file dropped anywhere on the page is imported too (a dragged track row
  // carries no file, and is left to its list).
  /** @param {DragEvent} e */
  const carriesFiles = (e) => Boolean(e.dataTransfer?.types.includes('Files'));
  window.addEventListener('dragover', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  });
  window.addEventListener('drop', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    for (const file of e.dataTransfer?.files ?? []) importFile(file);
  });
  $('import-file').addEventListener('change', () => {
    const file = $input('import-file').files?.[0];
    $input('import-file').value = ''; // the same file again is a change too
    if (file) importFile(file);
  });
  $('playlist-find').addEventListener('input', () => { if (state) renderPlaylists(state); });
  clearOnEscape('playlist-find', () => { if (state) renderPlaylists(state); });
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let typing;
  $('library-q').addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(searchLibrary, 150); });
  $('music-dirs').addEventListener('input', () => { $('music-dirs').dataset.editing = 'yes'; });
  $('music-folders-form').addEventListener('submit', (e) => { e.preventDefault(); setMusicFolders(); });
  clearOnEscape('library-q', searchLibrary);
  clearOnEscape('track-find', findInPlaylist);
  // Ctrl+F (⌘F) finds in the playlist open: the page's own find sees only the rows drawn.
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'f' || !(e.ctrlKey || e.metaKey) || e.altKey || e.shiftKey) return;
    if ($('playlist').hidden || $('find-row').hidden || document.querySelector('dialog[open]')) return;
    e.preventDefault();
    $input('track-find').focus();
    $input('track-find').select();
  });
  $('guests-panel').addEventListener('toggle', () => refreshGuests());
  $('guests-on').addEventListener('click', async () => {
    if (!openId) return;
    try {
      const lan = /** @type {HTMLInputElement} */ ($('guests-lan')).checked;
      await refreshGuests(await api.switchGuests(openId, { on: true, lan, relay: false }));
      $('guests-result').textContent = '';
    } catch (e) { $('guests-result').textContent = message(e); }
  });
  $('guests-off').addEventListener('click', async () => {
    if (!openId) return;
    try { await refreshGuests(await api.switchGuests(openId, { on: false, lan: false, relay: false })); } catch (e) { $('guests-result').textContent = message(e); }
  });

  $('share').addEventListener('click', async () => {
    if (!openId) return;
    try {
      const { link } = await api.sharePlaylist(openId, {});
      $('share-name').textContent = shownPlaylist?.name || '';
      $('share-note').textContent = SHARE_NOTE;
      armRotate(false);
      $input('share-link').value = link;
      /** @type {HTMLDialogElement} */ ($('share-dialog')).showModal();
      $input('share-link').select();
    } catch (err) { $('playlist-result').textContent = message(err); }
  });
}

async function refreshIpcLog() {
  try { $('ipc-log').textContent = (await api.ipcLog()).join('\n'); }
  catch (e) { $('ipc-log').textContent = message(e); }
}

async function loadInvite() {
  try {
    $input('invite-link').value = (await api.invite()).link;
    /** @type {HTMLImageElement} */ ($('invite-qr')).src = `/api/invite.svg?v=${Date.now()}`;
  } catch { setTimeout(loadInvite, 1000); }
}

async function loop() {
  /** @type {number | null} */
  let since = null;
  for (;;) {
    try {
      const s = await api.state(since);
      if (since !== null && s.version < since) since = null; // the controller restarted
      else since = s.version;
      setLive(true);
      render(s);
    } catch {
      setLive(false);
      since = null;
      await sleep(1000);
    }
  }
}

/** @type {any} */ (window).whatnextDebug = () => state;
wire();
loop();
