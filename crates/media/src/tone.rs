//! Test tones: short tagged WAV files, for tests and benchmarks that need real audio files
//! (the machines that run them have no audio tools).

use std::path::Path;

use lofty::{
    config::WriteOptions,
    tag::{Accessor as _, Tag, TagExt as _, TagType},
};

use crate::MediaError;

/// A mono 16-bit PCM WAV of `ms` milliseconds of a tone at 8 kHz (`pitch` changes the
/// tone, and so the bytes).
pub fn tone_wav(ms: u32, pitch: u32) -> Vec<u8> {
    let rate = 8_000u32;
    let samples = (u64::from(rate) * u64::from(ms) / 1000) as u32;
    let mut data = Vec::with_capacity(samples as usize * 2);
    for i in 0..samples {
        let v = (i.wrapping_mul(pitch.max(1)) % 64) as i16 * 256 - 8192;
        data.extend_from_slice(&v.to_le_bytes());
    }
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    wav
}

/// Writes a [`tone_wav`] to `path` with ID3v2 tags (title, artist, album).
pub fn write_tagged_tone(
    path: &Path,
    ms: u32,
    title: &str,
    artist: &str,
    album: &str,
) -> Result<(), MediaError> {
    let pitch = title.bytes().map(u32::from).sum::<u32>() % 31 + 1;
    std::fs::write(path, tone_wav(ms, pitch)).map_err(MediaError::io("write", path))?;
    let mut tag = Tag::new(TagType::Id3v2);
    tag.set_title(title.to_string());
    tag.set_artist(artist.to_string());
    tag.set_album(album.to_string());
    tag.save_to_path(path, WriteOptions::default())
        .map_err(|e| MediaError::NotAudio {
            path: path.to_path_buf(),
            reason: format!("could not tag it: {e}"),
        })
}
