//! The controller's side of the store: the one writer of the user's playlists.
//!
//! Store calls block (every write is fsync'ed), so they run on tokio's blocking pool, one at
//! a time behind a mutex. After each change the playlist summaries in `AppState` are
//! refreshed (waking long-pollers) and the playlist's Markdown mirror is rewritten, debounced.
//! The store's problems (damage found at start, writes that failed) go into `AppState`
//! too. A damaged playlist's mirror is left as it was: it may be the copy that restores it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::sync::mpsc;
use whatnext_protocol::playlist::Author;
use whatnext_store::{Store, StoreError, markdown};

use crate::state::{StateHandle, now_ms};

pub struct Library {
    store: Mutex<Store>,
    author: Mutex<Author>,
    /// Playlists shared with `--isolated` → the peer id local edits there carry instead of
    /// the main one.
    isolated_authors: Mutex<std::collections::HashMap<String, String>>,
    state: StateHandle,
    mirror: mpsc::UnboundedSender<String>,
    /// Told the id of every playlist that changed (sessions push the change to members).
    changes: mpsc::UnboundedSender<String>,
}

/// A store call that panicked (or was cancelled): logged here, and an internal error (a
/// 500 in the API), never mistaken for bad input.
fn task_failed(err: &tokio::task::JoinError) -> StoreError {
    tracing::error!("a store task failed: {err}");
    StoreError::Internal(format!("the store task failed ({err})"))
}

/// A playlist's document is let go after this long unused (see [`Store::rest_idle`]).
const IDLE_PLAYLIST: Duration = Duration::from_secs(5 * 60);
/// How often idle playlists are looked for.
const REST_EVERY: Duration = Duration::from_secs(60);

/// Lets go of idle playlists' documents now and then, for as long as the library lives.
async fn rest_idle(library: std::sync::Weak<Library>) {
    let mut every = tokio::time::interval(REST_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(library) = library.upgrade() else {
            return;
        };
        let rested =
            tokio::task::spawn_blocking(move || library.lock().rest_idle(IDLE_PLAYLIST)).await;
        if let Ok(count @ 1..) = rested {
            tracing::debug!("let go of {count} idle playlists' documents");
        }
    }
}

/// How long the mirror waits for more changes before writing files.
const MIRROR_DEBOUNCE: Duration = Duration::from_millis(300);
/// After writing a playlist's mirror, how many times as long as that took the mirror waits
/// before writing it again: mirrors hold the store's lock a tenth of the time at most.
const MIRROR_SHARE: u32 = 10;

impl Library {
    /// Wraps an opened store and starts the Markdown mirror under `mirror_dir`. Also returns
    /// where the id of every playlist that changes is sent (for the sessions, which push the
    /// change to members).
    pub fn start(
        store: Store,
        author: Author,
        state: StateHandle,
        mirror_dir: PathBuf,
    ) -> (Arc<Library>, mpsc::UnboundedReceiver<String>) {
        let mut store = store;
        rebuild_from_mirrors(&mut store, &author, &mirror_dir);
        let (tx, rx) = mpsc::unbounded_channel();
        let (changes, changed) = mpsc::unbounded_channel();
        let library = Arc::new(Library {
            store: Mutex::new(store),
            author: Mutex::new(author),
            isolated_authors: Mutex::new(std::collections::HashMap::new()),
            state,
            mirror: tx,
            changes,
        });
        library.publish_summaries();
        tokio::spawn(mirror(Arc::clone(&library), mirror_dir, rx));
        tokio::spawn(rest_idle(Arc::downgrade(&library)));
        (library, changed)
    }

