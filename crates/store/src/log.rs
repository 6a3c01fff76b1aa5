//! The per-playlist update log: append-only records, each fsync'ed before the write that
//! produced it is acknowledged.
//!
//! Record: `0xA5` · length (u32 BE) · CRC-32 of the payload (u32 BE) · payload (a Loro
//! update). The marker, the length and the checksum frame every record, so reading can tell
//! two kinds of bad bytes apart:
//!
//! * a **torn tail**: the final record is incomplete (its header or payload runs past the end
//!   of the file). That is a crash in the middle of an append, whose write was never
//!   acknowledged. The tail is moved aside to `updates.log.torn-<ms>` and the log cut back
//!   to the last whole record.
//! * **damage**: a record that is complete but fails its checksum, or bytes in the middle of
//!   the log that are not a record. Only those bytes are skipped: reading resynchronises on
//!   the next position where a whole valid record starts (marker, sane length and matching
//!   CRC, followed by another valid record or the end of the file). When only a payload is
//!   damaged that is exactly the next record, so exactly the damaged record is skipped. Every record after the
//!   damage is still read. The log as it was is copied to `updates.log.damaged-<ms>` and the
//!   log is rewritten with the valid records only (temp file + fsync + rename).
//!
//! Nothing is ever deleted: whatever is dropped from the log is kept in a file beside it.
//!
//! The log is only ever emptied by `UpdateLog::reset`, which the store calls only once a
//! snapshot holding every version in the log was written, synced, read back and decoded.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Write as _},
    ops::Range,
    path::{Path, PathBuf},
};

use crate::error::StoreError;

const MARKER: u8 = 0xA5;
const HEADER: usize = 9;
/// Larger than any update we write (a 10k-track batch is far below), small enough that a
/// damaged length cannot make us allocate gigabytes.
pub const MAX_RECORD: usize = 256 * 1024 * 1024;

pub struct UpdateLog {
    path: PathBuf,
    file: File,
    len: u64,
    /// Identity of the file we append to, to notice when the path no longer leads to it.
    identity: Option<FileIdentity>,
    /// Set when a failed append could not be undone: the file may end in a partial record.
    broken: Option<String>,
}

/// What reading a log found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub records: Vec<Vec<u8>>,
    /// Where an incomplete final record (a crash mid-append) was moved, if there was one.
    pub torn_tail: Option<PathBuf>,
    /// Damaged bytes that were skipped, if any.
    pub damage: Option<LogDamage>,
}

/// Damaged bytes found in a log.
#[derive(Debug, Clone)]
pub struct LogDamage {
    /// A copy of the whole log as it was found (the damaged bytes included).
    pub kept_at: PathBuf,
    /// The byte ranges of the original log that were skipped.
    pub skipped: Vec<Range<usize>>,
    /// Whether a valid record followed the last damaged range. The store writes each record
    /// with its predecessor's changes repeated, so then nothing of a single damaged record is
    /// lost.
    pub followed_by_record: bool,
}

/// The records in a log's bytes, and what was wrong with the rest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Vec<u8>>,
    /// Damaged ranges that were skipped, in order.
    pub damaged: Vec<Range<usize>>,
    /// An incomplete final record (a crash mid-append).
    pub torn: Option<Range<usize>>,
    /// Whether a valid record follows the last damaged range.
    pub damage_followed: bool,
}

pub fn encode_record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(MARKER);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What the bytes at one offset are.
enum At {
    /// A whole record with a matching checksum, ending at `end`.
    Valid { end: usize },
    /// The header is plausible and the record is whole, but the checksum does not match.
    BadChecksum,
    /// The header is plausible (or cut short) but the record runs past the end of the bytes.
    Incomplete,
    /// Not a record header.
    Garbage,
}

