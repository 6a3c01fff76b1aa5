// Generated from crates/protocol (whatnext_protocol::api::typescript_definitions).
// Do not edit: run `UPDATE_API_TYPES=1 cargo test -p whatnext-api api_types`.

export type AppState = { 
/**
 * Grows by at least one on every change; long-pollers wait for it to pass their cursor.
 */
version: number, 
/**
 * The controller's process id.
 */
pid: number, peer_id: string, node: NodeStatus, listen_addrs: Array<string>, 
/**
 * Addresses other peers confirmed they can reach us at.
 */
external_addrs: Array<string>, service: ServiceInfo, connections: Array<Connection>, 
/**
 * Peers found by discovery (mDNS, later the DHT) and not yet expired.
 */
discovered: Array<string>, 
/**
 * The most recent problem still going on, in the words of whoever reported it.
 */
last_error: string | null, 
/**
 * What `last_error` is about, so it can clear when the problem is over: a peer id
 * (cleared when a connection to that peer opens), [`PROBLEM_SERVICE`] (cleared when the
 * network service runs again), or none (an event with no end: kept until the next one).
 */
last_error_about: string | null, 
/**
 * The home directory this controller owns.
 */
home: string, 
/**
 * The names of the people our playlists name, by peer id: `connections`, `sessions`
 * and `link_attempts` name peers by id, a view shows them by these names.
 */
people: { [key in string]: string }, 
/**
 * The name friends see on what this member does.
 */
display_name: string, 
/**
 * Whether the user picked it (config.toml or the view), or it is the account's name
 * taken by default (the view then asks, once).
 */
display_name_chosen: boolean, 
/**
 * Unix milliseconds when the controller started.
 */
started_at_ms: number, 
/**
 * The most recent links opened (newest last, at most [`MAX_LINK_ATTEMPTS`]).
 */
link_attempts: Array<LinkAttempt>, 
/**
 * Every playlist in the store, newest change first.
 */
playlists: Array<PlaylistSummary>, 
/**
 * Shared playlists and their members connected now.
 */
sessions: Array<SessionState>, 
/**
 * What AutoNAT concluded about our reachability.
 */
nat: NatStatus, 
/**
 * Relays holding a reservation for us: peers behind other NATs reach us through them.
 */
relay_reservations: Array<RelayReservation>, 
/**
 * The configured bootstrap and relay nodes and whether we are connected to them.
 */
helpers: Array<HelperNode>, 
/**
 * The most recent failed dials (newest last, at most [`MAX_DIAL_FAILURES`]).
 */
dial_failures: Array<DialFailure>, 
/**
 * DCUtR hole punches: attempts that made a relayed connection direct, and those that failed.
 */
hole_punches: HolePunchCounts, 
/**
 * Whether mDNS (LAN discovery) is on.
 */
mdns: boolean, 
/**
 * Damage the store found (at start, or since: a write that failed) and what it did about
 * it. Nothing in the store is deleted: `kept_at` says where the pieces are.
 */
store_problems: Array<StoreProblem>, 
/**
 * Every network service this controller runs: "main" first (the one `peer_id`,
 * `service`, `node` and `listen_addrs` describe), then one per playlist shared with
 * `--isolated`, each with its own identity.
 */
services: Array<ServiceEntry>, 
/**
 * The music library: how many files, which folders, and a scan under way.
 */
library: LibraryStatus, 
/**
 * Audio moving between this home and members, now.
 */
transfers: Array<Transfer>, 
/**
 * Audio this home wants (it plays, or is up next) that cannot come now, and why: e.g.
 * its members are reachable only through a relay, whose limits stop audio.
 */
media_waiting: Array<MediaWaiting>, };

export type NodeStatus = "starting" | "running" | "restarting" | "failed" | "stopped";

export type NatStatus = "public" | "private" | "unknown";

export type HelperRole = "bootstrap" | "relay";

export type SessionRole = "owner" | "member";

export type Direction = "dialer" | "listener";

export type DialMethod = "known" | "direct" | "relay" | "dht";

export type DialErrorKind = "refused" | "timed_out" | "unreachable" | "wrong_peer" | "no_addresses" | "own_peer_id" | "relay" | "not_found" | "protocol" | "not_running" | "other";

export type ServiceInfo = { 
/**
 * Process id of the current network service; null between a crash and its restart.
 */
pid: number | null, 
/**
 * How many times the controller restarted the service since it started.
 */
restarts: number, 
/**
 * Why the service last had to be restarted (kept after it runs again, when
 * `last_error` has cleared).
 */
last_exit?: string, };

