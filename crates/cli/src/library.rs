//! `whatnext library …`: the music library of the running controller (the audio files in
//! the music folders, `config set music-dirs`).

use std::{io::IsTerminal as _, time::Duration};

use clap::Subcommand;
use whatnext_client::Client;
use whatnext_protocol::media::{LibraryEntry, LibraryReply};

use crate::{json_out::print_json, text::safe};

#[derive(Subcommand)]
pub enum LibraryCommand {
    /// Scan the music folders for new, changed and removed audio files.
    Scan {
        /// Print the report as JSON: {"files", "added", "updated", "removed", "failed"}.
        #[arg(long)]
        json: bool,
    },
    /// List the audio files of the library.
    List {
        /// Print the entries as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find audio files whose title, artist, album or name contain every word of QUERY.
    Search {
        /// Words to look for, e.g. "nina simone feeling".
        query: String,
        /// Print the entries as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(client: &Client, command: LibraryCommand) -> anyhow::Result<()> {
    match command {
        LibraryCommand::Scan { json } => {
            // On a terminal, a progress bar from the state's `library.scanning` (long polls,
            // not a timer), drawn beside the request that runs the scan.
            let bar = (!json && std::io::stderr().is_terminal()).then(|| {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "scanning {bar:30} {pos}/{len} files ({eta} left)",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let watcher = client.clone();
                let shown = bar.clone();
                std::thread::spawn(move || {
                    let mut version = 0;
                    // Bounded: a scan of a million files reports far fewer times than this.
                    for _ in 0..1_000_000 {
                        let Ok(state) = watcher.state_after(version, Duration::from_secs(10))
                        else {
                            return;
                        };
                        version = state.version;
                        if let Some(progress) = state.library.scanning {
                            shown.set_length(progress.total as u64);
                            shown.set_position(progress.done as u64);
                        }
                        if shown.is_finished() {
                            return;
                        }
                    }
                });
                bar
            });
            let report = client.library_scan();
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            let report = report?;
            if json {
                return print_json(&report);
            }
            println!(
                "{} audio files in {}: {} added, {} updated, {} removed",
                report.files,
                if report.dirs.is_empty() {
                    "no music folder (`whatnext config set music-dirs DIR` sets one)".to_string()
                } else {
                    report
                        .dirs
                        .iter()
                        .map(|d| safe(d))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                report.added,
                report.updated,
                report.removed
            );
            for failure in &report.failed {
                println!(
                    "  could not read {}: {}",
                    safe(&failure.path),
                    safe(&failure.reason)
                );
            }
        }
        LibraryCommand::List { json } => show(client.library(None)?, json)?,
        LibraryCommand::Search { query, json } => show(client.library(Some(&query))?, json)?,
    }
    Ok(())
}

fn show(reply: LibraryReply, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&reply);
    }
    if reply.entries.is_empty() {
        println!(
            "nothing found ({} files in the library; `whatnext library scan` reads the music folders)",
            reply.total
        );
    }
    for entry in &reply.entries {
        println!("{}", line(entry));
    }
    if reply.found > reply.entries.len() {
        println!(
            "… and {} more (another word finds fewer)",
            reply.found - reply.entries.len()
        );
    }
    Ok(())
}

/// `Title — Artist [Album] 3:25  (path)`.
pub fn line(entry: &LibraryEntry) -> String {
    let mut line = safe(&entry.title).to_string();
    if !entry.artists.is_empty() {
        line.push_str(&format!(" — {}", safe(&entry.artists.join(", "))));
    }
    if let Some(album) = &entry.album {
        line.push_str(&format!(" [{}]", safe(album)));
    }
    if let Some(ms) = entry.duration_ms {
        line.push_str(&format!(" {}:{:02}", ms / 60_000, ms / 1000 % 60));
    }
    line.push_str(&format!("  ({})", safe(&entry.path)));
    line
}
