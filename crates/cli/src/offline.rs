//! The read-only playlist commands (`list`, `show`, `export`) when no controller runs: read
//! from the Markdown copies the controller keeps under `<home>/playlists/` (every field,
//! rewritten shortly after each change), without touching the store, so nothing here can
//! race a controller that starts meanwhile.

use std::path::PathBuf;

use whatnext_client::ClientError;
use whatnext_home::{error::HomeError, home::Home};
use whatnext_protocol::{
    api::PlaylistView,
    playlist::{Playlist, PlaylistSummary},
};
use whatnext_store::{formats, markdown};

use crate::{playlist, resolve};

/// Whether `err` says no controller runs for the home.
pub fn not_running(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<ClientError>(),
            Some(ClientError::Home(HomeError::NotRunning { .. }))
        ) || matches!(
            cause.downcast_ref::<HomeError>(),
            Some(HomeError::NotRunning { .. })
        )
    })
}

/// The playlists of the Markdown copies, newest first; a copy that cannot be read is named
/// on stderr and skipped.
fn read(home: &Home) -> anyhow::Result<(PathBuf, Vec<Playlist>)> {
    let dir = home.mirror_dir();
    let mut playlists = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((dir, playlists)),
        Err(err) => anyhow::bail!("cannot read {}: {err}", dir.display()),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        match std::fs::read_to_string(&path)
            .map_err(anyhow::Error::from)
            .and_then(|text| Ok(markdown::from_markdown(&text)?))
        {
            Ok(playlist) => playlists.push(playlist),
            Err(err) => eprintln!("skipped {}: {err:#}", path.display()),
        }
    }
    playlists.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
    Ok((dir, playlists))
}

/// Runs a read-only playlist command from the Markdown copies; `None` when the command
/// needs a running controller.
pub fn run(home: &Home, command: playlist::PlaylistCommand) -> Option<anyhow::Result<()>> {
    use playlist::PlaylistCommand as C;
    if !matches!(command, C::List { .. } | C::Show { .. } | C::Export { .. }) {
        return None;
    }
    Some(run_read_only(home, command))
}

fn run_read_only(home: &Home, command: playlist::PlaylistCommand) -> anyhow::Result<()> {
    use playlist::PlaylistCommand as C;
    let (dir, playlists) = read(home)?;
    eprintln!(
        "WhatNext is not running: read from the copies in {} (as of the last change it saved). `whatnext run` for the live playlists.",
        dir.display()
    );
    let summaries: Vec<PlaylistSummary> = playlists.iter().map(Playlist::summary).collect();
    let find = |given: &str| -> anyhow::Result<Playlist> {
        let id = resolve::playlist_id(&summaries, given)?;
        playlists
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no playlist {id}"))
    };
    match command {
        C::List { json } => playlist::print_list(&summaries, json),
        C::Show { id, json } => playlist::print_show(view(find(&id)?), json),
        C::Export { id, format, out } => {
            let format: formats::Format = format
                .name()
                .parse()
                .map_err(|reason: String| anyhow::anyhow!(reason))?;
            playlist::write_export(&formats::export(&find(&id)?, format)?, out)
        }
        _ => Ok(()),
    }
}

/// The playlist as `show` gives it, nobody online (nothing runs to know).
fn view(playlist: Playlist) -> PlaylistView {
    PlaylistView::of(playlist, false, |_| false, |_| false)
}
