// WhatNext view: one long-poll loop on /api/state?since=V keeps every panel live; actions
// call the same JSON API as the CLI. All text goes in through textContent (no HTML from data).

const $ = (id) => document.getElementById(id);
let state = null;
let openId = null;
let openVersion = -1;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const init = { credentials: 'same-origin', ...options };
  if (init.body && typeof init.body !== 'string') {
    init.body = JSON.stringify(init.body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let body = text;
  try { body = JSON.parse(text); } catch { /* text */ }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${text}`);
  return body;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setLive(ok) {
  const badge = $('live');
  badge.textContent = ok ? 'live' : 'reconnecting…';
  badge.className = `badge ${ok ? 'live' : 'down'}`;
}

function replaceChildren(node, items, empty) {
  node.replaceChildren(...items);
  if (empty) empty.hidden = items.length > 0;
}

function renderNode(s) {
  $('peer-id').textContent = s.peer_id;
  $('node-state').textContent = s.node;
  $('node-state').className = s.node === 'running' ? 'ok' : (s.node === 'failed' ? 'bad' : '');
  replaceChildren($('listen'), s.listen_addrs.map((a) => el('li', {}, el('code', {}, a))));
  const pid = s.service.pid === null ? 'not running' : `pid ${s.service.pid}`;
  $('service').textContent = `${pid}, ${s.service.restarts} restart${s.service.restarts === 1 ? '' : 's'}`;
  $('last-error').textContent = s.last_error || 'none';
  $('last-error').className = s.last_error ? 'bad' : '';
}

function renderPeers(s) {
  const items = s.connections.map((c) => {
    const rtt = c.rtt_ms === null ? 'measuring…' : `${c.rtt_ms.toFixed(2)} ms`;
    const since = new Date(c.since_ms).toLocaleTimeString();
    return el('li', { 'data-peer': c.peer_id },
      el('code', {}, c.peer_id), ` — ${c.transport}, ${c.relayed ? 'relayed' : 'direct'}, ${c.direction}, rtt ${rtt}, since ${since}`);
  });
  replaceChildren($('peers'), items, $('no-peers'));
}

function renderPlaylists(s) {
  const items = s.playlists.map((p) => el('li', {},
    el('button', { type: 'button', class: 'pl', onclick: () => openPlaylist(p.id) }, p.name),
    ` — ${p.track_count} track${p.track_count === 1 ? '' : 's'}`));
  replaceChildren($('playlists'), items, $('no-playlists'));
}

function render(s) {
  state = s;
  renderNode(s);
  renderPeers(s);
  renderPlaylists(s);
  $('raw-state').textContent = JSON.stringify(s, null, 2);
  if ($('debug').open) refreshIpcLog();
  if (openId && openVersion !== s.version) refreshPlaylist();
}

async function openPlaylist(id) {
  openId = id;
  openVersion = -1;
  $('share-link').hidden = true;
  await refreshPlaylist();
  $('playlist').hidden = false;
  $('pl-name').focus?.();
}

async function refreshPlaylist() {
  if (!openId) return;
  const version = state ? state.version : 0;
  let p;
  try {
    p = await api(`/api/playlists/${encodeURIComponent(openId)}`);
  } catch (e) {
    $('playlist-result').textContent = e.message;
    return;
  }
  openVersion = version;
  $('pl-name').textContent = p.name;
  $('pl-meta').textContent = `${p.tracks.length} tracks · ${p.queue_mode.replaceAll('_', ' ')} · owner ${p.owner.display_name}${p.shared ? ' · shared' : ''}`;
  replaceChildren($('members'), (p.members || []).map((m) => el('li', {},
    `${m.display_name || m.peer_id.slice(0, 12)} ${m.owner ? '(owner) ' : ''}`,
    el('span', { class: m.online ? 'ok' : 'hint' }, m.online ? '● online' : '○ offline'))));
  replaceChildren($('tracks'), p.tracks.map((t, i) => {
    const detail = [t.artists.join(', '), t.album].filter(Boolean).join(' · ');
    return el('li', {
      'data-track': t.id,
      draggable: 'true',
      ondragstart: (e) => { e.dataTransfer.setData('text/plain', t.id); e.dataTransfer.effectAllowed = 'move'; },
      ondragover: (e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; },
      ondrop: (e) => { e.preventDefault(); const id = e.dataTransfer.getData('text/plain'); if (id && id !== t.id) move(id, i); },
    },
      el('span', { class: 'what' }, el('strong', {}, t.title), detail ? ` — ${detail}` : '',
        el('br'), el('span', { class: 'by' }, `added by ${t.added_by.display_name || t.added_by.peer_id.slice(0, 12)}`)),
      el('button', { type: 'button', class: 'small ghost', 'aria-label': `Move ${t.title} up`, onclick: () => move(t.id, i - 1) }, '↑'),
      el('button', { type: 'button', class: 'small ghost', 'aria-label': `Move ${t.title} down`, onclick: () => move(t.id, i + 1) }, '↓'),
      el('button', { type: 'button', class: 'small ghost', 'aria-label': `Remove ${t.title}`, onclick: () => removeTrack(t.id) }, '✕'));
  }));
}

async function move(trackId, to) {
  const count = $('tracks').children.length;
  if (to < 0 || to >= count) return;
  try { await api(`/api/playlists/${encodeURIComponent(openId)}/move`, { method: 'POST', body: { track_id: trackId, to } }); }
  catch (e) { $('playlist-result').textContent = e.message; }
}

async function removeTrack(trackId) {
  try { await api(`/api/playlists/${encodeURIComponent(openId)}/tracks/${encodeURIComponent(trackId)}`, { method: 'DELETE' }); }
  catch (e) { $('playlist-result').textContent = e.message; }
}

async function copy(text, button) {
  try { await navigator.clipboard.writeText(text); button.textContent = 'Copied'; }
  catch { button.textContent = 'Select and copy'; }
  setTimeout(() => { button.textContent = button.dataset.label; }, 1500);
}

function wire() {
  for (const b of document.querySelectorAll('button')) b.dataset.label = b.textContent;
  $('debug').addEventListener('toggle', () => { if ($('debug').open) refreshIpcLog(); });
  $('copy-peer').addEventListener('click', (e) => copy($('peer-id').textContent, e.target));
  $('copy-invite').addEventListener('click', (e) => copy($('invite-link').value, e.target));

  $('connect-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = $('connect-input').value.trim();
    const out = $('connect-result');
    if (!value) return;
    out.className = '';
    out.textContent = 'Connecting…';
    try {
      if (value.toLowerCase().startsWith('whtnxt://')) {
        const attempt = await api('/api/open', { method: 'POST', body: { url: value, wait: true } });
        out.textContent = `Connected to ${attempt.peer_id}${attempt.session ? ' — playlist received' : ''}`;
      } else {
        const reply = await api('/api/connect', { method: 'POST', body: { addr: value } });
        out.textContent = `Connected to ${reply.peer_id}`;
      }
      out.className = 'ok';
      $('connect-input').value = '';
    } catch (err) {
      out.textContent = err.message;
      out.className = 'bad';
    }
  });

  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('new-name').value.trim();
    if (!name) return;
    try {
      const { id } = await api('/api/playlists', { method: 'POST', body: { name } });
      $('new-name').value = '';
      await openPlaylist(id);
    } catch (err) { $('playlist-result').textContent = err.message; }
  });

  $('add-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    const seconds = Number(f.duration.value);
    const track = {
      title: f.title.value,
      artists: f.artist.value.trim() ? [f.artist.value.trim()] : [],
      album: f.album.value.trim() || null,
      duration_ms: seconds > 0 ? Math.round(seconds * 1000) : null,
      uri: f.uri.value.trim() || null,
    };
    try {
      await api(`/api/playlists/${encodeURIComponent(openId)}/tracks`, { method: 'POST', body: track });
      e.target.reset();
      $('playlist-result').textContent = '';
    } catch (err) { $('playlist-result').textContent = err.message; }
  });

  $('rename-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('rename-input').value.trim();
    if (!name) return;
    try {
      await api(`/api/playlists/${encodeURIComponent(openId)}/rename`, { method: 'POST', body: { name } });
      $('rename-input').value = '';
    } catch (err) { $('playlist-result').textContent = err.message; }
  });

  $('share').addEventListener('click', async () => {
    try {
      const { link } = await api(`/api/playlists/${encodeURIComponent(openId)}/share`, { method: 'POST', body: {} });
      $('share-link').value = link;
      $('share-link').hidden = false;
      $('share-link').select();
    } catch (err) { $('playlist-result').textContent = err.message; }
  });
}

async function refreshIpcLog() {
  try { $('ipc-log').textContent = (await api('/api/debug/ipc')).join('\n'); }
  catch (e) { $('ipc-log').textContent = e.message; }
}

async function loadInvite() {
  try {
    $('invite-link').value = (await api('/api/invite')).link;
    $('invite-qr').src = `/api/invite.svg?v=${Date.now()}`;
  } catch { setTimeout(loadInvite, 1000); }
}

async function loop() {
  let since = null;
  for (;;) {
    try {
      const s = await api(since === null ? '/api/state' : `/api/state?since=${since}`);
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

window.whatnextDebug = () => state;
wire();
loadInvite();
loop();