export type ServiceEntry = { 
/**
 * "main", or the id of the playlist an isolated service serves.
 */
name: string, 
/**
 * Its process id; null between a crash and its restart.
 */
pid: number | null, 
/**
 * The peer id it is known by (an isolated one differs from the main one).
 */
peer_id: string, 
/**
 * How many times the controller restarted it.
 */
restarts: number, node: NodeStatus, listen_addrs: Array<string>, 
/**
 * The shared playlists (ids) whose members it serves.
 */
sessions: Array<string>, };

export type Connection = { peer_id: string, 
/**
 * Remote address of the connection.
 */
addr: string, transport: string, 
/**
 * Last measured round-trip time; null until the first ping completes.
 */
rtt_ms: number | null, direction: Direction, relayed: boolean, 
/**
 * Unix milliseconds when the connection was established.
 */
since_ms: number, 
/**
 * The service's id of this connection (several may exist to one peer).
 */
connection_id: number, 
/**
 * How far the peer's clock is from ours, once measured (members of a shared playlist:
 * players keep in step with the clock of whoever holds playback).
 */
clock?: ClockEstimate, };

export type LinkAttempt = { id: number, 
/**
 * The link as received, with any `key=` secret replaced by `…`.
 */
link: string, peer_id: string | null, session: string | null, status: LinkStatus, 
/**
 * Why the attempt failed or the link was refused.
 */
error: string | null, 
/**
 * The address the connection was made on.
 */
addr: string | null, 
/**
 * Time the network service took from dialing to connected, milliseconds.
 */
dial_ms: number | null, 
/**
 * The link carried no address: the peer has to be found by discovery.
 */
needs_discovery: boolean, 
/**
 * Each way tried, in order: the direct addresses, then the relay circuits, then a DHT
 * lookup of the peer id.
 */
steps: Array<DialStep>, started_at_ms: number, finished_at_ms: number | null, };

export type LinkStatus = "pending" | "connected" | "failed" | "invalid";

export type SessionState = { 
/**
 * The playlist id.
 */
id: string, role: SessionRole, connected_members: Array<string>, 
/**
 * The network service serving it: "main", or the playlist id for an isolated share.
 */
service: string, 
/**
 * Reactions of the last 30 seconds (ours and those of members online), oldest first.
 */
reactions: Array<Reaction>, };

export type RelayReservation = { relay_peer_id: string, 
/**
 * Our `/p2p-circuit` address on that relay, as it goes into invites.
 */
addr: string, since_ms: number, };

export type HelperNode = { addr: string, role: HelperRole, peer_id: string | null, connected: boolean, 
/**
 * Why the last dial to it failed, if it did.
 */
error: string | null, };

export type DialFailure = { peer_id: string | null, reason: string, 
/**
 * What kind of failure `reason` is, for explanations and advice.
 */
kind: DialErrorKind, at_ms: number, };

export type HolePunchCounts = { succeeded: number, failed: number, };

export type StoreProblem = { 
/**
 * The playlist it concerns.
 */
playlist_id: string, 
/**
 * What happened and what was done about it, in plain words.
 */
what: string, 
/**
 * Where the damaged or set-aside bytes are kept, if any were.
 */
kept_at: string | null, };

export type DialStep = { method: DialMethod, 
/**
 * The addresses tried (for "dht": those the lookup found).
 */
addrs: Array<string>, ok: boolean, error: string | null, ms: number, };

export type PlaylistSummary = { id: string, name: string, track_count: number, updated_at: number, 
/**
 * The store found damage in it and is waiting for what repairs it (see `store_problems`
 * in the state); it is read-only until then.
 */
damaged: boolean, };

export type Playlist = { id: string, name: string, description: string, owner: Author, 
/**
 * Members besides the owner, by peer id (sorted).
 */
collaborators: Array<Author>, tags: Array<string>, queue_mode: QueueMode, 
/**
 * Unix milliseconds.
 */
created_at: number, updated_at: number, tracks: Array<Track>, };

export type Track = { id: string, title: string, artists: Array<string>, album: string | null, duration_ms: number | null, 
/**
 * `spotify:…`, `https://…` or `file:…`.
 */
uri: string | null, added_by: Author, 
/**
 * Unix milliseconds.
 */
added_at: number, 
/**
 * The audio file this track is, when it was added from one: members who have those
 * bytes play them, the others fetch them from a member who has.
 */
content?: Content, };

