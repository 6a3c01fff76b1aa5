// The typed view → controller API. Every body type comes from api.d.ts, which is generated
// from the Rust types the controller serves (crates/protocol/src/api.rs); `tsc --checkJs`
// checks this module and app.js against it, so a changed Rust type fails the build here.
// @ts-check

/** @typedef {import('./api').AppState} AppState */
/** @typedef {import('./api').LinkAttempt} LinkAttempt */
/** @typedef {import('./api').ConnectReply} ConnectReply */
/** @typedef {import('./api').LinkReply} LinkReply */
/** @typedef {import('./api').CreatedReply} CreatedReply */
/** @typedef {import('./api').OkReply} OkReply */
/** @typedef {import('./api').PlaylistView} PlaylistView */
/** @typedef {import('./api').NewTrack} NewTrack */
/** @typedef {import('./api').AddedTrack} AddedTrack */
/** @typedef {import('./api').ErrorReply} ErrorReply */

/**
 * One request to the controller; throws an Error carrying the API's `error` text.
 * @template T
 * @param {string} path
 * @param {{ method?: string, body?: unknown }} [options]
 * @returns {Promise<T>}
 */
async function call(path, options = {}) {
  /** @type {RequestInit} */
  const init = { credentials: 'same-origin', method: options.method || 'GET' };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Error('WhatNext is not reachable: it may be restarting (this page reconnects by itself), or start it with `whatnext run`.');
  }
  const text = await response.text();
  /** @type {unknown} */
  let body = text;
  try { body = JSON.parse(text); } catch { /* plain text */ }
  if (!response.ok) {
    const error = /** @type {Partial<ErrorReply>} */ (body && typeof body === 'object' ? body : {}).error;
    // The status goes along: a caller may answer a conflict (409) otherwise.
    throw Object.assign(new Error(error || `${response.status} ${text}`), { status: response.status });
  }
  return /** @type {T} */ (body);
}

const playlist = (/** @type {string} */ id) => `/api/playlists/${encodeURIComponent(id)}`;

/**
 * The state once its version passes `since` (long poll), or at once without `since`.
 * @param {number | null} since
 * @returns {Promise<AppState>}
 */
export const state = (since) => call(since === null ? '/api/state' : `/api/state?since=${since}`);

/** @returns {Promise<LinkReply>} */
export const invite = () => call('/api/invite');

/**
 * @param {import('./api').ConfigChange} change
 * @returns {Promise<import('./api').OkReply>}
 */
export const setConfig = (change) => call('/api/config', { method: 'POST', body: change });

/**
 * @param {import('./api').ConnectRequest} request
 * @returns {Promise<ConnectReply>}
 */
export const connect = (request) => call('/api/connect', { method: 'POST', body: request });

/**
 * @param {import('./api').OpenRequest} request
 * @returns {Promise<LinkAttempt>}
 */
export const open = (request) => call('/api/open', { method: 'POST', body: request });

/** @returns {Promise<string[]>} */
export const ipcLog = () => call('/api/debug/ipc');

/**
 * @param {import('./api').CreatePlaylistRequest} request
 * @returns {Promise<CreatedReply>}
 */
export const createPlaylist = (request) => call('/api/playlists', { method: 'POST', body: request });

/**
 * A playlist file made a playlist here: M3U/M3U8, XSPF, CSV or WhatNext Markdown.
 * @param {import('./api').ImportRequest} request
 * @returns {Promise<CreatedReply>}
 */
export const importPlaylist = (request) => call('/api/playlists/import', { method: 'POST', body: request });

/** Where a playlist is saved as a file: `md`, `m3u` or `xspf`.
 *  @param {string} id @param {string} format */
export const exportUrl = (id, format) => `${playlist(id)}/export?format=${format}`;

/**
 * @param {string} id
 * @returns {Promise<PlaylistView>}
 */
export const showPlaylist = (id) => call(playlist(id));

/**
 * @param {string} id
 * @param {NewTrack} track
 * @returns {Promise<AddedTrack>}
 */
export const addTrack = (id, track) => call(`${playlist(id)}/tracks`, { method: 'POST', body: track });

/**
 * Several tracks in one change, in order.
 * @param {string} id
 * @param {NewTrack[]} tracks
 * @returns {Promise<import('./api').AddedTracks>}
 */
export const addTracks = (id, tracks) => call(`${playlist(id)}/tracks`, { method: 'POST', body: { tracks } });

/**
 * The music library's files: the first `limit` of those matching `q` (title, artists,
 * album, file name), best first, and how many match (`found`).
 * @param {string} q
 * @param {number} limit
 * @returns {Promise<import('./api').LibraryReply>}
 */
export const library = (q, limit) => call(`/api/library?q=${encodeURIComponent(q)}&limit=${limit}`);

/**
 * @param {string} id
 * @param {import('./api').MoveRequest} request
 * @returns {Promise<OkReply>}
 */
export const moveTrack = (id, request) => call(`${playlist(id)}/move`, { method: 'POST', body: request });

/**
 * @param {string} id
 * @param {string} trackId
 * @returns {Promise<OkReply>}
 */
export const removeTrack = (id, trackId) =>
  call(`${playlist(id)}/tracks/${encodeURIComponent(trackId)}`, { method: 'DELETE' });

/**
 * The session's guest page and who is in it.
 * @param {string} id
 * @returns {Promise<import('./api').GuestsReply>}
 */
export const guests = (id) => call(`${playlist(id)}/guests`);

/**
 * Opens or closes the session's guest page.
 * @param {string} id
 * @param {import('./api').GuestsRequest} request
 * @returns {Promise<import('./api').GuestsReply>}
 */
export const switchGuests = (id, request) => call(`${playlist(id)}/guests`, { method: 'POST', body: request });

/**
 * Takes a guest out.
 * @param {string} id
 * @param {string} guest its peer id
 * @returns {Promise<import('./api').GuestRemovedReply>}
 */
export const removeGuest = (id, guest) => call(`${playlist(id)}/guests/${encodeURIComponent(guest)}`, { method: 'DELETE' });

/**
 * Deletes it here (moved to the store's trash).
 * @param {string} id
 * @returns {Promise<OkReply>}
 */
export const deletePlaylist = (id) => call(playlist(id), { method: 'DELETE' });

/**
 * @param {string} id
 * @param {import('./api').RenameRequest} request
 * @returns {Promise<OkReply>}
 */
export const renamePlaylist = (id, request) => call(`${playlist(id)}/rename`, { method: 'POST', body: request });

/**
 * @param {string} id
 * @param {import('./api').ShareRequest} request
 * @returns {Promise<LinkReply>}
 */
export const sharePlaylist = (id, request) => call(`${playlist(id)}/share`, { method: 'POST', body: request });

/**
 * The listening session of a playlist: now playing, up next, turns, votes.
 * @param {string} id
 * @returns {Promise<import('./api').SessionView>}
 */
export const session = (id) => call(`${playlist(id)}/session`);

/**
 * One action in the session; answers the session after it (an Error with the reason when
 * the session's rules forbid it to this member).
 * @param {string} id
 * @param {import('./api').SessionAction} action
 * @returns {Promise<import('./api').SessionView>}
 */
export const sessionAct = (id, action) => call(`${playlist(id)}/session`, { method: 'POST', body: action });