    /// Who local edits are attributed to.
    pub fn author(&self) -> Author {
        self.author
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Who local edits of `playlist` are attributed to: the isolated identity that serves
    /// it, if any, else [`Library::author`].
    pub fn author_for(&self, playlist: &str) -> Author {
        let mut author = self.author();
        if let Some(peer_id) = self
            .isolated_authors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(playlist)
        {
            author.peer_id = peer_id.clone();
        }
        author
    }

    /// Attributes local edits of `playlist` to the identity `key` (an isolated one), which
    /// then signs them too, or again to the main identity with `None`.
    pub fn set_author_for(&self, playlist: &str, key: Option<&whatnext_home::identity::Keypair>) {
        {
            let mut authors = self
                .isolated_authors
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match key {
                Some(key) => {
                    authors.insert(playlist.to_string(), key.public().to_peer_id().to_string())
                }
                None => authors.remove(playlist),
            };
        }
        self.lock().set_playlist_key(playlist, key.cloned());
    }

    pub fn set_display_name(&self, name: String) {
        self.author
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .display_name = name;
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the store half-written on disk (writes
        // are atomic or append-only), so a poisoned lock is still safe to use.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish_summaries(&self) {
        let listed = Listed::of(&self.lock());
        self.publish(listed);
    }

    /// Puts what the store lists into `AppState`. Takes no lock: the runtime thread must
    /// never wait for the store's mutex, which a queue of writes on the blocking pool can
    /// hold for seconds (an API that stops answering while friends sync big batches).
    fn publish(&self, Listed(summaries, problems, people): Listed) {
        self.state.update(|s| {
            let changed =
                s.playlists != summaries || s.store_problems != problems || s.people != people;
            s.playlists = summaries;
            s.store_problems = problems;
            s.people = people;
            changed
        });
    }

    /// Reads from the store on the blocking pool.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let library = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&mut library.lock()))
            .await
            .unwrap_or_else(|e| Err(task_failed(&e)))
    }

    /// Changes the store on the blocking pool; `f` returns its result and the id of the
    /// playlist it changed (None when nothing changed). Returns once the change is durable.
    pub async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store, &Author, u64) -> Result<(T, Option<String>), StoreError>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        self.write_and_tell(f, true).await
    }

    /// As [`Library::write`], for changes received from a member: the sessions are not told
    /// (they decide themselves where to forward what they received, and from whom).
    pub async fn write_received<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store, &Author, u64) -> Result<(T, Option<String>), StoreError>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        self.write_and_tell(f, false).await
    }

    async fn write_and_tell<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store, &Author, u64) -> Result<(T, Option<String>), StoreError>
        + Send
        + 'static,
        tell_sessions: bool,
    ) -> Result<T, StoreError> {
        let library = Arc::clone(self);
        let author = self.author();
        let written = tokio::task::spawn_blocking(move || {
            let mut store = library.lock();
            let result = f(&mut store, &author, now_ms());
            // What to publish, read under the same lock (see `publish`).
            let listed = match &result {
                Ok((_, None)) => None,
                // A failed write may have found a problem worth showing (and undone a change).
                Ok((_, Some(_))) | Err(_) => Some(Listed::of(&store)),
            };
            (result, listed)
        })
        .await;
        let (result, listed) = written.unwrap_or_else(|e| (Err(task_failed(&e)), None));
        if let Some(listed) = listed {
            self.publish(listed);
        }
        let (value, changed) = result?;
        if let Some(changed) = changed {
            let _ = self.mirror.send(changed.clone());
            if tell_sessions {
                let _ = self.changes.send(changed);
            }
        }
        Ok(value)
    }

    /// Folds update logs into snapshots; for a clean shutdown.
    pub fn compact(&self) {
        if let Err(err) = self.lock().compact_all() {
            tracing::warn!("could not compact the store: {err}");
        }
    }
}

/// The playlist summaries and store problems, as `AppState` shows them.
struct Listed(
    Vec<whatnext_protocol::playlist::PlaylistSummary>,
    Vec<whatnext_protocol::state::StoreProblem>,
    std::collections::BTreeMap<String, String>,
);

impl Listed {
    fn of(store: &Store) -> Listed {
        Listed(store.list(), store.problems().to_vec(), store.people())
    }
}

