//! `whatnext playlist …`: the store, through the running controller's API.

use std::{io::Read as _, path::PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use serde::Serialize;
use whatnext_client::{Client, ClientError};
use whatnext_protocol::{
    api::{
        CreatePlaylistRequest, ImportRequest, MAX_IMPORT_BYTES, MoveRequest, RenameRequest,
        RevokeRequest, ShareRequest,
    },
    playlist::{NewTrack, QueueMode},
};

use crate::{
    json_out::{print_json, print_json_pretty},
    text::safe,
};

/// `playlist add --json`: the new track's id, and the file it came from (if any).
#[derive(Serialize)]
struct AddedFrom {
    track_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<whatnext_protocol::media::LibraryEntry>,
}

#[derive(Clone, Subcommand)]
pub enum PlaylistCommand {
    /// Create a playlist.
    Create {
        /// The playlist's name.
        name: String,
        /// A line about it, shown under the name.
        #[arg(long, default_value = "")]
        description: String,
        /// Print the new playlist's id as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List playlists (newest change first).
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a playlist and its tracks.
    Show {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the whole playlist as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a track: typed in, from an audio file (--file), or from the library
    /// (--from-library).
    Add {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The track's title.
        #[arg(long, required_unless_present_any = ["file", "from_library"])]
        title: Option<String>,
        /// An audio file: title, artists, album and length come from its tags, and members
        /// who lack the file can fetch it from you.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["title", "from_library"])]
        file: Option<PathBuf>,
        /// The first file of the library matching these words (see `library search`).
        #[arg(long, value_name = "QUERY", conflicts_with_all = ["title", "file"])]
        from_library: Option<String>,
        /// An artist of the track; repeat for several artists.
        #[arg(long = "artist", value_name = "ARTIST")]
        artists: Vec<String>,
        /// The album the track is on.
        #[arg(long)]
        album: Option<String>,
        /// The track's length, m:ss or h:mm:ss (e.g. 3:45).
        #[arg(long, value_name = "M:SS", value_parser = parse_duration, conflicts_with = "duration_ms")]
        duration: Option<u64>,
        /// The track's length in milliseconds.
        #[arg(long, value_name = "N")]
        duration_ms: Option<u64>,
        /// Where to play it: spotify:…, https://… or file:…
        #[arg(long)]
        uri: Option<String>,
        /// Print the new track's id as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move a track to a position (1 is the top).
    Move {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The track's id (see `playlist show`).
        track_id: String,
        /// The position to move it to; 1 is the top (as `playlist show` numbers them).
        #[arg(long, value_name = "POSITION", value_parser = clap::value_parser!(u64).range(1..))]
        to: u64,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a track.
    Remove {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The track's id (see `playlist show`).
        track_id: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rename a playlist.
    Rename {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Its new name.
        name: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a playlist (it is moved to the store's trash, not erased).
    Delete {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Share a playlist: print a link that lets a friend join it.
    Share {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Make a new key: links given out before stop admitting newcomers.
        #[arg(long)]
        rotate: bool,
        /// Serve this playlist from a network service with an identity of its own, so its
        /// members cannot tie it to your main peer id (on a shared playlist: moves it; the
        /// old link stops admitting).
        #[arg(long)]
        isolated: bool,
        /// Print the link as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop sharing a playlist with one member.
    Revoke {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The member's peer id (see `playlist show`).
        peer_id: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a playlist as Markdown with YAML front matter (every field, for `import`), or
    /// as M3U or XSPF for other players.
    Export {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// md (the default: every field, for `import`), m3u or xspf.
        #[arg(long, value_enum, default_value_t = ExportFormat::Md)]
        format: ExportFormat,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Create a playlist from a file: Markdown written by `export`, or another app's M3U/M3U8,
    /// XSPF or CSV (with a header row: title, artist, album, duration, uri) — told apart by
    /// what is in it.
    Import {
        /// The file to read.
        file: PathBuf,
        /// Give it a new id (e.g. to import a copy of a playlist you already have: the copy is
        /// named "NAME (copy)", "NAME (copy 2)", …).
        #[arg(long)]
        as_new: bool,
        /// Print the new playlist's id as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `playlist export` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// Markdown with YAML front matter: every field, read back by `import`.
    Md,
    /// Extended M3U (UTF-8), for other players.
    M3u,
    /// XSPF, for other players.
    Xspf,
}

impl ExportFormat {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ExportFormat::Md => "md",
            ExportFormat::M3u => "m3u",
            ExportFormat::Xspf => "xspf",
        }
    }
}

impl PlaylistCommand {
    /// The playlist the command names, for [`crate::resolve`].
    pub fn playlist_mut(&mut self) -> Option<&mut String> {
        use PlaylistCommand as C;
        match self {
            C::Show { id, .. }
            | C::Add { id, .. }
            | C::Move { id, .. }
            | C::Remove { id, .. }
            | C::Rename { id, .. }
            | C::Delete { id, .. }
            | C::Share { id, .. }
            | C::Revoke { id, .. }
            | C::Export { id, .. } => Some(id),
            C::Create { .. } | C::List { .. } | C::Import { .. } => None,
        }
    }
}

fn print_ok(
    json: bool,
    answer: &impl Serialize,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        print_json(answer)?;
    } else {
        println!("{}", text());
    }
    Ok(())
}

/// `playlist list`, from the controller or (not running) the Markdown copies.
pub(crate) fn print_list(
    list: &[whatnext_protocol::playlist::PlaylistSummary],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("No playlists yet. Create one with `whatnext playlist create NAME`.");
    } else {
        for p in list {
            println!(
                "{}  {:>5} tracks  {}{}",
                safe(&p.id),
                p.track_count,
                safe(&p.name),
                if p.damaged {
                    "  [damaged: see `whatnext doctor`]"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

/// `playlist show`, from the controller or (not running) the Markdown copies.
pub(crate) fn print_show(
    view: whatnext_protocol::api::PlaylistView,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        print_json_pretty(&view)?;
    } else {
        let playlist = view.playlist;
        // Everything here may come from another member: escaped (text.rs).
        println!("{} ({})", safe(&playlist.name), safe(&playlist.id));
        // A description may have several lines; each is escaped on its own.
        for line in playlist.description.lines() {
            println!("{}", safe(line));
        }
        // In the words of `whatnext session mode`, which sets it.
        let mode = match playlist.queue_mode {
            QueueMode::FreeForAll => "free (anyone adds)",
            QueueMode::TurnTaking => "turns (members take turns)",
            QueueMode::VoteBased => "vote (up next ordered by votes)",
        };
        println!(
            "mode: {mode}, owner: {}",
            safe(&playlist.owner.display_name)
        );
        if playlist.tracks.is_empty() {
            println!(
                "No tracks yet. Add one with `whatnext playlist add {} --title T --artist A`.",
                safe(&playlist.id)
            );
        }
        for (i, t) in playlist.tracks.iter().enumerate() {
            let mut line = format!(
                "{:>3}. {} — {}",
                i + 1,
                safe(&t.title),
                safe(&t.artists.join(", "))
            );
            if let Some(album) = &t.album {
                line.push_str(&format!(" [{}]", safe(album)));
            }
            if let Some(ms) = t.duration_ms {
                line.push_str(&format!(" {}", duration(ms)));
            }
            println!(
                "{line}  (id {}, added by {})",
                safe(&t.id),
                safe(&t.added_by.display_name)
            );
        }
    }
    Ok(())
}

/// `playlist export`: to `out`, or standard output.
pub(crate) fn write_export(text: &str, out: Option<PathBuf>) -> anyhow::Result<()> {
    match out {
        Some(file) => {
            std::fs::write(&file, text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            eprintln!("wrote {}", file.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `m:ss` or `h:mm:ss`, as milliseconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("{text:?} is not a length; give m:ss (3:45), or milliseconds with --duration-ms")
    };
    if !text.contains(':') {
        return Err(bad());
    }
    crate::session::parse_position(text).map_err(|_| bad())
}

/// `m:ss`.
pub(crate) fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{}:{:02}", secs / 60, secs % 60)
}

pub fn run(client: &Client, command: PlaylistCommand) -> anyhow::Result<()> {
    match command {
        PlaylistCommand::Create {
            name,
            description,
            json,
        } => {
            let request = CreatePlaylistRequest {
                name: name.clone(),
                description,
            };
            let reply = client.create_playlist(&request)?;
            print_ok(json, &reply, || {
                format!("created playlist {} ({})", safe(&reply.id), safe(&name))
            })?;
        }
        PlaylistCommand::List { json } => print_list(&client.playlists()?, json)?,
        PlaylistCommand::Show { id, json } => print_show(client.playlist(&id)?, json)?,
        PlaylistCommand::Add {
            id,
            title,
            file,
            from_library,
            artists,
            album,
            duration,
            duration_ms,
            uri,
            json,
        } => {
            // From a file or the library: the tags make the track, the file's bytes its
            // content; what is typed beside them overrides the tags.
            let entry = match (&file, &from_library) {
                (Some(path), _) => {
                    let path = std::path::absolute(path)
                        .with_context(|| format!("cannot find {}", path.display()))?;
                    Some(client.library_file(&path.display().to_string())?)
                }
                (None, Some(query)) => {
                    let found = client.library(Some(query))?;
                    Some(found.entries.into_iter().next().ok_or_else(|| {
                        anyhow::anyhow!(
                            "no file in the library matches {query:?} ({} files; `whatnext library search` looks, `whatnext library scan` reads the music folders)",
                            found.total
                        )
                    })?)
                }
                (None, None) => None,
            };
            let mut track = match &entry {
                Some(entry) => entry.to_track(),
                None => NewTrack::default(),
            };
            if let Some(title) = title {
                track.title = title;
            }
            if !artists.is_empty() {
                track.artists = artists;
            }
            track.album = album.or(track.album);
            track.duration_ms = duration_ms.or(duration).or(track.duration_ms);
            track.uri = uri;
            let reply = client.add_track(&id, &track)?;
            if json {
                return print_json(&AddedFrom {
                    track_id: reply.track_id,
                    file: entry,
                });
            }
            println!(
                "added track {}{}",
                safe(reply.track_id.as_deref().unwrap_or("?")),
                entry
                    .map(|e| format!(": {}", crate::library::line(&e)))
                    .unwrap_or_default()
            );
        }
        PlaylistCommand::Move {
            id,
            track_id,
            to,
            json,
        } => {
            // The API counts from 0; people from 1. Past the end is said in their count.
            if let Some(count) = client
                .playlists()
                .ok()
                .and_then(|all| all.into_iter().find(|p| p.id == id))
                .map(|p| p.track_count as u64)
                && to > count
            {
                anyhow::bail!(
                    "position {to} is past the end: the playlist has {count} tracks (positions 1 to {count})"
                );
            }
            let request = MoveRequest {
                track_id: track_id.clone(),
                to: (to - 1) as usize,
            };
            let reply = client.move_track(&id, &request)?;
            print_ok(json, &reply, || {
                format!("moved track {} to position {to}", safe(&track_id))
            })?;
        }
        PlaylistCommand::Remove { id, track_id, json } => {
            let reply = client.remove_track(&id, &track_id)?;
            print_ok(json, &reply, || {
                format!("removed track {}", safe(&track_id))
            })?;
        }
        PlaylistCommand::Rename { id, name, json } => {
            let request = RenameRequest { name: name.clone() };
            let reply = client.rename_playlist(&id, &request)?;
            print_ok(json, &reply, || {
                format!("renamed playlist {} to {}", safe(&id), safe(&name))
            })?;
        }
        PlaylistCommand::Delete { id, json } => {
            let reply = client.delete_playlist(&id)?;
            print_ok(json, &reply, || {
                format!("deleted playlist {} (kept in the store's trash)", safe(&id))
            })?;
        }
        PlaylistCommand::Share {
            id,
            rotate,
            isolated,
            json,
        } => {
            let reply = client.share_playlist(&id, &ShareRequest { rotate, isolated })?;
            print_ok(json, &reply, || safe(&reply.link).into_owned())?;
        }
        PlaylistCommand::Revoke { id, peer_id, json } => {
            let request = RevokeRequest {
                peer_id: peer_id.clone(),
            };
            let reply = client.revoke_member(&id, &request)?;
            print_ok(json, &reply, || {
                format!("revoked {} from playlist {}", safe(&peer_id), safe(&id))
            })?;
        }
        PlaylistCommand::Export { id, format, out } => {
            write_export(&client.export_playlist(&id, Some(format.name()))?, out)?;
        }
        PlaylistCommand::Import { file, as_new, json } => {
            let text = read_import(&file)?;
            // The client sizes the request before sending: over the limit the controller
            // would hang up mid-upload, which reads as "broken pipe".
            let request = ImportRequest {
                markdown: text,
                as_new,
                // For a file that does not name its playlist.
                name: file
                    .file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned()),
            };
            let reply = match client.import_playlist(&request) {
                Ok(reply) => reply,
                Err(ClientError::TooLarge { bytes, limit, .. }) => anyhow::bail!(
                    "{} makes a request of {bytes} bytes (its text escaped as JSON); the controller accepts at most {limit} bytes; split the playlist into smaller files",
                    file.display(),
                ),
                Err(err) => return Err(err.into()),
            };
            print_ok(json, &reply, || {
                format!("imported playlist {}", safe(&reply.id))
            })?;
        }
    }
    Ok(())
}

/// The text of a file to import, read no further than [`MAX_IMPORT_BYTES`] (the controller's
/// limit): a huge file, or one that never ends (`/dev/zero`, a pipe), is refused, not read
/// into memory.
fn read_import(file: &std::path::Path) -> anyhow::Result<String> {
    let too_large = |size: String| {
        anyhow::anyhow!(
            "{} is {size}; the largest playlist import is {MAX_IMPORT_BYTES} bytes ({} MiB). Import a file written by `whatnext playlist export`, or split the playlist",
            file.display(),
            MAX_IMPORT_BYTES / (1024 * 1024)
        )
    };
    let opened =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    // A regular file says its size up front; devices and pipes are caught by the bounded read.
    if let Ok(meta) = opened.metadata()
        && meta.is_file()
        && meta.len() > MAX_IMPORT_BYTES as u64
    {
        return Err(too_large(format!("{} bytes", meta.len())));
    }
    if let Ok(meta) = opened.metadata()
        && meta.is_dir()
    {
        anyhow::bail!(
            "{} is a directory; give the Markdown file of one playlist",
            file.display()
        );
    }
    let mut bytes = Vec::new();
    opened
        .take(MAX_IMPORT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", file.display()))?;
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(too_large(format!("longer than {MAX_IMPORT_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "{} is not UTF-8 text; export playlists with `whatnext playlist export`",
            file.display()
        )
    })
}
