//! A playlist's signed updates ([`Envelope`]s), kept byte for byte in `signed.log` so they
//! can be sent on with their authors' signatures: what a member lacks is sent as the
//! envelopes that hold it, never re-exported (a re-export would carry no signature).
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

struct Kept {
    envelope: Envelope,
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
    /// (and counted in the result).
    pub(crate) fn open(dir: &Path, now_ms: u64) -> Result<(SignedLog, usize), StoreError> {
        let (log, recovered) = UpdateLog::open(&dir.join(FILE), now_ms)?;
        let mut signed = SignedLog {
            log,
            kept: Vec::with_capacity(recovered.records.len()),
            covered: VersionVector::default(),
        };
        let mut unreadable = 0;
        for record in &recovered.records {
            match Envelope::decode(record)
                .ok()
                .and_then(|e| Some((end_of(&e)?, e)))
            {
                Some((end, envelope)) => signed.keep(envelope, end),
                None => unreadable += 1,
            }
        }
        Ok((signed, unreadable))
    }

    fn keep(&mut self, envelope: Envelope, end: VersionVector) {
        self.covered.merge(&end);
        self.kept.push(Kept { envelope, end });
    }

    /// Appends `envelope` (durable when this returns) and keeps it for sending.
    pub(crate) fn push(&mut self, envelope: Envelope) -> Result<(), StoreError> {
        let end = end_of(&envelope)
            .ok_or_else(|| StoreError::Crdt("a signed update without readable changes".into()))?;
        self.log.append(&envelope.encode())?;
        self.keep(envelope, end);
        Ok(())
    }

    /// The envelopes holding changes the holder of `theirs` lacks, in the order they were
    /// kept (which is causal: an envelope is kept only once what it builds on is here).
    pub(crate) fn lacking(&self, theirs: &VersionVector) -> Vec<Envelope> {
        self.kept
            .iter()
            .filter(|k| !theirs.includes_vv(&k.end))
            .map(|k| k.envelope.clone())
            .collect()
    }

    /// Every version the kept envelopes reach.
    pub(crate) fn covered(&self) -> &VersionVector {
        &self.covered
    }
}
