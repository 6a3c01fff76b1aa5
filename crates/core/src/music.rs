//! The music library of this home (`whatnext_media::MusicLibrary`) in the controller: scans
//! run on the blocking pool with their progress in the state (`library.scanning`), the
//! folders are rescanned on start and whenever they change (watched with `notify`), and the
//! API looks up what to play (`GET /media/<blake3>`) here.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use whatnext_media::{MediaError, MusicLibrary};
use whatnext_protocol::{
    media::{LibraryEntry, LibraryReply, ScanProgress, ScanReport},
    playlist::Content,
};

use crate::state::{StateHandle, now_ms};

/// After a change in the folders, how long to wait for more before rescanning (a copy of an
/// album is many changes).
const RESCAN_DEBOUNCE: Duration = Duration::from_secs(2);
/// Most entries a listing returns.
pub const MAX_LISTED: usize = 500;

pub struct Music {
    library: Mutex<MusicLibrary>,
    state: StateHandle,
}

#[derive(Debug, thiserror::Error)]
pub enum MusicError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("the library task stopped: {0}")]
    Internal(String),
}

impl Music {
    /// Opens the library indexed at `index` over `dirs`. A damaged index is set aside and the
    /// library starts empty (the first scan rebuilds it): an index is only a cache.
    pub fn open(index: &Path, dirs: Vec<PathBuf>, state: StateHandle) -> Arc<Music> {
        let library = MusicLibrary::open(index, dirs.clone()).unwrap_or_else(|err| {
            let aside = index.with_extension(format!("json.damaged-{}", now_ms()));
            tracing::warn!("{err}; moved to {} and rebuilt by a scan", aside.display());
            let _ = std::fs::rename(index, &aside);
            MusicLibrary::empty(index, dirs)
        });
        let music = Arc::new(Music {
            library: Mutex::new(library),
            state,
        });
        music.publish(None);
        music
    }

    fn lock(&self) -> MutexGuard<'_, MusicLibrary> {
        // A panic mid-scan leaves the index as it was on disk; memory is still usable.
        self.library.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, scanning: Option<ScanProgress>) {
        let (files, dirs) = {
            let library = self.lock();
            (
                library.len(),
                library
                    .dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>(),
            )
        };
        self.publish_status(files, dirs, scanning);
    }

    fn publish_status(&self, files: usize, dirs: Vec<String>, scanning: Option<ScanProgress>) {
        self.state.update(|s| {
            let changed = s.library.files != files
                || s.library.dirs != dirs
                || s.library.scanning != scanning;
            s.library.files = files;
            s.library.dirs = dirs;
            s.library.scanning = scanning;
            changed
        });
    }

    /// Scans the music folders (see [`MusicLibrary::scan`]).
    pub async fn scan(self: &Arc<Self>) -> Result<ScanReport, MusicError> {
        let music = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut library = music.lock();
            let dirs: Vec<String> = library
                .dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            let files = library.len();
            let mut last = std::time::Instant::now();
            let report = library.scan(&mut |done, total| {
                // The state is published a few times a second, not per file.
                if done == 0 || done == total || last.elapsed() >= Duration::from_millis(200) {
                    last = std::time::Instant::now();
                    music.publish_status(files, dirs.clone(), Some(ScanProgress { done, total }));
                }
            });
            let files = library.len();
            drop(library);
            music.publish_status(files, dirs, None);
            report.map_err(MusicError::from)
        })
        .await
        .map_err(|e| MusicError::Internal(e.to_string()))?
    }

    /// Reads one file into the library (`playlist add --file`).
    pub async fn add_file(self: &Arc<Self>, path: PathBuf) -> Result<LibraryEntry, MusicError> {
        let music = Arc::clone(self);
        let entry = tokio::task::spawn_blocking(move || music.lock().add_file(&path))
            .await
            .map_err(|e| MusicError::Internal(e.to_string()))??;
        self.publish(None);
        Ok(entry)
    }

    /// The library, or what matches `query`, at most [`MAX_LISTED`] entries.
    pub fn find(&self, query: Option<&str>) -> LibraryReply {
        let library = self.lock();
        let mut entries = match query.map(str::trim).filter(|q| !q.is_empty()) {
            Some(query) => library.search(query),
            None => library.list(),
        };
        entries.truncate(MAX_LISTED);
        LibraryReply {
            entries,
            total: library.len(),
        }
    }

    /// The file holding the bytes `blake3`, and their type, if this home has them.
    pub fn media(&self, blake3: &str) -> Option<(PathBuf, Content)> {
        if !Content::is_valid_id(blake3) {
            return None;
        }
        let library = self.lock();
        let path = library.path_of(blake3)?;
        let content = library
            .list()
            .into_iter()
            .find(|e| e.content.blake3 == blake3)
            .map(|e| e.content)?;
        Some((path, content))
    }

    /// Rescans now, then whenever a music folder changes, until `shutdown`.
    pub fn watch(self: &Arc<Self>, shutdown: CancellationToken) {
        let music = Arc::clone(self);
        let (tx, mut changed) = mpsc::unbounded_channel::<()>();
        let dirs: Vec<PathBuf> = self.lock().dirs().to_vec();
        // The watcher lives as long as this task; it reports on its own thread.
        let watcher = {
            use notify::Watcher as _;
            let tx = tx.clone();
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    let _ = tx.send(());
                }
            })
            .map(|mut watcher| {
                for dir in &dirs {
                    if let Err(err) = watcher.watch(dir, notify::RecursiveMode::Recursive) {
                        tracing::info!("not watching {} for new music: {err}", dir.display());
                    }
                }
                watcher
            })
        };
        if let Err(err) = &watcher {
            tracing::info!(
                "the music folders are not watched ({err}); `whatnext library scan` rescans them"
            );
        }
        let _ = tx.send(());
        tokio::spawn(async move {
            let _watcher = watcher;
            loop {
                tokio::select! {
                    got = changed.recv() => if got.is_none() { return },
                    () = shutdown.cancelled() => return,
                }
                // Let a burst of changes settle, then scan once.
                tokio::select! {
                    () = tokio::time::sleep(RESCAN_DEBOUNCE) => {}
                    () = shutdown.cancelled() => return,
                }
                while changed.try_recv().is_ok() {}
                match music.scan().await {
                    Ok(report) => tracing::info!(
                        "music library: {} files ({} added, {} updated, {} removed, {} unreadable)",
                        report.files,
                        report.added,
                        report.updated,
                        report.removed,
                        report.failed.len()
                    ),
                    Err(err) => tracing::warn!("the music library could not be scanned: {err}"),
                }
            }
        });
    }
}
