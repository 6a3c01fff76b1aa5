//! Test tones: short tagged WAV files, for tests and benchmarks that need real audio files
//! (the machines that run them have no audio tools).

use std::path::Path;

use lofty::{
    config::WriteOptions,
    picture::{MimeType, Picture, PictureType},
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
    save(tags(title, artist, album), path)
}

fn tags(title: &str, artist: &str, album: &str) -> Tag {
    let mut tag = Tag::new(TagType::Id3v2);
    tag.set_title(title.to_string());
    tag.set_artist(artist.to_string());
    tag.set_album(album.to_string());
    tag
}

/// An 8×8 orange PNG: a cover picture for tests.
pub const TEST_COVER_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x08, 0x02, 0x00, 0x00, 0x00, 0x4b, 0x6d, 0x29,
    0xdc, 0x00, 0x00, 0x00, 0x11, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xb8, 0x13, 0xa5, 0x81,
    0x15, 0x31, 0x0c, 0x2d, 0x09, 0x00, 0x5d, 0xc6, 0x57, 0x81, 0x61, 0x48, 0x7e, 0x75, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A [`write_tagged_tone`] whose tags also hold [`TEST_COVER_PNG`] as its front cover.
pub fn write_tagged_tone_with_cover(
    path: &Path,
    ms: u32,
    title: &str,
    artist: &str,
    album: &str,
) -> Result<(), MediaError> {
    write_tagged_tone(path, ms, title, artist, album)?;
    let mut tag = tags(title, artist, album);
    tag.push_picture(
        Picture::unchecked(TEST_COVER_PNG.to_vec())
            .pic_type(PictureType::CoverFront)
            .mime_type(MimeType::Png)
            .build(),
    );
    save(tag, path)
}

fn save(tag: Tag, path: &Path) -> Result<(), MediaError> {
    tag.save_to_path(path, WriteOptions::default())
        .map_err(|e| MediaError::NotAudio {
            path: path.to_path_buf(),
            reason: format!("could not tag it: {e}"),
        })
}
