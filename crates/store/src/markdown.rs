//! The human-readable mirror and export format: Markdown with YAML front matter.
//!
//! The front matter holds every field (so an import loses nothing); the body is a
//! readable rendering of the same tracks for people and for version control.
//!
//! ```text
//! ---
//! whatnext_format: 1
//! playlist:
//!   id: …
//!   name: …
//!   tracks: [...]
//! ---
//! # Name
//! …
//! ```

use serde::{Deserialize, Serialize};

use whatnext_protocol::playlist::Playlist;

use crate::error::StoreError;

pub const MARKDOWN_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Front {
    whatnext_format: u32,
    playlist: Playlist,
}

fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{}:{:02}", secs / 60, secs % 60)
}

pub fn to_markdown(playlist: &Playlist) -> Result<String, StoreError> {
    let front = Front {
        whatnext_format: MARKDOWN_FORMAT,
        playlist: playlist.clone(),
    };
    let yaml = serde_saphyr::to_string(&front)
        .map_err(|e| StoreError::BadMarkdown(format!("cannot write YAML: {e}")))?;
    let mut out = format!(
        "---\n{}---\n\n# {}\n\n",
        yaml.trim_start_matches("---\n"),
        playlist.name
    );
    if !playlist.description.is_empty() {
        out.push_str(&playlist.description);
        out.push_str("\n\n");
    }
    if playlist.tracks.is_empty() {
        out.push_str("_No tracks yet._\n");
    }
    for (i, track) in playlist.tracks.iter().enumerate() {
        let mut line = format!("{}. **{}**", i + 1, track.title);
        if !track.artists.is_empty() {
            line.push_str(&format!(" — {}", track.artists.join(", ")));
        }
        if let Some(album) = &track.album {
            line.push_str(&format!(" · _{album}_"));
        }
        if let Some(ms) = track.duration_ms {
            line.push_str(&format!(" · {}", duration(ms)));
        }
        if let Some(uri) = &track.uri {
            line.push_str(&format!(" · <{uri}>"));
        }
        if !track.added_by.display_name.is_empty() {
            line.push_str(&format!(" (added by {})", track.added_by.display_name));
        }
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

pub fn from_markdown(text: &str) -> Result<Playlist, StoreError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or_else(|| {
            StoreError::BadMarkdown("it does not start with a `---` front matter block".into())
        })?;
    let end = rest
        .find("\n---\n")
        .or_else(|| rest.find("\n---\r\n"))
        .or_else(|| rest.strip_suffix("\n---").map(|r| r.len()))
        .ok_or_else(|| {
            StoreError::BadMarkdown("the front matter block is not closed by `---`".into())
        })?;
    let yaml = &rest[..end + 1];
    let front: Front = serde_saphyr::from_str(yaml).map_err(|e| {
        StoreError::BadMarkdown(format!("the front matter is not a WhatNext playlist: {e}"))
    })?;
    if front.whatnext_format > MARKDOWN_FORMAT {
        return Err(StoreError::BadMarkdown(format!(
            "it was written by a newer WhatNext (format {}, this version reads up to {MARKDOWN_FORMAT})",
            front.whatnext_format
        )));
    }
    Ok(front.playlist)
}

/// File name of a playlist's mirror: a readable slug of its name plus a piece of its id,
/// so two playlists with one name do not collide.
pub fn file_name(playlist: &Playlist) -> String {
    file_name_of(&playlist.name, &playlist.id)
}

/// [`file_name`] of the playlist named `name` with id `id`.
pub fn file_name_of(name: &str, id: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 48 {
            break;
        }
    }
    let slug = slug.trim_matches('-');
    let id: String = id.chars().take(8).collect();
    if slug.is_empty() {
        format!("{id}.md")
    } else {
        format!("{slug}-{id}.md")
    }
}