/// Keeps `<home>/playlists/<slug>.md` in step with the store.
///
/// At start only the mirrors older than their playlist's files are written (a home of a
/// thousand playlists starts without rewriting a thousand files). After a change a
/// playlist's mirror is written once the changes settle ([`MIRROR_DEBOUNCE`]), and no
/// sooner than [`MIRROR_SHARE`] times its last write took after that write: writing means
/// reading every track under the store's lock, which for a playlist of 100,000 tracks takes
/// a second or more, and edits from friends must not queue behind it on every change. What
/// a stop leaves unwritten is written at the next start (its mirror is older than its files).
async fn mirror(library: Arc<Library>, dir: PathBuf, mut rx: mpsc::UnboundedReceiver<String>) {
    let (mut files, stale) = {
        let (lib, dir) = (Arc::clone(&library), dir.clone());
        tokio::task::spawn_blocking(move || current_mirrors(&lib, &dir))
            .await
            .unwrap_or_default()
    };
    let now = tokio::time::Instant::now();
    // Playlist → when its mirror may be written next.
    let mut due: HashMap<String, tokio::time::Instant> =
        stale.into_iter().map(|id| (id, now)).collect();
    // Playlist → when its mirror may be written again at the soonest.
    let mut rested: HashMap<String, tokio::time::Instant> = HashMap::new();
    loop {
        let next = due.values().min().copied();
        tokio::select! {
            changed = rx.recv() => {
                let Some(id) = changed else { return };
                let settled = tokio::time::Instant::now() + MIRROR_DEBOUNCE;
                let when = rested.get(&id).map_or(settled, |&at| at.max(settled));
                due.entry(id).or_insert(when);
            }
            () = tokio::time::sleep_until(next.unwrap_or(now)), if next.is_some() => {
                let now = tokio::time::Instant::now();
                let ready: Vec<String> =
                    due.iter().filter(|(_, at)| **at <= now).map(|(id, _)| id.clone()).collect();
                for id in &ready {
                    due.remove(id);
                }
                let (lib, dir2) = (Arc::clone(&library), dir.clone());
                let mut known = std::mem::take(&mut files);
                let (known, took) = tokio::task::spawn_blocking(move || {
                    let took: Vec<(String, Duration)> = ready
                        .into_iter()
                        .map(|id| {
                            let started = std::time::Instant::now();
                            write_mirror(&lib, &dir2, &id, &mut known);
                            let took = started.elapsed();
                            tracing::debug!("wrote the mirror of {id} in {} ms", took.as_millis());
                            (id, took)
                        })
                        .collect();
                    (known, took)
                })
                .await
                .unwrap_or_default();
                files = known;
                let now = tokio::time::Instant::now();
                for (id, took) in took {
                    rested.insert(id, now + took * MIRROR_SHARE);
                }
                rested.retain(|_, at| *at > now);
            }
        }
    }
}

/// The mirrors already on disk that hold what their playlist's files hold (written after
/// them), and the playlists whose mirror must be written.
fn current_mirrors(library: &Library, dir: &Path) -> (HashMap<String, PathBuf>, Vec<String>) {
    let store = library.lock();
    let mut current = HashMap::new();
    let mut stale = Vec::new();
    for summary in store.list() {
        let path = dir.join(markdown::file_name_of(&summary.name, &summary.id));
        let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let changed = store.changed_on_disk(&summary.id);
        match (written, changed) {
            (Some(written), Some(changed)) if written >= changed => {
                current.insert(summary.id, path);
            }
            _ => stale.push(summary.id),
        }
    }
    // (A damaged playlist is listed as stale; `write_mirror` leaves its mirror alone.)
    (current, stale)
}

fn write_mirror(library: &Library, dir: &Path, id: &str, files: &mut HashMap<String, PathBuf>) {
    let playlist = {
        let mut store = library.lock();
        if store.is_damaged(id) {
            // What survived is partial; the mirror as it was may be what restores it.
            return;
        }
        store.get(id)
    };
    let old = files.remove(id);
    match playlist {
        Ok(playlist) => {
            let path = dir.join(markdown::file_name(&playlist));
            let written = markdown::to_markdown(&playlist)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                    let tmp = path.with_extension("md.tmp");
                    std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
                    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
                });
            if let Err(err) = written {
                tracing::warn!(
                    "could not write the Markdown mirror {}: {err}",
                    path.display()
                );
            }
            if let Some(old) = old.filter(|old| *old != path) {
                let _ = std::fs::remove_file(old);
            }
            files.insert(id.to_string(), path);
        }
        Err(_) => {
            // Deleted: its mirror goes too (the data itself is in store/trash).
            if let Some(old) = old {
                let _ = std::fs::remove_file(old);
            }
        }
    }
}

