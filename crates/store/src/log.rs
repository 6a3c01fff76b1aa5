//! The per-playlist update log: append-only records, each fsync'ed before the write that
//! produced it is acknowledged.
//!
//! Record: `0xA5` · length (u32 BE) · CRC-32 of the payload (u32 BE) · payload (a Loro
//! update). Reading stops at the first record that is short, has a bad marker, an absurd
//! length or a wrong checksum: that is a torn tail from a crash mid-append (or damage).
//! The good records are kept; the tail is moved aside to `updates.log.torn-<ms>` — never
//! deleted — and the log is cut back to its good length so new records follow good ones.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Write as _},
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
}

/// What reading a log found.
pub struct Recovered {
    pub records: Vec<Vec<u8>>,
    /// Where a damaged tail was moved, if there was one.
    pub torn_tail: Option<PathBuf>,
}

pub fn encode_record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(MARKER);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits `bytes` into good records and the offset where the good prefix ends.
pub fn decode_records(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let header = &bytes[at..at + HEADER];
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let crc = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        if header[0] != MARKER || len > MAX_RECORD || bytes.len() - at - HEADER < len {
            break;
        }
        let payload = &bytes[at + HEADER..at + HEADER + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        records.push(payload.to_vec());
        at += HEADER + len;
    }
    (records, at)
}

impl UpdateLog {
    /// Opens (creating if needed) the log at `path` and returns what it holds.
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
        let (records, good) = decode_records(&bytes);
        let mut torn_tail = None;
        if good < bytes.len() {
            let aside = path.with_file_name(format!("updates.log.torn-{now_ms}"));
            std::fs::write(&aside, &bytes[good..]).map_err(StoreError::io("write", &aside))?;
            File::open(&aside)
                .and_then(|f| f.sync_all())
                .map_err(StoreError::io("sync", &aside))?;
            file.set_len(good as u64)
                .map_err(StoreError::io("truncate", path))?;
            file.sync_all().map_err(StoreError::io("sync", path))?;
            tracing::warn!(
                "{}: skipped a damaged tail of {} bytes after {} good records (kept in {})",
                path.display(),
                bytes.len() - good,
                records.len(),
                aside.display()
            );
            torn_tail = Some(aside);
        }
        let log = UpdateLog {
            path: path.to_path_buf(),
            file,
            len: good as u64,
        };
        Ok((log, Recovered { records, torn_tail }))
    }

    /// Appends one record and makes it durable.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        let record = encode_record(payload);
        self.file
            .write_all(&record)
            .and_then(|()| self.file.sync_data())
            .map_err(StoreError::io("append to", &self.path))?;
        self.len += record.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the log after its records were folded into a durable snapshot.
    pub fn reset(&mut self) -> Result<(), StoreError> {
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
    fn a_flipped_bit_stops_reading_at_that_record() {
        let mut bytes = encode_record(b"alpha");
        bytes.extend(encode_record(b"beta"));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let (records, good) = decode_records(&bytes);
        assert_eq!(records, vec![b"alpha".to_vec()]);
        assert_eq!(good, HEADER + 5);
    }

    proptest! {
        #[test]
        fn records_round_trip_and_any_cut_keeps_a_prefix(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            cut in any::<usize>(),
        ) {
            let bytes: Vec<u8> = payloads.iter().flat_map(|p| encode_record(p)).collect();
            let (records, good) = decode_records(&bytes);
            prop_assert_eq!(&records, &payloads);
            prop_assert_eq!(good, bytes.len());
            let cut = cut % (bytes.len() + 1);
            let (prefix, _) = decode_records(&bytes[..cut]);
            prop_assert_eq!(&prefix[..], &payloads[..prefix.len()]);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_records(&bytes);
        }
    }
}