export type Author = { peer_id: string, display_name: string, };

export type NewTrack = { title: string, artists: Array<string>, album: string | null, duration_ms: number | null, uri: string | null, content?: Content, };

export type QueueMode = "free_for_all" | "turn_taking" | "vote_based";

export type ErrorReply = { error: string, };

export type OkReply = { ok: boolean, };

export type ConnectRequest = { addr: string, 
/**
 * How long to wait for the connection, seconds (default 15).
 */
timeout_secs?: number | null, };

export type ConnectReply = { peer_id: string, 
/**
 * The address the connection was made on.
 */
addr: string, 
/**
 * How long the dial took inside the network service.
 */
dial_ms: number | null, };

export type DisconnectRequest = { peer_id: string, };

export type LinkReply = { link: string, };

export type OpenRequest = { url: string, 
/**
 * Answer once the connection is up or failed (default: at once, with the attempt pending).
 */
wait?: boolean, timeout_secs?: number | null, };

export type LoginLinkReply = { url: string, };

export type ConfigChange = { display_name?: string | null, 
/**
 * The music folders, absolute paths of folders that exist (an empty list: none).
 */
music_dirs?: Array<string> | null, };

export type CreatePlaylistRequest = { name: string, description?: string, };

export type CreatedReply = { id: string, };

export type PlaylistView = { 
/**
 * The owner first, then the collaborators.
 */
members: Array<Member>, 
/**
 * Whether this node shares the playlist (holds its session key).
 */
shared: boolean, id: string, name: string, description: string, owner: Author, 
/**
 * Members besides the owner, by peer id (sorted).
 */
collaborators: Array<Author>, tags: Array<string>, queue_mode: QueueMode, 
/**
 * Unix milliseconds.
 */
created_at: number, updated_at: number, tracks: Array<Track>, };

export type Content = { 
/**
 * BLAKE3 of the bytes, 64 hex digits.
 */
blake3: string, size: number, 
/**
 * e.g. `audio/mpeg`, `audio/flac`.
 */
mime: string, };

export type LibraryStatus = { 
/**
 * Audio files in the library.
 */
files: number, 
/**
 * The music folders scanned (config `music_dirs`).
 */
dirs: Array<string>, 
/**
 * A scan under way.
 */
scanning: ScanProgress | null, };

export type Transfer = { blake3: string, peer_id: string, 
/**
 * Bytes moved (and verified, when fetching) so far.
 */
bytes: number, size: number, direction: TransferDirection, };

export type MediaWaiting = { blake3: string, reason: string, };

export type ClockEstimate = { 
/**
 * Their clock minus ours, in ms.
 */
offset_ms: number, 
/**
 * At most this far off (half the round trip of the sample).
 */
error_ms: number, };

export type TransferDirection = "download" | "upload";

export type LibraryEntry = { path: string, title: string, artists: Array<string>, album: string | null, duration_ms: number | null, content: Content, };

export type ScanFailure = { path: string, reason: string, };

export type ScanReport = { 
/**
 * Audio files found (read or not).
 */
files: number, added: number, updated: number, removed: number, failed: Array<ScanFailure>, 
/**
 * The folders scanned.
 */
dirs: Array<string>, };

export type ScanProgress = { done: number, total: number, };

export type LibraryReply = { entries: Array<LibraryEntry>, 
/**
 * Files in the library in all (the reply may hold fewer).
 */
total: number, 
/**
 * Files that match the query (all of them without one): `entries` holds the first.
 */
found: number, };

export type LibraryFileRequest = { path: string, };

export type Member = { peer_id: string, display_name: string, 
/**
 * Connected now (always true for this node itself, and for the guests of our guest
 * page who are in).
 */
online: boolean, owner: boolean, 
/**
 * A guest, who joined from a member's guest page.
 */
guest: boolean, };

export type ShareRequest = { 
/**
 * Replace the key: links given out before stop working for newcomers.
 */
rotate?: boolean, 
/**
 * Serve the playlist from its own network service with its own identity, so its
 * members cannot tie it to this node's main peer id. On a shared playlist: moves it.
 */
isolated?: boolean, };

export type RevokeRequest = { peer_id: string, };

export type RenameRequest = { name: string, };

export type AddTracksRequest = { tracks: Array<NewTrack>, } | NewTrack;

export type AddedTrack = { track_id: string | null, };

export type AddedTracks = { track_ids: Array<string>, };

export type MoveRequest = { track_id: string, to: number, };