fn record_at(bytes: &[u8], at: usize) -> At {
    let rest = &bytes[at..];
    if rest.first().is_some_and(|&b| b != MARKER) {
        return At::Garbage;
    }
    if rest.len() < HEADER {
        return At::Incomplete;
    }
    let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
    let crc = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
    if len > MAX_RECORD {
        return At::Garbage;
    }
    if rest.len() - HEADER < len {
        return At::Incomplete;
    }
    let end = at + HEADER + len;
    if crc32fast::hash(&bytes[at + HEADER..end]) == crc {
        At::Valid { end }
    } else {
        At::BadChecksum
    }
}

/// Whether a valid record starts at `at` and is followed by another valid record or by the
/// end of the bytes: the test for resynchronising after damage, so a stray marker inside a
/// payload is not mistaken for a record.
fn resyncs_at(bytes: &[u8], at: usize) -> bool {
    match record_at(bytes, at) {
        At::Valid { end } => {
            end == bytes.len() || matches!(record_at(bytes, end), At::Valid { .. })
        }
        _ => false,
    }
}

/// Splits a log's bytes into its valid records and what was skipped.
pub fn decode_records(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0;
    while at < bytes.len() {
        let here = record_at(bytes, at);
        if let At::Valid { end } = here {
            scan.records.push(bytes[at + HEADER..end].to_vec());
            at = end;
            continue;
        }
        // Resynchronise on the next position where a whole valid record starts. When only
        // the payload is damaged that is where the damaged record ends, so exactly that
        // record is skipped; when its header is damaged too, the scan finds the next one.
        let next = (at + 1..bytes.len())
            .filter(|&p| bytes[p] == MARKER)
            .find(|&p| resyncs_at(bytes, p));
        match next {
            Some(next) => {
                scan.damaged.push(at..next);
                scan.damage_followed = true;
                at = next;
            }
            None => {
                // Nothing valid follows: an incomplete final record is a torn tail; anything
                // else (a whole record with a bad checksum, bytes that are no record) is damage.
                if matches!(here, At::Incomplete) {
                    scan.torn = Some(at..bytes.len());
                } else {
                    scan.damaged.push(at..bytes.len());
                    scan.damage_followed = false;
                }
                break;
            }
        }
    }
    scan
}

