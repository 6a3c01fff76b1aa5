//! Audio moving between members (`/whatnext/blob/1.0.0`, see
//! `whatnext_protocol::blob`): the fetcher, which gets the content of what plays now and next
//! from a member who has it, and the board of transfers under way (`transfers` in the state).
//!
//! How bytes move: the network service never opens a file. A group (256 KiB) travels from
//! the serving controller's disk, raw after a short JSON header (a frame's attachment),
//! through its service's pipe, over the libp2p connection in one request-response stream,
//! through the fetching service's pipe, to the fetching controller, which checks it against
//! the outboard (itself checked against the content id) before it writes it to
//! `<home>/media/<blake3>.partial`. A transfer cut short (a crash, a disconnect) resumes
//! from the last whole group on disk that still matches the outboard; a group that fails
//! its check is thrown away and the content asked of another member.

use std::{
    collections::{HashMap, HashSet},
    io::{Seek as _, Write as _},
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use whatnext_media::outboard::{self, GROUP_LEN};
use whatnext_protocol::{
    blob::{BlobRequest, BlobResponse},
    ipc::AppProtocol,
    playlist::Content,
    state::{MediaWaiting, Transfer, TransferDirection},
};

use crate::{
    library::Library,
    music::Music,
    services::ServiceHandle,
    sessions::Sessions,
    state::{StateHandle, now_ms},
};

/// How far ahead the fetcher looks: now playing and this many of up next.
const AHEAD: usize = 3;
/// How often the fetcher looks again at what plays while content it wants is missing (a
/// fetch that failed is retried; a member coming online is a change, looked at at once).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// After a look, how many times as long as it took the fetcher waits before the next: it
/// holds the store's lock a tenth of the time at most.
const LOOK_SHARE: u32 = 10;
/// After a change, how long the fetcher lets more changes come before it looks.
const SETTLE: Duration = Duration::from_millis(10);
/// Groups asked for at once from one member: a round trip through two pipes and the
/// connection per group would leave the link idle most of the time.
const WINDOW: usize = 16;
/// A transfer without progress for this long leaves the board.
const STALE: Duration = Duration::from_secs(15);
/// One group's request, answer included.
const GROUP_TIMEOUT: Duration = Duration::from_secs(60);

/// After the relay stopped a fetch from a member reachable only through it (and nothing
/// came), how long that member is not asked again for that audio while still relay-only:
/// each try would spend the relay's budget for nothing.
const RELAY_BACKOFF: Duration = Duration::from_secs(120);
/// What the listener is told when the only way to a member's audio is a relay.
const THROUGH_A_RELAY_ONLY: &str = "The members who have this song are reachable only through a relay, and the relay's limits stop audio. It will come as soon as a direct connection can be made.";

/// A transfer: (content id, peer, which way).
type TransferKey = (String, String, TransferDirection);
/// Each transfer under way, and when it last moved.
type Entries = HashMap<TransferKey, (Transfer, Instant)>;

/// The transfers under way, and the audio that cannot come now; published in the state.
pub struct TransferBoard {
    state: StateHandle,
    entries: Mutex<Entries>,
    /// Content id → why it cannot come, and when that was last found.
    waiting: Mutex<HashMap<String, (String, Instant)>>,
    /// (content id, peer) → when a relay stopped a fetch of it that brought nothing.
    relay_stops: Mutex<HashMap<(String, String), Instant>>,
}

impl TransferBoard {
    pub fn new(state: StateHandle) -> Arc<TransferBoard> {
        Arc::new(TransferBoard {
            state,
            entries: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            relay_stops: Mutex::new(HashMap::new()),
        })
    }

    /// `blake3` cannot come now, for `reason` (shown until it comes or is no longer sought).
    fn cannot_come(&self, blake3: &str, reason: &str) {
        lock(&self.waiting).insert(blake3.to_string(), (reason.to_string(), Instant::now()));
        self.publish();
    }

    /// `blake3` is here.
    fn arrived(&self, blake3: &str) {
        lock(&self.waiting).remove(blake3);
        lock(&self.relay_stops).retain(|(content, _), _| content != blake3);
        self.publish();
    }

    /// A relay stopped a fetch of `blake3` from `peer` that brought nothing.
    fn relay_stopped(&self, blake3: &str, peer: &str) {
        lock(&self.relay_stops).insert((blake3.to_string(), peer.to_string()), Instant::now());
    }

    /// Whether `peer` is not to be asked for `blake3` through a relay now.
    fn relay_backing_off(&self, blake3: &str, peer: &str) -> bool {
        let mut stops = lock(&self.relay_stops);
        stops.retain(|_, at| at.elapsed() < RELAY_BACKOFF);
        stops.contains_key(&(blake3.to_string(), peer.to_string()))
    }

    /// `bytes` of `blake3` (of `size`) moved to or from `peer` so far.
    pub fn progress(
        &self,
        blake3: &str,
        peer: &str,
        direction: TransferDirection,
        bytes: u64,
        size: u64,
    ) {
        let key = (blake3.to_string(), peer.to_string(), direction);
        let transfer = Transfer {
            blake3: blake3.to_string(),
            peer_id: peer.to_string(),
            bytes,
            size,
            direction,
        };
        self.lock().insert(key, (transfer, Instant::now()));
        self.publish();
    }

    /// The transfer is over (done or given up).
    pub fn end(&self, blake3: &str, peer: &str, direction: TransferDirection) {
        let key = (blake3.to_string(), peer.to_string(), direction);
        self.lock().remove(&key);
        self.publish();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        lock(&self.entries)
    }

    /// Publishes the board, without what went quiet (an upload ends when the asker stops
    /// asking: there is no message for it).
    fn publish(&self) {
        let mut transfers: Vec<Transfer> = {
            let mut entries = self.lock();
            entries.retain(|_, (_, at)| at.elapsed() < STALE);
            entries.values().map(|(t, _)| t.clone()).collect()
        };
        transfers.sort_by(|a, b| (&a.blake3, &a.peer_id).cmp(&(&b.blake3, &b.peer_id)));
        let mut waiting: Vec<MediaWaiting> = {
            let mut waiting = lock(&self.waiting);
            // The fetcher finds it again every second while it still wants it.
            waiting.retain(|_, (_, at)| at.elapsed() < STALE);
            waiting
                .iter()
                .map(|(blake3, (reason, _))| MediaWaiting {
                    blake3: blake3.clone(),
                    reason: reason.clone(),
                })
                .collect()
        };
        waiting.sort_by(|a, b| a.blake3.cmp(&b.blake3));
        self.state.update(|s| {
            let changed = s.transfers != transfers || s.media_waiting != waiting;
            s.transfers = transfers;
            s.media_waiting = waiting;
            changed
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fetches the content of now playing and the next three tracks (`AHEAD`) of every shared
/// playlist that this home lacks, until `shutdown`.
pub fn start_fetcher(
    library: Arc<Library>,
    music: Arc<Music>,
    sessions: Sessions,
    state: StateHandle,
    board: Arc<TransferBoard>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut tick = tokio::time::interval(LOOK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A change of the state (a track added, playback moving on) wakes it at once.
        let mut changes = state.subscribe();
        let mut looked_at = None;
        // Looking reads each shared playlist whole, under the store's lock (a second for
        // 100,000 tracks): after a look, the next waits [`LOOK_SHARE`] times as long, so
        // friends' edits do not queue behind it on every change.
        let mut rested_until = tokio::time::Instant::now();
        // The last look wanted content this home does not have yet: the tick looks again
        // (a fetch that failed is retried). Otherwise only a change is worth a look.
        let mut lacking = false;
        // A change came too soon after the last look: look once the rest is over.
        let mut waiting = false;
        loop {
            let ticked = tokio::select! {
                _ = tick.tick() => true,
                () = tokio::time::sleep_until(rested_until), if waiting => false,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::time::sleep(SETTLE).await;
                    changes.borrow_and_update();
                    false
                }
                () = shutdown.cancelled() => return,
            };
            board.publish();
            let snapshot = state.snapshot();
            // Only what plays, and who is online, matter: not every change (a transfer's
            // own progress is one).
            let looking_at: Vec<(String, u64, Vec<String>)> = snapshot
                .sessions
                .iter()
                .map(|s| {
                    let updated = snapshot
                        .playlists
                        .iter()
                        .find(|p| p.id == s.id)
                        .map_or(0, |p| p.updated_at);
                    (s.id.clone(), updated, s.connected_members.clone())
                })
                .collect();
            let changed = looked_at.as_ref() != Some(&looking_at);
            if !(changed || ticked && lacking) {
                continue;
            }
            if tokio::time::Instant::now() < rested_until {
                // Too soon: `looked_at` stays as it was, so the change is still seen then.
                waiting = true;
                continue;
            }
            waiting = false;
            looked_at = Some(looking_at);
            lacking = false;
            let started = tokio::time::Instant::now();
            for session in snapshot
                .sessions
                .iter()
                .filter(|s| !s.connected_members.is_empty())
            {
                let id = session.id.clone();
                let me = library.author_for(&id).peer_id;
                let wanted = library
                    .read(move |store| {
                        // One read of the tracks serves both the order and the contents.
                        let playlist = store.get(&id)?;
                        let facts = store.session_facts(&id)?;
                        let view =
                            whatnext_store::session::view(&facts, &playlist, &me, 1, now_ms());
                        let ids: Vec<String> = view
                            .now_playing
                            .iter()
                            .map(|n| n.track_id.clone())
                            .chain(view.up_next.iter().take(AHEAD).map(|u| u.track_id.clone()))
                            .collect();
                        Ok(ids
                            .iter()
                            .filter_map(|t| playlist.tracks.iter().find(|x| x.id == *t))
                            .filter_map(|t| t.content.clone())
                            .collect::<Vec<Content>>())
                    })
                    .await
                    .unwrap_or_default();
                for content in wanted {
                    if music.locate(&content.blake3).is_some()
                        || content.size > music.max_media_bytes
                    {
                        continue;
                    }
                    lacking = true;
                    if !in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(content.blake3.clone())
                    {
                        continue;
                    }
                    let job = Fetch {
                        music: Arc::clone(&music),
                        sessions: sessions.clone(),
                        board: Arc::clone(&board),
                        session: session.id.clone(),
                        content,
                    };
                    let in_flight = Arc::clone(&in_flight);
                    tokio::spawn(async move {
                        let blake3 = job.content.blake3.clone();
                        if let Err(err) = job.run().await {
                            tracing::info!("could not fetch audio {blake3}: {err}");
                        }
                        in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&blake3);
                    });
                }
            }
            rested_until = tokio::time::Instant::now() + started.elapsed() * LOOK_SHARE;
        }
    });
}

/// Whether `via` reaches `peer` only through relays' circuits now.
fn reachable_only_through_a_relay(via: &ServiceHandle, peer: &str) -> bool {
    let state = via.state.snapshot();
    let mut connections = state.connections.iter().filter(|c| c.peer_id == peer);
    let first = connections.next();
    first.is_some_and(|c| c.relayed) && connections.all(|c| c.relayed)
}

/// One content to fetch for one playlist.
struct Fetch {
    music: Arc<Music>,
    sessions: Sessions,
    board: Arc<TransferBoard>,
    session: String,
    content: Content,
}

impl Fetch {
    /// Tries each member that serves the playlist with us until one gives the content whole.
    async fn run(self) -> Result<(), String> {
        let (via, mut peers) = self
            .sessions
            .route(&self.session)
            .await
            .ok_or("the playlist is not served")?;
        rand::seq::SliceRandom::shuffle(&mut peers[..], &mut rand::rng());
        let blake3 = &self.content.blake3;
        let mut why = Vec::new();
        // Whether every member tried is reachable only through a relay (and so the relay's
        // limits are what stops the audio).
        let mut relay_only_everywhere = !peers.is_empty();
        for peer in peers {
            let relay_only = reachable_only_through_a_relay(&via, &peer);
            relay_only_everywhere &= relay_only;
            if relay_only && self.board.relay_backing_off(blake3, &peer) {
                why.push(format!(
                    "{peer}: only through a relay, which stopped it before"
                ));
                continue;
            }
            let mut progressed = false;
            match self.from(&via, &peer, &mut progressed).await {
                Ok(()) => {
                    self.board.arrived(blake3);
                    return Ok(());
                }
                Err(err) => {
                    tracing::info!("fetching {blake3} from {peer}: {err}");
                    if relay_only && !progressed {
                        self.board.relay_stopped(blake3, &peer);
                    }
                    why.push(format!("{peer}: {err}"));
                }
            }
            self.board.end(blake3, &peer, TransferDirection::Download);
        }
        if relay_only_everywhere {
            self.board.cannot_come(blake3, THROUGH_A_RELAY_ONLY);
        }
        Err(if why.is_empty() {
            "no member online to fetch it from".to_string()
        } else {
            why.join("; ")
        })
    }

    async fn ask(
        &self,
        via: &ServiceHandle,
        peer: &str,
        request: BlobRequest,
    ) -> Result<(BlobResponse, Bytes), String> {
        let body = serde_json::to_value(&request).map_err(|e| e.to_string())?;
        let (answer, data) = via
            .client
            .app_request_with_data(peer.to_string(), AppProtocol::Blob, body, GROUP_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        match serde_json::from_value(answer) {
            Ok(BlobResponse::Refused { reason }) => Err(format!("refused: {reason}")),
            Ok(response) => Ok((response, data)),
            Err(e) => Err(format!("answered with garbage ({e})")),
        }
    }

    /// Fetches the content from `peer`, resuming what an earlier attempt left; sets
    /// `progressed` once a group is kept.
    async fn from(
        &self,
        via: &ServiceHandle,
        peer: &str,
        progressed: &mut bool,
    ) -> Result<(), String> {
        let blake3 = &self.content.blake3;
        let root = blake3::Hash::from_hex(blake3).map_err(|e| e.to_string())?;
        let (BlobResponse::Outboard { size, outboard }, _) = self
            .ask(
                via,
                peer,
                BlobRequest::Outboard {
                    session: self.session.clone(),
                    blake3: blake3.clone(),
                },
            )
            .await?
        else {
            return Err("answered an outboard request with something else".into());
        };
        let cvs = whatnext_protocol::blob::decode_outboard(&outboard)?;
        if size != self.content.size || !outboard::verify_outboard(&root, size, &cvs) {
            return Err("its outboard does not match the content id".into());
        }
        let dir = self.music.media_dir().to_path_buf();
        let partial = dir.join(format!("{blake3}.partial"));
        // Checking what an earlier try left reads it all: not on the async workers.
        let (mut file, mut index) = {
            let (dir, partial, cvs) = (dir.clone(), partial.clone(), cvs.clone());
            tokio::task::spawn_blocking(move || open_partial(&dir, &partial, &root, size, &cvs))
                .await
                .map_err(|e| e.to_string())??
        };
        let groups = outboard::group_count(size);
        if index > 0 {
            tracing::info!(
                "resuming audio {blake3} at group {index} of {groups} (kept from an earlier try)"
            );
        }
        self.board.progress(
            blake3,
            peer,
            TransferDirection::Download,
            index * GROUP_LEN,
            size,
        );
        // Up to WINDOW groups in flight; they are checked and written in order.
        let asks = futures::stream::iter(index..groups)
            .map(|i| {
                self.ask(
                    via,
                    peer,
                    BlobRequest::Group {
                        session: self.session.clone(),
                        blake3: blake3.clone(),
                        index: i,
                    },
                )
            })
            .buffered(WINDOW);
        futures::pin_mut!(asks);
        while let Some(answer) = asks.next().await {
            let (BlobResponse::Group { index: got }, bytes) = answer? else {
                return Err("answered a group request with something else".into());
            };
            if got != index || !outboard::verify_group(&root, size, &cvs, index, &bytes) {
                return Err(format!(
                    "group {index} does not match the content id; thrown away"
                ));
            }
            file.write_all(&bytes).map_err(|e| e.to_string())?;
            *progressed = true;
            index += 1;
            let done = (index * GROUP_LEN).min(size);
            self.board
                .progress(blake3, peer, TransferDirection::Download, done, size);
        }
        // Every group was checked against the outboard, and the outboard against the
        // content id: the file is the content, with no second pass over it.
        file.sync_all().map_err(|e| e.to_string())?;
        drop(file);
        std::fs::rename(&partial, dir.join(blake3)).map_err(|e| e.to_string())?;
        self.music.add_fetched(self.content.clone());
        self.board.end(blake3, peer, TransferDirection::Download);
        tracing::info!("fetched audio {blake3} ({size} bytes) from {peer}");
        Ok(())
    }
}

/// The partial file, cut back to its last whole group that still matches the outboard (a
/// crash can leave a written group unwritten on disk), and the next group to fetch.
fn open_partial(
    dir: &Path,
    partial: &Path,
    root: &blake3::Hash,
    size: u64,
    cvs: &[[u8; 32]],
) -> Result<(std::fs::File, u64), String> {
    use std::io::Read as _;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(partial)
        .map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut whole = 0;
    let mut group = vec![0u8; GROUP_LEN as usize];
    while whole < len / GROUP_LEN {
        file.read_exact(&mut group).map_err(|e| e.to_string())?;
        if !outboard::verify_group(root, size, cvs, whole, &group) {
            break;
        }
        whole += 1;
    }
    file.set_len(whole * GROUP_LEN).map_err(|e| e.to_string())?;
    file.seek(std::io::SeekFrom::End(0))
        .map_err(|e| e.to_string())?;
    Ok((file, whole))
}

/// Answers a member's blob request, once the sessions task has checked it is an admitted
/// member of the playlist: only content that playlist refers to, at most the configured
/// size, a few uploads at a time.
pub async fn serve(
    library: &Arc<Library>,
    music: &Arc<Music>,
    board: &TransferBoard,
    uploads: &tokio::sync::Semaphore,
    peer: &str,
    request: BlobRequest,
) -> (BlobResponse, Bytes) {
    let refuse = |reason: String| (BlobResponse::Refused { reason }, Bytes::new());
    let (session, blake3) = (request.session().to_string(), request.blake3().to_string());
    let referenced = {
        let (id, b3) = (session.clone(), blake3.clone());
        library
            .read(move |store| store.has_content(&id, &b3))
            .await
            .unwrap_or(false)
    };
    if !referenced {
        return refuse("that playlist has no track with this audio".into());
    }
    let Ok(_permit) = uploads.acquire().await else {
        return refuse("shutting down".into());
    };
    match request {
        BlobRequest::Outboard { .. } => match music.outboard(&blake3).await {
            Ok((size, cvs)) => {
                board.progress(&blake3, peer, TransferDirection::Upload, 0, size);
                let outboard = whatnext_protocol::blob::encode_outboard(&cvs);
                (BlobResponse::Outboard { size, outboard }, Bytes::new())
            }
            Err(reason) => refuse(reason),
        },
        BlobRequest::Group { index, .. } => match music.read_group(&blake3, index).await {
            Ok((bytes, size)) => {
                let done = ((index + 1) * GROUP_LEN).min(size);
                if done >= size {
                    board.end(&blake3, peer, TransferDirection::Upload);
                } else {
                    board.progress(&blake3, peer, TransferDirection::Upload, done, size);
                }
                (BlobResponse::Group { index }, Bytes::from(bytes))
            }
            Err(reason) => refuse(reason),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an earlier try left is kept only as far as it matches the outboard: a group a
    /// crash left unwritten (zeros) and everything after it are fetched again.
    #[test]
    fn a_partial_file_is_kept_up_to_its_first_bad_group() {
        let content: Vec<u8> = (0..GROUP_LEN * 4 + 100).map(|i| (i % 251) as u8).collect();
        let size = content.len() as u64;
        let root = blake3::hash(&content);
        let cvs = outboard::outboard(&content[..], size).expect("outboard");
        let dir = tempfile::tempdir().expect("dir");
        let partial = dir.path().join("x.partial");
        let group = GROUP_LEN as usize;

        // Two whole groups and half of the third: the half is cut.
        std::fs::write(&partial, &content[..group * 2 + group / 2]).expect("write");
        let (_, next) = open_partial(dir.path(), &partial, &root, size, &cvs).expect("open");
        assert_eq!(next, 2);
        assert_eq!(
            std::fs::metadata(&partial).expect("meta").len(),
            GROUP_LEN * 2
        );

        // Three groups, the second zeroed: only the first is kept.
        let mut damaged = content[..group * 3].to_vec();
        damaged[group..group * 2].fill(0);
        std::fs::write(&partial, &damaged).expect("write");
        let (_, next) = open_partial(dir.path(), &partial, &root, size, &cvs).expect("open");
        assert_eq!(next, 1);
        assert_eq!(std::fs::metadata(&partial).expect("meta").len(), GROUP_LEN);
    }
}