export type ImportRequest = { 
/**
 * The file's text: WhatNext Markdown (from `export`), M3U/M3U8, XSPF or CSV, told
 * apart by its content. (The field keeps its first name: scripts send it.)
 */
markdown: string, 
/**
 * The name of a playlist from another app's file that does not name itself (M3U
 * without `#PLAYLIST`, CSV): e.g. the file's name.
 */
name?: string, 
/**
 * Give it a new id (to import a copy of a playlist that exists here).
 */
as_new?: boolean, };

export type DoctorReport = { 
/**
 * The worst status among the checks.
 */
status: CheckStatus, 
/**
 * One sentence: the most important finding.
 */
summary: string, checks: Array<DoctorCheck>, };

export type SessionMode = "free_for_all" | "turn_taking" | "vote";

export type MemberRole = "owner" | "co_host" | "member" | "guest";

export type NowPlaying = { track_id: string, title: string, artists: Array<string>, duration_ms: number | null, 
/**
 * Where playback is now (computed from when it started, unless paused).
 */
position_ms: number, paused: boolean, 
/**
 * The peer id of whoever started it.
 */
started_by: string, 
/**
 * Its audio, when it was added from a file (`GET /media/<blake3>` plays it).
 */
content?: Content, 
/**
 * Where to open it when there is no audio here (`spotify:…`, `https://…`).
 */
uri?: string, 
/**
 * When playback (re)started, in Unix ms on the clock of whoever started it, and where in
 * the track it was then: players place themselves from these rather than from when they
 * read `position_ms` (which moves on while the answer travels).
 */
started_at_ms?: number, start_position_ms?: number, };

export type UpNext = { track_id: string, title: string, artists: Array<string>, 
/**
 * The peer id of whoever added it.
 */
added_by: string, 
/**
 * Up votes minus down votes.
 */
score: number, 
/**
 * This member's vote: 1, -1, or 0.
 */
my_vote: number, };

export type Turn = { peer_id: string, display_name: string, 
/**
 * How many more tracks this turn's member may add before the turn passes.
 */
tracks_left: number, 
/**
 * Turns completed so far (the turn number, from 0).
 */
number: number, };

export type SkipVotes = { votes: number, needed: number, };

export type Played = { track_id: string, title: string, 
/**
 * Unix milliseconds.
 */
played_at: number, 
/**
 * The peer id of whoever played it.
 */
by: string, };

export type Reaction = { peer_id: string, emoji: string, 
/**
 * Unix milliseconds.
 */
at: number, };

export type Comment = { id: string, peer_id: string, display_name: string, text: string, 
/**
 * The track it is about, if any.
 */
track_id: string | null, 
/**
 * The comment it answers, if any.
 */
reply_to: string | null, 
/**
 * Unix milliseconds.
 */
at: number, 
/**
 * Removed by its author or the owner: the text is gone, the thread stays.
 */
deleted: boolean, };

export type SessionView = { playlist_id: string, mode: SessionMode, 
/**
 * In `turn_taking`: tracks per turn.
 */
per_turn: number, now_playing: NowPlaying | null, up_next: Array<UpNext>, turn: Turn | null, 
/**
 * Members in join order.
 */
turn_order: Array<string>, playback_owner: string | null, roles: { [key in string]: MemberRole }, skip: SkipVotes, 
/**
 * Newest last.
 */
history: Array<Played>, 
/**
 * The last 30 seconds'.
 */
reactions: Array<Reaction>, 
/**
 * The playlist that plays when up next runs dry.
 */
fallback: string | null, 
/**
 * This member's peer id in this session and role.
 */
me: string, 
/**
 * The clock of whoever holds playback minus ours, in ms, when measured (their
 * `started_at_ms` is on their clock): players add it to theirs.
 */
clock_offset_ms?: number, my_role: MemberRole, 
/**
 * Comments and replies, oldest first; removed ones stay with `deleted` and no text, so
 * their replies keep their place.
 */
comments: Array<Comment>, };

export type SessionAction = { "action": "play", track_id?: string, } | { "action": "pause" } | { "action": "resume" } | { "action": "seek", position_ms: number, } | { "action": "next" } | { "action": "take" } | { "action": "mode", mode: SessionMode, per_turn?: number, } | { "action": "role", peer_id: string, role: MemberRole, } | { "action": "pass" } | { "action": "vote", track_id: string, vote: number, } | { "action": "skip" } | { "action": "comment", text: string, track_id?: string, reply_to?: string, } | { "action": "uncomment", comment_id: string, } | { "action": "fallback", playlist_id?: string, } | { "action": "react", emoji: string, };