fn sync_file(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::io("sync", path))
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Device and inode (on Unix) of an open file or a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
fn identity_of(meta: &std::fs::Metadata) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt as _;
    Some(FileIdentity {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

#[cfg(not(unix))]
fn identity_of(_meta: &std::fs::Metadata) -> Option<FileIdentity> {
    None
}

impl UpdateLog {
    /// Opens (creating if needed) the log at `path` and returns what it holds. Damaged bytes
    /// are skipped and kept beside the log (see the module documentation).
    pub fn open(path: &Path, now_ms: u64) -> Result<(UpdateLog, Recovered), StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(StoreError::io("open", path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(StoreError::io("read", path))?;
        let scan = decode_records(&bytes);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("updates.log")
            .to_string();
        let mut recovered = Recovered {
            records: Vec::new(),
            torn_tail: None,
            damage: None,
        };
        let mut len = bytes.len() as u64;
        if !scan.damaged.is_empty() {
            // Keep the log exactly as found, then rewrite it with the valid records only, so
            // new records follow valid ones and the damage is not met again on every start.
            let aside = path.with_file_name(format!("{name}.damaged-{now_ms}"));
            std::fs::write(&aside, &bytes).map_err(StoreError::io("write", &aside))?;
            sync_file(&aside)?;
            let rewritten: Vec<u8> = scan.records.iter().flat_map(|r| encode_record(r)).collect();
            let tmp = path.with_file_name(format!("{name}.tmp"));
            std::fs::write(&tmp, &rewritten).map_err(StoreError::io("write", &tmp))?;
            sync_file(&tmp)?;
            std::fs::rename(&tmp, path).map_err(StoreError::io("replace", path))?;
            sync_parent(path);
            file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(path)
                .map_err(StoreError::io("reopen", path))?;
            len = rewritten.len() as u64;
            tracing::error!(
                "{}: skipped {} damaged byte range(s) ({:?}) and kept reading; {} records are good; the log as it was is kept in {}",
                path.display(),
                scan.damaged.len(),
                scan.damaged,
                scan.records.len(),
                aside.display()
            );
            recovered.damage = Some(LogDamage {
                kept_at: aside,
                skipped: scan.damaged.clone(),
                followed_by_record: scan.damage_followed,
            });
        } else if let Some(torn) = &scan.torn {
            let aside = path.with_file_name(format!("{name}.torn-{now_ms}"));
            std::fs::write(&aside, &bytes[torn.clone()])
                .map_err(StoreError::io("write", &aside))?;
            sync_file(&aside)?;
            file.set_len(torn.start as u64)
                .map_err(StoreError::io("truncate", path))?;
            file.sync_all().map_err(StoreError::io("sync", path))?;
            len = torn.start as u64;
            tracing::warn!(
                "{}: an interrupted write left {} bytes of an incomplete record after {} good records (kept in {})",
                path.display(),
                torn.len(),
                scan.records.len(),
                aside.display()
            );
            recovered.torn_tail = Some(aside);
        }
        recovered.records = scan.records;
        let identity = file.metadata().ok().as_ref().and_then(identity_of);
        let log = UpdateLog {
            path: path.to_path_buf(),
            file,
            len,
            identity,
            broken: None,
        };
        Ok((log, recovered))
    }

    /// Fails when `path` no longer leads to the file we hold open (replaced, moved or
    /// removed while we run): appending to it would not be durable where the store reads.
    fn check_in_place(&self) -> Result<(), StoreError> {
        let Some(ours) = self.identity else {
            return Ok(());
        };
        let there = std::fs::metadata(&self.path).map_err(StoreError::io("check", &self.path))?;
        if identity_of(&there) == Some(ours) && there.is_file() {
            return Ok(());
        }
        Err(StoreError::Io {
            action: "append to",
            path: self.path.clone(),
            source: std::io::Error::other(
                "the file was replaced or moved while WhatNext was running; put the original back or restart WhatNext",
            ),
        })
    }

    /// Appends one record and makes it durable. On failure the log is cut back to where it
    /// was, so a failed write leaves no partial record behind (when even that fails, every
    /// later append is refused until the store is reopened).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        if let Some(why) = &self.broken {
            return Err(StoreError::Io {
                action: "append to",
                path: self.path.clone(),
                source: std::io::Error::other(why.clone()),
            });
        }
        self.check_in_place()?;
        let record = encode_record(payload);
        let written = self
            .file
            .write_all(&record)
            .and_then(|()| self.file.sync_data());
        if let Err(err) = written {
            let undone = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            if let Err(undo) = undone {
                self.broken = Some(format!(
                    "an earlier append failed ({err}) and could not be undone ({undo}); restart WhatNext"
                ));
            }
            return Err(StoreError::io("append to", &self.path)(err));
        }
        self.len += record.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// The log's file, opened for reading records back ([`UpdateLog::read_record`]).
    pub fn reader(&self) -> std::io::Result<File> {
        File::open(&self.path)
    }

    /// The payload of the record that starts at byte `at` of `file` (from
    /// [`UpdateLog::reader`]); None when the bytes there are not a whole record with a
    /// matching checksum.
    pub fn read_record(&self, file: &File, at: u64) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt as _;
        let mut header = [0u8; HEADER];
        file.read_exact_at(&mut header, at).ok()?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if header[0] != MARKER || len > MAX_RECORD || at + (HEADER + len) as u64 > self.len {
            return None;
        }
        let mut payload = vec![0u8; len];
        file.read_exact_at(&mut payload, at + HEADER as u64).ok()?;
        let crc = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        (crc32fast::hash(&payload) == crc).then_some(payload)
    }

    /// Bytes a record of `payload_len` bytes takes in the log.
    pub fn record_size(payload_len: usize) -> u64 {
        (HEADER + payload_len) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Empties the log. Only for the store's compaction, after a snapshot holding every
    /// version in this log was written, synced, read back and decoded.
    pub(crate) fn reset(&mut self) -> Result<(), StoreError> {
        self.check_in_place()?;
        self.file
            .set_len(0)
            .and_then(|()| self.file.sync_all())
            .map_err(StoreError::io("truncate", &self.path))?;
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_torn_tail_is_skipped_kept_aside_and_appends_continue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("updates.log");
        {
            let (mut log, recovered) = UpdateLog::open(&path, 1).expect("open");
            assert!(recovered.records.is_empty());
            log.append(b"one").expect("append");
            log.append(b"two").expect("append");
        }
        // A crash mid-append: half a record at the end.
        let mut bytes = std::fs::read(&path).expect("read");
        let good = bytes.len();
        bytes.extend_from_slice(&encode_record(b"three")[..7]);
        std::fs::write(&path, &bytes).expect("write");

        let (mut log, recovered) = UpdateLog::open(&path, 2).expect("reopen");
        assert_eq!(recovered.records, vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(recovered.damage.is_none(), "a torn tail is not damage");
        let aside = recovered.torn_tail.expect("tail moved aside");
        assert_eq!(std::fs::read(aside).expect("kept").len(), 7);
        assert_eq!(std::fs::metadata(&path).expect("log").len(), good as u64);
        log.append(b"four").expect("append after recovery");
        drop(log);
        let (_, recovered) = UpdateLog::open(&path, 3).expect("reopen");
        assert_eq!(recovered.records.len(), 3);
        assert_eq!(recovered.records[2], b"four");
    }

    #[test]
    fn a_flipped_bit_in_the_last_record_is_damage_not_a_torn_tail() {
        let mut bytes = encode_record(b"alpha");
        bytes.extend(encode_record(b"beta"));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let scan = decode_records(&bytes);
        assert_eq!(scan.records, vec![b"alpha".to_vec()]);
        assert_eq!(scan.damaged, vec![HEADER + 5..bytes.len()]);
        assert!(scan.torn.is_none());
        assert!(!scan.damage_followed);
    }

    fn ten_records() -> (Vec<Vec<u8>>, Vec<u8>, Vec<usize>) {
        let payloads: Vec<Vec<u8>> = (0..10u8)
            .map(|i| format!("record number {i} with some text").into_bytes())
            .collect();
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for p in &payloads {
            starts.push(bytes.len());
            bytes.extend(encode_record(p));
        }
        (payloads, bytes, starts)
    }

    #[test]
    fn a_damaged_record_mid_log_costs_that_record_only() {
        let (payloads, bytes, starts) = ten_records();
        // A flipped payload byte in record 3 (index 2): its length is intact.
        let mut flipped = bytes.clone();
        flipped[starts[2] + HEADER + 4] ^= 0x40;
        let scan = decode_records(&flipped);
        let mut want = payloads.clone();
        want.remove(2);
        assert_eq!(scan.records, want);
        assert_eq!(scan.damaged, vec![starts[2]..starts[3]]);
        assert!(scan.damage_followed);
        assert!(scan.torn.is_none());

        // A damaged length field: reading resynchronises on the next whole record.
        let mut bad_len = bytes.clone();
        bad_len[starts[2] + 2] ^= 0x11;
        let scan = decode_records(&bad_len);
        assert_eq!(scan.records, want);
        assert_eq!(scan.damaged, vec![starts[2]..starts[3]]);

        // A damaged marker likewise.
        let mut bad_marker = bytes.clone();
        bad_marker[starts[2]] = 0;
        assert_eq!(decode_records(&bad_marker).records, want);
    }

    #[test]
    fn opening_a_log_damaged_mid_way_keeps_the_rest_and_a_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("updates.log");
        let (payloads, mut bytes, starts) = ten_records();
        bytes[starts[2] + HEADER + 1] ^= 0xFF;
        std::fs::write(&path, &bytes).expect("write");
        let (mut log, recovered) = UpdateLog::open(&path, 7).expect("open");
        assert_eq!(recovered.records.len(), 9);
        assert!(recovered.torn_tail.is_none());
        let damage = recovered.damage.expect("damage reported");
        assert_eq!(
            damage.kept_at,
            dir.path().join("updates.log.damaged-7"),
            "kept beside the log"
        );
        assert_eq!(std::fs::read(&damage.kept_at).expect("kept"), bytes);
        assert_eq!(damage.skipped, vec![starts[2]..starts[3]]);
        // The log now holds the valid records only; appends follow them.
        log.append(b"eleven").expect("append");
        drop(log);
        let (_, again) = UpdateLog::open(&path, 8).expect("reopen");
        assert!(again.damage.is_none(), "the damage is not met twice");
        let mut want = payloads;
        want.remove(2);
        want.push(b"eleven".to_vec());
        assert_eq!(again.records, want);
    }

    #[cfg(unix)]
    #[test]
    fn an_append_to_a_log_replaced_behind_our_back_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("updates.log");
        let (mut log, _) = UpdateLog::open(&path, 1).expect("open");
        log.append(b"one").expect("append");
        let moved = dir.path().join("elsewhere");
        std::fs::rename(&path, &moved).expect("move");
        std::fs::create_dir(&path).expect("a directory in its place");
        let err = log.append(b"two").expect_err("refused");
        assert!(err.to_string().contains("replaced or moved"), "{err}");
        std::fs::remove_dir(&path).expect("rmdir");
        std::fs::rename(&moved, &path).expect("put back");
        log.append(b"three").expect("works once repaired");
        drop(log);
        let (_, recovered) = UpdateLog::open(&path, 2).expect("reopen");
        assert_eq!(recovered.records, vec![b"one".to_vec(), b"three".to_vec()]);
    }

    proptest! {
        #[test]
        fn records_round_trip_and_any_cut_keeps_a_prefix(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            cut in any::<usize>(),
        ) {
            let bytes: Vec<u8> = payloads.iter().flat_map(|p| encode_record(p)).collect();
            let scan = decode_records(&bytes);
            prop_assert_eq!(&scan.records, &payloads);
            prop_assert!(scan.damaged.is_empty() && scan.torn.is_none());
            let cut = cut % (bytes.len() + 1);
            let cut_scan = decode_records(&bytes[..cut]);
            prop_assert_eq!(&cut_scan.records[..], &payloads[..cut_scan.records.len()]);
            // A cut is a crash mid-append: a torn tail, never damage.
            prop_assert!(cut_scan.damaged.is_empty(), "{:?}", cut_scan.damaged);
        }

        /// Damage anywhere in the middle of a log costs at most the records it touches: every
        /// record wholly outside the damaged bytes is still read.
        #[test]
        fn mid_log_damage_costs_only_the_records_it_touches(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 2..10),
            at in any::<usize>(),
            len in 1usize..6,
            noise in proptest::collection::vec(any::<u8>(), 6),
        ) {
            let mut bytes = Vec::new();
            let mut spans = Vec::new();
            for p in &payloads {
                let start = bytes.len();
                bytes.extend(encode_record(p));
                spans.push(start..bytes.len());
            }
            let at = at % bytes.len();
            let end = (at + len).min(bytes.len());
            for (i, b) in bytes[at..end].iter_mut().enumerate() {
                *b ^= noise[i] | 1;
            }
            let scan = decode_records(&bytes);
            // Records the damage does not touch, except a last one that might now be read as
            // part of the damage, must all be there, in order.
            let untouched: Vec<&Vec<u8>> = payloads
                .iter()
                .zip(&spans)
                .filter(|(_, s)| s.end <= at || s.start >= end)
                .map(|(p, _)| p)
                .collect();
            let mut found = scan.records.iter();
            for want in &untouched {
                prop_assert!(found.any(|r| r == *want), "lost an undamaged record");
            }
            prop_assert!(!scan.damaged.is_empty() || scan.torn.is_some() || scan.records.len() == payloads.len());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_records(&bytes);
        }
    }
}