/// Damaged playlists that no member can restore — never shared: no collaborators, and we
/// own them — are rebuilt from their Markdown mirror (the newest one naming their id).
/// Shared ones wait for the next sync, which brings their history back.
fn rebuild_from_mirrors(store: &mut Store, me: &Author, dir: &Path) {
    let damaged = store.needs_history();
    if damaged.is_empty() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        for id in &damaged {
            tracing::warn!(
                "playlist {id} is damaged and {} holds no mirror of it",
                dir.display()
            );
        }
        return;
    };
    let mut newest: HashMap<String, (PathBuf, whatnext_protocol::playlist::Playlist)> =
        HashMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(playlist) = markdown::from_markdown(&text) else {
            continue;
        };
        if !damaged.contains(&playlist.id) {
            continue;
        }
        let newer = newest
            .get(&playlist.id)
            .is_none_or(|(_, known)| playlist.updated_at > known.updated_at);
        if newer {
            newest.insert(playlist.id.clone(), (path, playlist));
        }
    }
    for id in damaged {
        let Some((path, playlist)) = newest.remove(&id) else {
            tracing::warn!(
                "playlist {id} is damaged and has no Markdown mirror in {}; it waits for a member's copy",
                dir.display()
            );
            continue;
        };
        let shared = !playlist.collaborators.is_empty() || playlist.owner.peer_id != me.peer_id;
        if shared {
            tracing::warn!(
                "playlist {id} is damaged; it is shared, so it waits for a member's copy (its mirror {} is left as it was)",
                path.display()
            );
            continue;
        }
        match store.rebuild_from_mirror(&id, &playlist, &path, now_ms()) {
            Ok(()) => tracing::warn!(
                "playlist {id} was rebuilt from its mirror {}",
                path.display()
            ),
            Err(err) => tracing::warn!(
                "playlist {id} could not be rebuilt from its mirror {}: {err}",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatnext_protocol::state::AppState;

    #[tokio::test]
    async fn a_store_call_that_panics_is_an_internal_error_not_bad_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("store"), 1).expect("store");
        let state = StateHandle::new(AppState::initial(1, "p".into(), "/h".into(), 0));
        let author = Author {
            peer_id: "p".into(),
            display_name: "Me".into(),
        };
        let (library, _changes) = Library::start(store, author, state, dir.path().join("md"));
        let read = library
            .read(|_| -> Result<(), StoreError> { panic!("a bug in a store call") })
            .await;
        assert!(matches!(read, Err(StoreError::Internal(_))), "{read:?}");
        let written = library
            .write(|_, _, _| -> Result<((), Option<String>), StoreError> {
                panic!("a bug in a store write")
            })
            .await;
        assert!(
            matches!(written, Err(StoreError::Internal(_))),
            "{written:?}"
        );
        // The library still works afterwards (a poisoned lock is recovered).
        let listed = library.read(|store| Ok(store.list().len())).await;
        assert_eq!(listed.expect("list"), 0);
    }

    /// Polls `check` for up to 20 s.
    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        for _ in 0..400 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: not within 20 s");
    }

    #[tokio::test]
    async fn at_start_only_mirrors_older_than_their_playlist_are_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_dir = dir.path().join("store");
        let mirrors = dir.path().join("md");
        let me = Author {
            peer_id: "p".into(),
            display_name: "Me".into(),
        };
        let state = || StateHandle::new(AppState::initial(1, "p".into(), "/h".into(), 0));
        let (mut store, _) = Store::open(&store_dir, 1).expect("store");
        let kept = store.create("Kept", "", &me, 1).expect("create");
        let changed = store.create("Changed", "", &me, 1).expect("create");
        drop(store);
        let mirror = |name: &str, id: &str| mirrors.join(markdown::file_name_of(name, id));
        {
            let (store, _) = Store::open(&store_dir, 2).expect("store");
            let (_library, _changes) = Library::start(store, me.clone(), state(), mirrors.clone());
            eventually("both mirrors written", || {
                mirror("Kept", &kept).exists() && mirror("Changed", &changed).exists()
            })
            .await;
        }
        let written = |name: &str, id: &str| {
            std::fs::metadata(mirror(name, id))
                .and_then(|m| m.modified())
                .expect("mirror")
        };
        let kept_at = written("Kept", &kept);
        // Changed while the app was not running (or in the moments before a stop).
        let (mut store, _) = Store::open(&store_dir, 3).expect("store");
        let track = whatnext_protocol::playlist::NewTrack {
            title: "Added later".into(),
            ..Default::default()
        };
        store.add_tracks(&changed, &[track], &me, 3).expect("add");
        let (_library, _changes) = Library::start(store, me.clone(), state(), mirrors.clone());
        eventually("the older mirror rewritten", || {
            std::fs::read_to_string(mirror("Changed", &changed))
                .is_ok_and(|text| text.contains("Added later"))
        })
        .await;
        // Given the time to have been written too, the current one was not.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            written("Kept", &kept),
            kept_at,
            "a current mirror was rewritten"
        );
    }
}
