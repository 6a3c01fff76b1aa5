//! A playlist's signed updates ([`Envelope`]s), kept byte for byte in `signed.log` so they
//! can be sent on with their authors' signatures: what a member lacks is sent as the
//! envelopes that hold it, never re-exported (a re-export would carry no signature).
//!
//! Only where each envelope is and the version it reaches are kept in memory; the bytes are
//! read back from the file when a member lacks them (a 10,000-track playlist's history is
//! megabytes that a playlist nobody syncs right now need not hold).
//!
//! The log is append-only and never compacted (the snapshot and `updates.log` are what the
//! playlist loads from; this file is what it syncs from). Damage is handled as in
//! [`crate::log`]: damaged records are skipped and kept aside. A lost envelope costs the
//! members who lack its changes a copy of them from us — they still get it from the others.

use std::path::Path;

use loro::{LoroDoc, VersionVector};
use whatnext_protocol::signed::Envelope;

use crate::{error::StoreError, log::UpdateLog};

pub(crate) const FILE: &str = "signed.log";

/// Where each envelope of the log is and the version it reaches, and the log's length, as
/// [`SignedLog::index`] gives them: kept in the listing's cache, so opening a log that has
/// not changed since decodes no envelope (finding the version an envelope reaches decodes
/// its changes: ~35 ms for a 10,000-track playlist's history, 0.37 s for 100,000).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Index {
    pub len: u64,
    /// (where, the version it reaches as (peer, counter) pairs) of each envelope.
    pub kept: Vec<(u64, Vec<(u64, i32)>)>,
}

struct Kept {
    /// Where its record starts in the file.
    at: u64,
    /// The version its changes reach (for the Loro peers it holds).
    end: VersionVector,
}

pub(crate) struct SignedLog {
    log: UpdateLog,
    kept: Vec<Kept>,
    /// Every version the kept envelopes reach, merged.
    covered: VersionVector,
}

/// The version `envelope`'s changes reach, if its content reads as Loro updates.
pub(crate) fn end_of(envelope: &Envelope) -> Option<VersionVector> {
    LoroDoc::decode_import_blob_meta(&envelope.updates, false)
        .ok()
        .map(|meta| meta.partial_end_vv)
}

impl SignedLog {
    /// Opens `dir/signed.log`, creating it if needed. Records that do not decode are skipped
    /// (and counted in the result). `index`: what [`Self::index`] gave for this log, taken
    /// instead of decoding its envelopes when the log is still exactly that (the same length,
    /// every record whole and readable).
    pub(crate) fn open(
        dir: &Path,
        now_ms: u64,
        index: Option<&Index>,
    ) -> Result<(SignedLog, usize), StoreError> {
        let (log, recovered) = UpdateLog::open(&dir.join(FILE), now_ms)?;
        let mut signed = SignedLog {
            log,
            kept: Vec::with_capacity(recovered.records.len()),
            covered: VersionVector::default(),
        };
        let unchanged = index.filter(|index| {
            index.len == signed.log.len()
                && index.kept.len() == recovered.records.len()
                && recovered.damage.is_none()
                && recovered.torn_tail.is_none()
        });
        if let Some(index) = unchanged {
            for (at, end) in &index.kept {
                signed.keep(*at, end.iter().copied().collect());
            }
            return Ok((signed, 0));
        }
        let mut unreadable = 0;
        // What `UpdateLog::open` leaves is whole records end to end (damage and torn tails
        // are cut out and kept aside), so each starts where the one before ends.
        let mut at = 0;
        for record in &recovered.records {
            match Envelope::decode(record).ok().and_then(|e| end_of(&e)) {
                Some(end) => signed.keep(at, end),
                None => unreadable += 1,
            }
            at += UpdateLog::record_size(record.len());
        }
        Ok((signed, unreadable))
    }

    fn keep(&mut self, at: u64, end: VersionVector) {
        self.covered.merge(&end);
        self.kept.push(Kept { at, end });
    }

    /// Appends `envelope` (durable when this returns) and keeps it for sending.
    pub(crate) fn push(&mut self, envelope: Envelope) -> Result<(), StoreError> {
        let end = end_of(&envelope)
            .ok_or_else(|| StoreError::Crdt("a signed update without readable changes".into()))?;
        let at = self.log.len();
        self.log.append(&envelope.encode())?;
        self.keep(at, end);
        Ok(())
    }

    /// The envelopes holding changes the holder of `theirs` lacks, in the order they were
    /// kept (which is causal: an envelope is kept only once what it builds on is here).
    /// One that can no longer be read back (the file changed under us) is left out and
    /// logged: the member gets those changes from another member or at the next start.
    pub(crate) fn lacking(&self, theirs: &VersionVector) -> Vec<Envelope> {
        let mut lacking = self.kept.iter().filter(|k| !theirs.includes_vv(&k.end));
        let Some(first) = lacking.next() else {
            return Vec::new();
        };
        let file = match self.log.reader() {
            Ok(file) => file,
            Err(err) => {
                tracing::warn!("could not read {}: {err}", self.log.path().display());
                return Vec::new();
            }
        };
        std::iter::once(first)
            .chain(lacking)
            .filter_map(|k| {
                let envelope = self
                    .log
                    .read_record(&file, k.at)
                    .and_then(|bytes| Envelope::decode(&bytes).ok());
                if envelope.is_none() {
                    tracing::warn!(
                        "{}: the signed update at byte {} could not be read back",
                        self.log.path().display(),
                        k.at
                    );
                }
                envelope
            })
            .collect()
    }

    /// Every version the kept envelopes reach.
    pub(crate) fn covered(&self) -> &VersionVector {
        &self.covered
    }

    /// Where each envelope is and the version it reaches (see [`Index`]).
    pub(crate) fn index(&self) -> Index {
        Index {
            len: self.log.len(),
            kept: self
                .kept
                .iter()
                .map(|kept| {
                    let mut end: Vec<(u64, i32)> = kept
                        .end
                        .iter()
                        .map(|(peer, counter)| (*peer, *counter))
                        .collect();
                    end.sort_unstable();
                    (kept.at, end)
                })
                .collect(),
        }
    }
}
