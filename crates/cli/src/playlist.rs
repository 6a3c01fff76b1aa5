//! `whatnext playlist …`: the store, through the running controller's API.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};
use whatnext_protocol::playlist::{Playlist, PlaylistSummary};

use crate::client::Client;

/// Generous: a write waits for fsync, and a 10,000-track import is one request.
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Subcommand)]
pub enum PlaylistCommand {
    /// Create a playlist.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        json: bool,
    },
    /// List playlists (newest change first).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a playlist and its tracks.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a track.
    Add {
        id: String,
        #[arg(long)]
        title: String,
        /// Repeat for several artists.
        #[arg(long = "artist", value_name = "ARTIST")]
        artists: Vec<String>,
        #[arg(long)]
        album: Option<String>,
        #[arg(long, value_name = "N")]
        duration_ms: Option<u64>,
        /// spotify:…, https://… or file:…
        #[arg(long)]
        uri: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Move a track to a position (0 is the top).
    Move {
        id: String,
        track_id: String,
        #[arg(long, value_name = "INDEX")]
        to: usize,
        #[arg(long)]
        json: bool,
    },
    /// Remove a track.
    Remove {
        id: String,
        track_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Rename a playlist.
    Rename {
        id: String,
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a playlist (it is moved to the store's trash, not erased).
    Delete {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Share a playlist: print a link that lets a friend join it.
    Share {
        id: String,
        /// Make a new key: links given out before stop admitting newcomers.
        #[arg(long)]
        rotate: bool,
        #[arg(long)]
        json: bool,
    },
    /// Stop sharing a playlist with one member.
    Revoke {
        id: String,
        peer_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a playlist as Markdown with YAML front matter.
    Export {
        id: String,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Create a playlist from a Markdown file written by `export`.
    Import {
        file: PathBuf,
        /// Give it a new id (e.g. to import a copy of a playlist you already have).
        #[arg(long)]
        as_new: bool,
        #[arg(long)]
        json: bool,
    },
}

fn print_ok(json: bool, value: &Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{}:{:02}", secs / 60, secs % 60)
}

pub fn run(client: &Client, command: PlaylistCommand) -> anyhow::Result<()> {
    let path = |id: &str, rest: &str| format!("/api/playlists/{}{rest}", encode(id));
    match command {
        PlaylistCommand::Create {
            name,
            description,
            json,
        } => {
            let reply: Value = client.post(
                "/api/playlists",
                &json!({"name": name, "description": description}),
                TIMEOUT,
            )?;
            print_ok(json, &reply, || {
                format!(
                    "created playlist {} ({name})",
                    reply["id"].as_str().unwrap_or("?")
                )
            });
        }
        PlaylistCommand::List { json } => {
            let list: Vec<PlaylistSummary> = client.get("/api/playlists", TIMEOUT)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("No playlists yet. Create one with `whatnext playlist create NAME`.");
            } else {
                for p in list {
                    println!("{}  {:>5} tracks  {}", p.id, p.track_count, p.name);
                }
            }
        }
        PlaylistCommand::Show { id, json } => {
            let playlist: Value = client.get(&path(&id, ""), TIMEOUT)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&playlist)?);
            } else {
                let playlist: Playlist = serde_json::from_value(playlist)?;
                println!("{} ({})", playlist.name, playlist.id);
                if !playlist.description.is_empty() {
                    println!("{}", playlist.description);
                }
                println!(
                    "queue: {}, owner: {}",
                    playlist.queue_mode.as_str(),
                    playlist.owner.display_name
                );
                if playlist.tracks.is_empty() {
                    println!(
                        "No tracks yet. Add one with `whatnext playlist add {} --title T --artist A`.",
                        playlist.id
                    );
                }
                for (i, t) in playlist.tracks.iter().enumerate() {
                    let mut line = format!("{i:>3}. {} — {}", t.title, t.artists.join(", "));
                    if let Some(album) = &t.album {
                        line.push_str(&format!(" [{album}]"));
                    }
                    if let Some(ms) = t.duration_ms {
                        line.push_str(&format!(" {}", duration(ms)));
                    }
                    println!(
                        "{line}  (id {}, added by {})",
                        t.id, t.added_by.display_name
                    );
                }
            }
        }
        PlaylistCommand::Add {
            id,
            title,
            artists,
            album,
            duration_ms,
            uri,
            json,
        } => {
            let body = json!({"title": title, "artists": artists, "album": album, "duration_ms": duration_ms, "uri": uri});
            let reply: Value = client.post(&path(&id, "/tracks"), &body, TIMEOUT)?;
            print_ok(json, &reply, || {
                format!("added track {}", reply["track_id"].as_str().unwrap_or("?"))
            });
        }
        PlaylistCommand::Move {
            id,
            track_id,
            to,
            json,
        } => {
            let reply: Value = client.post(
                &path(&id, "/move"),
                &json!({"track_id": track_id, "to": to}),
                TIMEOUT,
            )?;
            print_ok(json, &reply, || {
                format!("moved track {track_id} to position {to}")
            });
        }
        PlaylistCommand::Remove { id, track_id, json } => {
            let reply: Value = client.delete(
                &path(&id, &format!("/tracks/{}", encode(&track_id))),
                TIMEOUT,
            )?;
            print_ok(json, &reply, || format!("removed track {track_id}"));
        }
        PlaylistCommand::Rename { id, name, json } => {
            let reply: Value =
                client.post(&path(&id, "/rename"), &json!({"name": name}), TIMEOUT)?;
            print_ok(json, &reply, || format!("renamed playlist {id} to {name}"));
        }
        PlaylistCommand::Delete { id, json } => {
            let reply: Value = client.delete(&path(&id, ""), TIMEOUT)?;
            print_ok(json, &reply, || {
                format!("deleted playlist {id} (kept in the store's trash)")
            });
        }
        PlaylistCommand::Share { id, rotate, json } => {
            let reply: Value =
                client.post(&path(&id, "/share"), &json!({"rotate": rotate}), TIMEOUT)?;
            print_ok(json, &reply, || {
                reply["link"].as_str().unwrap_or_default().to_string()
            });
        }
        PlaylistCommand::Revoke { id, peer_id, json } => {
            let reply: Value =
                client.post(&path(&id, "/revoke"), &json!({"peer_id": peer_id}), TIMEOUT)?;
            print_ok(json, &reply, || {
                format!("revoked {peer_id} from playlist {id}")
            });
        }
        PlaylistCommand::Export { id, out } => {
            let text = client.get_text(&path(&id, "/export"), TIMEOUT)?;
            match out {
                Some(file) => {
                    std::fs::write(&file, text)
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    eprintln!("wrote {}", file.display());
                }
                None => print!("{text}"),
            }
        }
        PlaylistCommand::Import { file, as_new, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!(
                    "{} is not UTF-8 text; export playlists with `whatnext playlist export`",
                    file.display()
                )
            })?;
            let reply: Value = client.post(
                "/api/playlists/import",
                &json!({"markdown": text, "as_new": as_new}),
                TIMEOUT,
            )?;
            print_ok(json, &reply, || {
                format!("imported playlist {}", reply["id"].as_str().unwrap_or("?"))
            });
        }
    }
    Ok(())
}

/// Ids are hex, but users type anything: keep a path segment a path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
