//! The exports being sent in parts. A friend joining a long playlist asks for it part by
//! part, each part a hello of its own; exporting the whole again for each part made a join
//! cost the answerer parts × the export (at 100,000 tracks, five parts of an 18 MB export).
//! The export is kept from the first part to the last, for every asker from the same
//! version (friends joining at once share it), and checked against the playlist's version
//! at each part: a playlist changed meanwhile is exported again (and the asker, told the
//! new version, starts over, as it did).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// How long an export waits for its next part: an asker gone quiet does not hold its
/// memory for longer.
const KEPT_FOR: Duration = Duration::from_secs(60);

/// Exports kept at most at once (each is a whole playlist's updates).
const KEPT_AT_MOST: usize = 4;

/// An export of `session`'s updates newer than `since`, made at version `of`.
struct Kept {
    session: String,
    since: Vec<u8>,
    of: Vec<u8>,
    updates: Arc<Vec<u8>>,
    used: Instant,
}

/// The exports being sent in parts (see the module's comment). Shared by the tasks that
/// answer hellos.
#[derive(Default)]
pub(super) struct PartExports {
    kept: Mutex<Vec<Kept>>,
}

impl PartExports {
    /// The export of `session` since `since`, if one is kept and the playlist is still at
    /// version `of`.
    pub fn get(&self, session: &str, since: &[u8], of: &[u8]) -> Option<Arc<Vec<u8>>> {
        let mut kept = self.lock();
        forget_stale(&mut kept);
        let now = Instant::now();
        let found = kept
            .iter_mut()
            .find(|k| k.session == session && k.since == since && k.of == of)?;
        found.used = now;
        Some(Arc::clone(&found.updates))
    }

    /// Keeps an export for the parts to come (the least recently used one gives way).
    pub fn keep(&self, session: &str, since: &[u8], of: &[u8], updates: Arc<Vec<u8>>) {
        let mut kept = self.lock();
        kept.retain(|k| !(k.session == session && k.since == since));
        if kept.len() >= KEPT_AT_MOST
            && let Some((oldest, _)) = kept.iter().enumerate().min_by_key(|(_, k)| k.used)
        {
            kept.remove(oldest);
        }
        kept.push(Kept {
            session: session.to_string(),
            since: since.to_vec(),
            of: of.to_vec(),
            updates,
            used: Instant::now(),
        });
    }

    /// Forgets the export of `session` since `since` (its last part was sent).
    pub fn forget(&self, session: &str, since: &[u8]) {
        self.lock()
            .retain(|k| !(k.session == session && k.since == since));
    }

    /// Forgets, from now on, the exports that wait too long for their next part (checked
    /// every [`KEPT_FOR`] while any is kept).
    pub fn expire(self: &Arc<Self>) {
        let exports = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEPT_FOR).await;
                let mut kept = exports.lock();
                forget_stale(&mut kept);
                if kept.is_empty() {
                    break;
                }
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops the exports that waited longer than [`KEPT_FOR`] for their next part.
fn forget_stale(kept: &mut Vec<Kept>) {
    let now = Instant::now();
    kept.retain(|k| now.duration_since(k.used) < KEPT_FOR);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(bytes: &[u8]) -> Arc<Vec<u8>> {
        Arc::new(bytes.to_vec())
    }

    #[test]
    fn an_export_serves_the_parts_of_its_version_only() {
        let exports = PartExports::default();
        assert!(exports.get("p", b"", b"v1").is_none());
        exports.keep("p", b"", b"v1", export(b"updates"));
        assert_eq!(
            exports.get("p", b"", b"v1").as_deref(),
            Some(&b"updates".to_vec())
        );
        // The playlist changed since: not that export.
        assert!(exports.get("p", b"", b"v2").is_none());
        // Another asker's version, or another playlist: not that export either.
        assert!(exports.get("p", b"other", b"v1").is_none());
        assert!(exports.get("q", b"", b"v1").is_none());
        exports.forget("p", b"");
        assert!(exports.get("p", b"", b"v1").is_none());
    }

    #[test]
    fn a_new_export_for_the_same_asker_replaces_the_old_and_few_are_kept() {
        let exports = PartExports::default();
        exports.keep("p", b"", b"v1", export(b"one"));
        exports.keep("p", b"", b"v2", export(b"two"));
        assert!(exports.get("p", b"", b"v1").is_none());
        assert_eq!(
            exports.get("p", b"", b"v2").as_deref(),
            Some(&b"two".to_vec())
        );
        for n in 0..KEPT_AT_MOST {
            exports.keep(&format!("other {n}"), b"", b"v", export(b"x"));
        }
        assert_eq!(exports.lock().len(), KEPT_AT_MOST);
        // The least recently used gave way: the first kept.
        assert!(exports.get("p", b"", b"v2").is_none());
    }
}
