//! The music library of this home (`whatnext_media::MusicLibrary`) in the controller: scans
//! run on the blocking pool with their progress in the state (`library.scanning`), the
//! folders are rescanned on start and whenever they change (watched with `notify`), and the
//! API looks up what to play (`GET /media/<blake3>`) here.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use std::collections::HashMap;

use blake3::hazmat::ChainingValue;
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
    /// Audio fetched from members: `<media_dir>/<blake3>` (`.partial` while it arrives).
    media_dir: PathBuf,
    /// Fetched audio here, by content id.
    fetched: Mutex<HashMap<String, Content>>,
    /// Outboards computed for serving, by content id (a few KB each).
    outboards: Mutex<HashMap<String, Arc<Vec<ChainingValue>>>>,
    /// The largest audio moved to or from a member.
    pub max_media_bytes: u64,
    /// The music folders, for the watch task: when they change, it watches the new ones and
    /// rescans (read here, not from the library, which a scan holds while it reads).
    dirs: tokio::sync::watch::Sender<Vec<PathBuf>>,
}

/// Where the bytes of a content id are, and what they are.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    pub content: Content,
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
    pub fn open(
        index: &Path,
        dirs: Vec<PathBuf>,
        media_dir: PathBuf,
        max_media_bytes: u64,
        state: StateHandle,
    ) -> Arc<Music> {
        let library = MusicLibrary::open(index, dirs.clone()).unwrap_or_else(|err| {
            let aside = index.with_extension(format!("json.damaged-{}", now_ms()));
            tracing::warn!("{err}; moved to {} and rebuilt by a scan", aside.display());
            let _ = std::fs::rename(index, &aside);
            MusicLibrary::empty(index, dirs.clone())
        });
        let fetched = read_fetched(&media_dir);
        let music = Arc::new(Music {
            library: Mutex::new(library),
            state,
            media_dir,
            fetched: Mutex::new(fetched),
            outboards: Mutex::new(HashMap::new()),
            max_media_bytes,
            dirs: tokio::sync::watch::Sender::new(dirs),
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
            // The library is held only to plan and to take the result in: while files are
            // read (minutes for a big first scan) it answers searches and serves audio, and
            // the controller's one thread never waits on it.
            let (plan, dirs, files) = {
                let library = music.lock();
                let dirs: Vec<String> = library
                    .dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                (library.scan_plan(), dirs, library.len())
            };
            let mut last = std::time::Instant::now();
            let read = plan.read(&mut |done, total| {
                // The state is published a few times a second, not per file.
                if done == 0 || done == total || last.elapsed() >= Duration::from_millis(200) {
                    last = std::time::Instant::now();
                    music.publish_status(files, dirs.clone(), Some(ScanProgress { done, total }));
                }
            });
            let report = music.lock().apply_scan(read);
            music.publish(None);
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

    /// The library, or what matches `query` (in tags and file names; with `paths` false,
    /// in tags only), best first: at most `limit` entries, and [`MAX_LISTED`].
    pub fn find(&self, query: Option<&str>, limit: usize, paths: bool) -> LibraryReply {
        let library = self.lock();
        let limit = limit.min(MAX_LISTED);
        let (entries, found) = match query.map(str::trim).filter(|q| !q.is_empty()) {
            Some(query) => {
                let found = library.matches(query, paths);
                let count = found.len();
                (found.into_iter().take(limit).cloned().collect(), count)
            }
            None => (
                library.list().into_iter().take(limit).collect(),
                library.len(),
            ),
        };
        LibraryReply {
            entries,
            total: library.len(),
            found,
        }
    }

    /// The library's entry of the file whose bytes are `blake3`.
    pub fn entry(&self, blake3: &str) -> Option<LibraryEntry> {
        self.lock().entry(blake3)
    }

    /// The file holding the bytes `blake3`, and their type, if this home has them (in the
    /// library, or fetched from a member).
    pub fn media(&self, blake3: &str) -> Option<(PathBuf, Content)> {
        self.locate(blake3).map(|l| (l.path, l.content))
    }

    pub fn locate(&self, blake3: &str) -> Option<Located> {
        if !Content::is_valid_id(blake3) {
            return None;
        }
        if let Some(content) = lock(&self.fetched).get(blake3).cloned() {
            let path = self.media_dir.join(blake3);
            if std::fs::metadata(&path).is_ok_and(|m| m.len() == content.size) {
                return Some(Located { path, content });
            }
        }
        let (path, content) = self.lock().locate(blake3)?;
        Some(Located { path, content })
    }

    pub fn media_dir(&self) -> &Path {
        &self.media_dir
    }

    /// Records audio fetched and verified into `<media_dir>/<blake3>`.
    pub fn add_fetched(&self, content: Content) {
        lock(&self.fetched).insert(content.blake3.clone(), content);
    }

    /// The size and outboard of `blake3`, if this home has it (computed once, on the
    /// blocking pool).
    pub async fn outboard(
        self: &Arc<Self>,
        blake3: &str,
    ) -> Result<(u64, Arc<Vec<ChainingValue>>), String> {
        let located = self.servable(blake3)?;
        if let Some(cvs) = lock(&self.outboards).get(blake3).cloned() {
            return Ok((located.content.size, cvs));
        }
        let size = located.content.size;
        let cvs = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&located.path).map_err(|e| e.to_string())?;
            whatnext_media::outboard::outboard(std::io::BufReader::new(file), size)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let cvs = Arc::new(cvs);
        let mut outboards = lock(&self.outboards);
        if outboards.len() > 256 {
            outboards.clear();
        }
        outboards.insert(blake3.to_string(), Arc::clone(&cvs));
        Ok((size, cvs))
    }

    /// Where `blake3` is, if this home has it and may send it to a member (its size cap).
    fn servable(&self, blake3: &str) -> Result<Located, String> {
        let located = self
            .locate(blake3)
            .ok_or_else(|| "this member does not have that audio".to_string())?;
        if located.content.size > self.max_media_bytes {
            return Err(format!(
                "the file is {} MB; this member sends at most {} MB",
                located.content.size / 1_000_000,
                self.max_media_bytes / 1_000_000
            ));
        }
        Ok(located)
    }

    /// Group `index` of `blake3`'s bytes, and the whole content's size.
    pub async fn read_group(&self, blake3: &str, index: u64) -> Result<(Vec<u8>, u64), String> {
        use std::io::{Read as _, Seek as _};
        let located = self.servable(blake3)?;
        let size = located.content.size;
        if index >= whatnext_media::outboard::group_count(size) {
            return Err(format!("the audio has no group {index}"));
        }
        let (offset, len) = whatnext_media::outboard::group_range(size, index);
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&located.path).map_err(|e| e.to_string())?;
            file.seek(std::io::SeekFrom::Start(offset))
                .map_err(|e| e.to_string())?;
            let mut bytes = vec![0u8; len as usize];
            file.read_exact(&mut bytes).map_err(|e| e.to_string())?;
            Ok((bytes, size))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Makes `dirs` the music folders (checked by the caller): shown at once, then watched
    /// and scanned by [`Music::watch`]'s task, which drops the files of folders let go.
    pub async fn set_dirs(self: &Arc<Self>, dirs: Vec<PathBuf>) -> Result<(), MusicError> {
        let music = Arc::clone(self);
        // Off the runtime: a scan holds the library while it reads.
        tokio::task::spawn_blocking(move || {
            let mut library = music.lock();
            library.set_dirs(dirs.clone());
            // Under the library's lock: two changes at once end in the same order in both.
            music.dirs.send_replace(dirs);
            drop(library);
            music.publish(None);
        })
        .await
        .map_err(|e| MusicError::Internal(e.to_string()))
    }

    /// Rescans now, then whenever a music folder changes or the folders are changed
    /// ([`Music::set_dirs`]), until `shutdown`.
    pub fn watch(self: &Arc<Self>, shutdown: CancellationToken) {
        let music = Arc::clone(self);
        let (tx, mut changed) = mpsc::unbounded_channel::<()>();
        let _ = tx.send(());
        tokio::spawn(async move {
            // The watcher lives as long as this task; it reports on its own thread.
            let mut dirs = music.dirs.subscribe();
            let mut _watcher = watch_folders(&dirs.borrow_and_update(), &tx);
            loop {
                tokio::select! {
                    got = changed.recv() => if got.is_none() { return },
                    Ok(()) = dirs.changed() => {
                        _watcher = watch_folders(&dirs.borrow_and_update(), &tx);
                        let _ = tx.send(());
                        continue;
                    }
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

/// A watcher that sends on `tx` at each change under `dirs` (none when the platform has no
/// watcher: then `whatnext library scan` rescans).
fn watch_folders(
    dirs: &[PathBuf],
    tx: &mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let tx = tx.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    });
    match watcher {
        Ok(mut watcher) => {
            for dir in dirs {
                if let Err(err) = watcher.watch(dir, notify::RecursiveMode::Recursive) {
                    tracing::info!("not watching {} for new music: {err}", dir.display());
                }
            }
            Some(watcher)
        }
        Err(err) => {
            tracing::info!(
                "the music folders are not watched ({err}); `whatnext library scan` rescans them"
            );
            None
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The audio fetched before this start: `<dir>/<blake3>` files (whole; a `.partial` is not
/// yet), their type read from their header.
fn read_fetched(dir: &Path) -> HashMap<String, Content> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            if !Content::is_valid_id(&name) {
                return None;
            }
            let size = entry.metadata().ok()?.len();
            let mime = whatnext_media::read_file(&entry.path())
                .map(|e| e.content.mime)
                .unwrap_or_else(|_| "application/octet-stream".to_string());
            Some((
                name.clone(),
                Content {
                    blake3: name,
                    size,
                    mime,
                },
            ))
        })
        .collect()
}