export type SaveHistoryRequest = { name: string, };

export type DoctorCheck = { 
/**
 * Stable identifier for scripts: "controller", "service", "network", "listen", "nat",
 * "relay", "mdns", "bootstrap", "dial".
 */
id: string, 
/**
 * What was checked, for people.
 */
title: string, status: CheckStatus, 
/**
 * What was found.
 */
detail: string, 
/**
 * What to do about it (empty when nothing needs doing).
 */
advice: string, };

export type CheckStatus = "ok" | "info" | "warn" | "fail";

export type GuestsRequest = { on: boolean, 
/**
 * Listen on the LAN's interfaces too (default: 127.0.0.1 only).
 */
lan: boolean, 
/**
 * Tracks a guest may add per hour (default 10).
 */
adds_per_hour?: number | null, 
/**
 * Also through the configured relay (`whatnext relay --guest-http PORT`), for guests
 * off the LAN: the URL is then on the relay.
 */
relay: boolean, };

export type GuestInfo = { peer_id: string, name: string, 
/**
 * Seconds since the guest's page last asked anything (a guest away for 5 minutes is
 * gone).
 */
idle_secs: number, added_last_hour: number, };

export type GuestsReply = { on: boolean, 
/**
 * `http://<addr>:<port>/g/<code>#pin=<PIN>`: the PIN in the fragment, which browsers
 * never send, so it stays out of logs and history.
 */
url?: string | null, pin?: string | null, 
/**
 * The other addresses the page answers on (each LAN interface with `--lan`).
 */
also: Array<string>, guests: Array<GuestInfo>, adds_per_hour: number, };

export type GuestRemovedReply = { peer_id: string, };

export type GuestPageInfo = { 
/**
 * The playlist's name.
 */
playlist: string, 
/**
 * Whether this browser's cookie is a guest's still in.
 */
joined: boolean, 
/**
 * That guest's peer id (what its page signs as).
 */
me?: string | null, };

export type GuestJoinRequest = { pin: string, name: string, };

export type GuestJoinReply = { peer_id: string, name: string, };

export type GuestTrackRequest = { title: string, artists: Array<string>, 
/**
 * The content id (`blake3`) of a hit of the host's library.
 */
from_library?: string | null, };

export type GuestLibraryHit = { title: string, artists: Array<string>, album?: string | null, duration_ms?: number | null, 
/**
 * What `from_library` names.
 */
blake3: string, };

export type GuestLibraryReply = { hits: Array<GuestLibraryHit>, };

export type GuestVote = "up" | "down" | "clear";

export type GuestVoteRequest = { track_id: string, vote: GuestVote, };

export type GuestReactRequest = { emoji: string, };

export type GuestCommentRequest = { text: string, track_id?: string | null, };

export type GuestPerson = { peer_id: string, name: string, guest: boolean, };

export type GuestState = { version: number, 
/**
 * The playlist's name.
 */
playlist: string, 
/**
 * The guest's own name.
 */
my_name: string, 
/**
 * The owner, the members and the guests.
 */
people: Array<GuestPerson>, 
/**
 * How many tracks up next holds: the session's `up_next` here lists only the first
 * [`GUEST_UP_NEXT`] (a phone draws them at every change, and a guest page through a
 * relay answers within [`MAX_TUNNEL_BODY`]).
 */
up_next_total: number, playlist_id: string, mode: SessionMode, 
/**
 * In `turn_taking`: tracks per turn.
 */
per_turn: number, now_playing: NowPlaying | null, up_next: Array<UpNext>, turn: Turn | null, 
/**
 * Members in join order.
 */
turn_order: Array<string>, playback_owner: string | null, roles: { [key in string]: MemberRole }, skip: SkipVotes, 
/**
 * Newest last.
 */
history: Array<Played>, 
/**
 * The last 30 seconds'.
 */
reactions: Array<Reaction>, 
/**
 * The playlist that plays when up next runs dry.
 */
fallback: string | null, 
/**
 * This member's peer id in this session and role.
 */
me: string, 
/**
 * The clock of whoever holds playback minus ours, in ms, when measured (their
 * `started_at_ms` is on their clock): players add it to theirs.
 */
clock_offset_ms?: number, my_role: MemberRole, 
/**
 * Comments and replies, oldest first; removed ones stay with `deleted` and no text, so
 * their replies keep their place.
 */
comments: Array<Comment>, };
