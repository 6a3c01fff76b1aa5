//! `whatnext session …`: the listening session of a shared playlist, through the running
//! controller's API. Every action answers the session after it; a refusal by the session's
//! rules (403) is an error whose text is the controller's reason, so the command exits
//! non-zero with it on stderr.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt::Write as _,
    time::{SystemTime, UNIX_EPOCH},
};

use clap::{Subcommand, ValueEnum};
use whatnext_client::Client;
use whatnext_protocol::{
    api::SaveHistoryRequest,
    guest::{GuestsReply, GuestsRequest},
    listening::{Comment, MemberRole, SessionAction, SessionMode, SessionView},
};

use crate::{
    json_out::{print_json, print_json_pretty},
    playlist::duration,
    text::safe,
};

#[derive(Subcommand)]
pub enum SessionCommand {
    /// Show the session: mode, what plays now, up next, whose turn it is, who holds
    /// playback, roles, skip votes and what played recently.
    Now {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the session as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a track, or the first of up next (whoever holds playback).
    Play {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The track to play (see `session now`); default: the first of up next.
        track_id: Option<String>,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause what plays (whoever holds playback).
    Pause {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume where playback was paused (whoever holds playback).
    Resume {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Jump to a position in what plays (whoever holds playback).
    Seek {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The position: milliseconds (90000) or minutes:seconds (1:30).
        #[arg(value_parser = parse_position, value_name = "MS")]
        position: u64,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move on to the next of up next (whoever holds playback).
    Next {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take playback: from now on you play, pause and move on (owner or co-host).
    Take {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set who decides what plays next: free (anyone adds), turns (members take turns),
    /// vote (up next ordered by votes). Owner or co-host.
    Mode {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// free, turns or vote.
        #[arg(value_parser = parse_mode)]
        mode: SessionMode,
        /// In turns mode: how many tracks each member adds per turn (1 to 50).
        #[arg(long, value_name = "N")]
        per_turn: Option<u64>,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a member a co-host (may take playback, change the mode, remove any track) or
    /// a member again. Owner only.
    Role {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The member's peer id (see `session now`).
        peer: String,
        /// co-host or member.
        #[arg(value_enum)]
        role: RoleArg,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// End your turn early (turns mode).
    Pass {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Vote a track of up next up or down, or clear your vote (vote mode orders by score).
    Vote {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The track's id (see `session now`).
        track_id: String,
        /// up, down or clear.
        #[arg(value_enum)]
        vote: VoteArg,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Vote to skip what plays now; it is skipped once more than half of the members
    /// online voted.
    Skip {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// React to what plays with an emoji: everyone online sees it for 30 seconds (at most 5
    /// per 10 seconds; not kept in the playlist).
    React {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// One emoji, e.g. 🎉.
        emoji: String,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Comment on the session, on a track, or reply to a comment.
    Comment {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// What you say (at most 2,000 characters).
        text: String,
        /// The track it is about (see `session now`).
        #[arg(long, value_name = "TRACK_ID")]
        track: Option<String>,
        /// The comment it answers (see `session comments`).
        #[arg(long, value_name = "COMMENT_ID")]
        reply: Option<String>,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the comments, replies under what they answer.
    Comments {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// Print the comments as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a comment (its author or the owner); its replies stay.
    Uncomment {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The comment's id (see `session comments`).
        comment_id: String,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set the playlist that plays when up next runs dry, or clear it (owner or co-host).
    Fallback {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The playlist to fall back on.
        #[arg(
            value_name = "OTHER_ID",
            required_unless_present = "clear",
            conflicts_with = "clear"
        )]
        other_id: Option<String>,
        /// Clear the fallback playlist.
        #[arg(long)]
        clear: bool,
        /// Print the session after it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Guests from a phone: `on` opens a guest page for the session (a URL with the PIN
    /// and a QR code to scan), `off` closes it and ends every guest's access, `remove`
    /// takes one guest out; with no action, shows the page and who is in.
    Guests {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// What to do (default: show).
        action: Option<GuestsAction>,
        /// For `remove`: the guest, by name or peer id (see `session guests ID`).
        guest: Option<String>,
        /// With `on`: answer on this machine's LAN addresses too (default: 127.0.0.1 only).
        #[arg(long)]
        lan: bool,
        /// With `on`: also through the relay in config.toml `relays` (one running `whatnext
        /// relay --guest-http PORT`), for guests off the LAN; the URL is then the relay's.
        #[arg(long)]
        relay: bool,
        /// With `on`: tracks each guest may add per hour (default 10).
        #[arg(long, value_name = "N")]
        adds_per_hour: Option<u32>,
        /// Print the answer as JSON: `{"url", "pin", "guests", …}`.
        #[arg(long)]
        json: bool,
    },
    /// Save what played in the session, in play order, as a new playlist.
    Save {
        /// The playlist: its id, the start of its id, or its name (see `playlist list`).
        id: String,
        /// The new playlist's name.
        name: String,
        /// Print the new playlist's id as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl SessionCommand {
    /// The playlist the command is about, for [`crate::resolve`]. (A fallback's other
    /// playlist is not resolved: it is the owner's, and need not be here.)
    pub fn playlists_mut(&mut self) -> Vec<&mut String> {
        use SessionCommand as C;
        match self {
            C::Fallback { id, .. }
            | C::Now { id, .. }
            | C::Play { id, .. }
            | C::Pause { id, .. }
            | C::Resume { id, .. }
            | C::Seek { id, .. }
            | C::Next { id, .. }
            | C::Take { id, .. }
            | C::Mode { id, .. }
            | C::Role { id, .. }
            | C::Pass { id, .. }
            | C::Vote { id, .. }
            | C::Skip { id, .. }
            | C::React { id, .. }
            | C::Comment { id, .. }
            | C::Comments { id, .. }
            | C::Uncomment { id, .. }
            | C::Guests { id, .. }
            | C::Save { id, .. } => vec![id],
        }
    }
}

/// What `session guests` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuestsAction {
    /// Open the guest page (or show the one open).
    On,
    /// Close it: every guest's access ends at once.
    Off,
    /// Take one guest out.
    Remove,
}

/// A role the owner gives.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// May take playback, change the mode and remove any track.
    CoHost,
    /// An ordinary member.
    Member,
}

/// A vote on a track.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VoteArg {
    /// +1.
    Up,
    /// −1.
    Down,
    /// Take your vote back.
    Clear,
}

fn parse_mode(text: &str) -> Result<SessionMode, String> {
    SessionMode::parse(text).ok_or_else(|| {
        format!(
            "no mode {text:?}; the modes are free (anyone adds), turns (members take turns) and vote (up next ordered by votes)"
        )
    })
}

/// Milliseconds, or `m:ss` / `h:mm:ss`.
pub(crate) fn parse_position(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a position; give milliseconds (90000) or m:ss (1:30)");
    if !text.contains(':') {
        return text.parse().map_err(|_| bad());
    }
    let mut secs: u64 = 0;
    for (i, part) in text.split(':').enumerate() {
        let n: u64 = part.parse().map_err(|_| bad())?;
        if i > 0 && n >= 60 {
            return Err(bad());
        }
        secs = secs
            .checked_mul(60)
            .and_then(|s| s.checked_add(n))
            .ok_or_else(bad)?;
    }
    secs.checked_mul(1000).ok_or_else(bad)
}

pub fn run(client: &Client, command: SessionCommand) -> anyhow::Result<()> {
    use SessionCommand as C;
    let act = |id: &str, action: SessionAction| client.session_act(id, &action);
    match command {
        C::Now { id, json } => {
            let view = client.session(&id)?;
            if json {
                print_json_pretty(&view)?;
            } else {
                let names = Names::of(client, &id, &view);
                print!("{}", render(&view, &names, now_ms()));
            }
        }
        C::Play { id, track_id, json } => {
            let view = act(&id, SessionAction::Play { track_id })?;
            answer(json, &view, || playing_line(&view))?;
        }
        C::Pause { id, json } => {
            let view = act(&id, SessionAction::Pause)?;
            answer(json, &view, || playing_line(&view))?;
        }
        C::Resume { id, json } => {
            let view = act(&id, SessionAction::Resume)?;
            answer(json, &view, || playing_line(&view))?;
        }
        C::Seek { id, position, json } => {
            let view = act(
                &id,
                SessionAction::Seek {
                    position_ms: position,
                },
            )?;
            answer(json, &view, || playing_line(&view))?;
        }
        C::Next { id, json } => {
            let view = act(&id, SessionAction::Next)?;
            answer(json, &view, || playing_line(&view))?;
        }
        C::Take { id, json } => {
            let view = act(&id, SessionAction::Take)?;
            answer(json, &view, || {
                "you hold playback now: `session play`, `pause` and `next` are yours".into()
            })?;
        }
        C::Mode {
            id,
            mode,
            per_turn,
            json,
        } => {
            let view = act(&id, SessionAction::Mode { mode, per_turn })?;
            answer(json, &view, || format!("mode: {}", mode_text(&view)))?;
        }
        C::Role {
            id,
            peer,
            role,
            json,
        } => {
            let role = match role {
                RoleArg::CoHost => MemberRole::CoHost,
                RoleArg::Member => MemberRole::Member,
            };
            let view = act(
                &id,
                SessionAction::Role {
                    peer_id: peer.clone(),
                    role,
                },
            )?;
            answer(json, &view, || {
                let names = Names::of(client, &id, &view);
                format!("{} is now {}", names.name(&peer), role_text(role))
            })?;
        }
        C::Pass { id, json } => {
            let view = act(&id, SessionAction::Pass)?;
            answer(json, &view, || match &view.turn {
                Some(turn) => format!(
                    "passed; it is {}'s turn",
                    safe(&name_or_id(&turn.display_name, &turn.peer_id))
                ),
                None => "passed".into(),
            })?;
        }
        C::Vote {
            id,
            track_id,
            vote,
            json,
        } => {
            let value = match vote {
                VoteArg::Up => 1,
                VoteArg::Down => -1,
                VoteArg::Clear => 0,
            };
            let view = act(
                &id,
                SessionAction::Vote {
                    track_id: track_id.clone(),
                    vote: value,
                },
            )?;
            answer(json, &view, || {
                let what = match vote {
                    VoteArg::Up => "voted up",
                    VoteArg::Down => "voted down",
                    VoteArg::Clear => "cleared your vote on",
                };
                match view.up_next.iter().find(|u| u.track_id == track_id) {
                    Some(track) => {
                        format!("{what} {} (score {:+})", safe(&track.title), track.score)
                    }
                    None => format!("{what} {}", safe(&track_id)),
                }
            })?;
        }
        C::Skip { id, json } => {
            let view = act(&id, SessionAction::Skip)?;
            answer(json, &view, || {
                format!(
                    "voted to skip ({}/{} votes; the one holding playback moves on once enough voted)",
                    view.skip.votes, view.skip.needed
                )
            })?;
        }
        C::React { id, emoji, json } => {
            let view = act(
                &id,
                SessionAction::React {
                    emoji: emoji.clone(),
                },
            )?;
            answer(json, &view, || {
                format!(
                    "reacted {} ({} reaction{} in the last 30 s)",
                    safe(&emoji),
                    view.reactions.len(),
                    if view.reactions.len() == 1 { "" } else { "s" }
                )
            })?;
        }
        C::Comment {
            id,
            text,
            track,
            reply,
            json,
        } => {
            let view = act(
                &id,
                SessionAction::Comment {
                    text,
                    track_id: track,
                    reply_to: reply,
                },
            )?;
            answer(json, &view, || {
                // Mine, newest: the one just written (ids are random, so found by author).
                match view.comments.iter().rev().find(|c| c.peer_id == view.me) {
                    Some(comment) => format!("commented (id {})", safe(&comment.id)),
                    None => "commented".into(),
                }
            })?;
        }
        C::Comments { id, json } => {
            let view = client.session(&id)?;
            if json {
                print_json_pretty(&view.comments)?;
            } else if view.comments.is_empty() {
                println!(
                    "No comments yet. Write one with `whatnext session comment {} TEXT`.",
                    safe(&id)
                );
            } else {
                let names = Names::of(client, &id, &view);
                print!("{}", render_comments(&view.comments, &names, now_ms()));
            }
        }
        C::Uncomment {
            id,
            comment_id,
            json,
        } => {
            let view = act(
                &id,
                SessionAction::Uncomment {
                    comment_id: comment_id.clone(),
                },
            )?;
            answer(json, &view, || {
                format!("removed comment {} (its replies stay)", safe(&comment_id))
            })?;
        }
        C::Fallback {
            id,
            other_id,
            clear,
            json,
        } => {
            let playlist_id = if clear { None } else { other_id };
            let view = act(&id, SessionAction::Fallback { playlist_id })?;
            answer(json, &view, || match &view.fallback {
                Some(other) => format!("when up next runs dry, playlist {} plays", safe(other)),
                None => "no fallback playlist".into(),
            })?;
        }
        C::Guests {
            id,
            action,
            guest,
            lan,
            relay,
            adds_per_hour,
            json,
        } => {
            let reply = match action {
                None => client.guests(&id)?,
                Some(GuestsAction::On | GuestsAction::Off) => client.switch_guests(
                    &id,
                    &GuestsRequest {
                        on: action == Some(GuestsAction::On),
                        lan,
                        adds_per_hour,
                        relay,
                    },
                )?,
                Some(GuestsAction::Remove) => {
                    let Some(guest) = guest else {
                        anyhow::bail!(
                            "say which guest: `whatnext session guests {id} remove NAME` (`whatnext session guests {id}` lists them)"
                        );
                    };
                    let removed = client.remove_guest(&id, &guest)?;
                    if json {
                        print_json(&removed)?;
                    } else {
                        println!(
                            "took guest {} out; their page no longer works",
                            safe(&guest)
                        );
                    }
                    return Ok(());
                }
            };
            if json {
                print_json(&reply)?;
            } else if action == Some(GuestsAction::Off) {
                println!("closed the guest page: every guest's access has ended");
            } else {
                print!("{}", guests_text(&reply, action == Some(GuestsAction::On)));
            }
        }
        C::Save { id, name, json } => {
            let reply = client.save_session(&id, &SaveHistoryRequest { name: name.clone() })?;
            if json {
                print_json(&reply)?;
            } else {
                println!("created playlist {} ({})", safe(&reply.id), safe(&name));
            }
        }
    }
    Ok(())
}

/// The session after an action: as JSON, or one line saying what happened.
fn answer(json: bool, view: &SessionView, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        print_json(view)?;
    } else {
        println!("{}", text());
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn name_or_id(name: &str, peer: &str) -> String {
    if name.is_empty() {
        short_peer(peer)
    } else {
        name.to_string()
    }
}

/// The end of a peer id, enough to tell members apart.
fn short_peer(peer: &str) -> String {
    let chars: Vec<char> = peer.chars().collect();
    if chars.len() <= 12 {
        peer.to_string()
    } else {
        let tail: String = chars[chars.len() - 8..].iter().collect();
        format!("…{tail}")
    }
}

fn role_text(role: MemberRole) -> &'static str {
    match role {
        MemberRole::Owner => "owner",
        MemberRole::CoHost => "co-host",
        MemberRole::Member => "member",
        MemberRole::Guest => "guest",
    }
}

fn mode_text(view: &SessionView) -> String {
    match view.mode {
        SessionMode::FreeForAll => "free (anyone adds)".into(),
        SessionMode::TurnTaking => format!(
            "turns ({} track{} per turn)",
            view.per_turn,
            if view.per_turn == 1 { "" } else { "s" }
        ),
        SessionMode::Vote => "vote (up next ordered by votes)".into(),
    }
}

/// "playing T — A 1:23 / 3:45", "paused …", or "nothing plays".
fn playing_line(view: &SessionView) -> String {
    match &view.now_playing {
        Some(now) => format!(
            "{} {}",
            if now.paused { "paused:" } else { "playing:" },
            track_and_clock(now)
        ),
        None => "nothing plays now (up next is empty)".into(),
    }
}

fn track_and_clock(now: &whatnext_protocol::listening::NowPlaying) -> String {
    let mut line = safe(&now.title).into_owned();
    if !now.artists.is_empty() {
        line.push_str(&format!(" — {}", safe(&now.artists.join(", "))));
    }
    line.push_str(&format!("  {}", duration(now.position_ms)));
    if let Some(total) = now.duration_ms {
        line.push_str(&format!(" / {}", duration(total)));
    }
    line
}

fn ago(then: u64, now: u64) -> String {
    let secs = now.saturating_sub(then) / 1000;
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// Display names of the members and titles of the tracks, from the playlist (the session's
/// own names where the playlist does not say). Escaped when printed.
struct Names {
    me: String,
    people: HashMap<String, String>,
    tracks: HashMap<String, String>,
    playlist: Option<String>,
}

impl Names {
    /// Reads the playlist for names; without it (an error), peers show as short ids.
    fn of(client: &Client, id: &str, view: &SessionView) -> Names {
        let mut names = Names {
            me: view.me.clone(),
            people: HashMap::new(),
            tracks: HashMap::new(),
            playlist: None,
        };
        for comment in &view.comments {
            if !comment.display_name.is_empty() {
                names
                    .people
                    .insert(comment.peer_id.clone(), comment.display_name.clone());
            }
        }
        if let Some(turn) = &view.turn
            && !turn.display_name.is_empty()
        {
            names
                .people
                .insert(turn.peer_id.clone(), turn.display_name.clone());
        }
        for played in &view.history {
            names
                .tracks
                .insert(played.track_id.clone(), played.title.clone());
        }
        if let Ok(playlist) = client.playlist(id) {
            names.playlist = Some(playlist.playlist.name.clone());
            for member in playlist.members {
                if !member.display_name.is_empty() {
                    names.people.insert(member.peer_id, member.display_name);
                }
            }
            for track in playlist.playlist.tracks {
                names.tracks.insert(track.id, track.title);
            }
        }
        names
    }

    /// The member's name (escaped), "(you)" after mine.
    fn name(&self, peer: &str) -> String {
        let name = match self.people.get(peer) {
            Some(name) if *name != peer => safe(name).into_owned(),
            _ => short_peer(&safe(peer)),
        };
        if peer == self.me {
            format!("{name} (you)")
        } else {
            name
        }
    }

    fn track(&self, id: &str) -> String {
        match self.tracks.get(id) {
            Some(title) => format!("\"{}\"", safe(title)),
            None => format!("track {}", safe(id)),
        }
    }
}

/// `session now` as text.
fn render(view: &SessionView, names: &Names, now: u64) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!(
        "Session of {}{}",
        names
            .playlist
            .as_deref()
            .map(|n| format!("{} (", safe(n)))
            .unwrap_or_default(),
        if names.playlist.is_some() {
            format!("{})", safe(&view.playlist_id))
        } else {
            safe(&view.playlist_id).into_owned()
        }
    ));
    line(format!("Mode: {}", mode_text(view)));
    match &view.now_playing {
        Some(np) => {
            line(format!(
                "Now playing: {}{}",
                track_and_clock(np),
                if np.paused { "  [paused]" } else { "" }
            ));
            line(format!(
                "  started by {}; skip votes {}/{}  (track id {})",
                names.name(&np.started_by),
                view.skip.votes,
                view.skip.needed,
                safe(&np.track_id)
            ));
        }
        None => line("Now playing: nothing".into()),
    }
    if let Some(holder) = &view.playback_owner {
        line(format!("Playback: held by {}", names.name(holder)));
    }
    if let Some(turn) = &view.turn {
        let who = if turn.peer_id == view.me {
            "yours".to_string()
        } else if turn.display_name.is_empty() {
            format!("{}'s", names.name(&turn.peer_id))
        } else {
            format!("{}'s", safe(&turn.display_name))
        };
        line(format!(
            "Turn: {who}, {} track{} left (turn {})",
            turn.tracks_left,
            if turn.tracks_left == 1 { "" } else { "s" },
            turn.number + 1
        ));
        let order: Vec<String> = view.turn_order.iter().map(|p| names.name(p)).collect();
        line(format!("  order: {}", order.join(" → ")));
    }
    if view.up_next.is_empty() {
        line("Up next: nothing".into());
    } else {
        line("Up next:".into());
        for (i, up) in view.up_next.iter().enumerate() {
            let mut text = format!("{:>3}. {}", i + 1, safe(&up.title));
            if !up.artists.is_empty() {
                text.push_str(&format!(" — {}", safe(&up.artists.join(", "))));
            }
            if view.mode == SessionMode::Vote {
                let mine = match up.my_vote {
                    1 => ", you: up",
                    -1 => ", you: down",
                    _ => "",
                };
                text.push_str(&format!("  [score {:+}{mine}]", up.score));
            }
            text.push_str(&format!(
                "  (added by {}, id {})",
                names.name(&up.added_by),
                safe(&up.track_id)
            ));
            line(text);
        }
    }
    line("Members:".into());
    let mut roles: Vec<(&String, &MemberRole)> = view.roles.iter().collect();
    roles.sort_by_key(|(peer, role)| (**role, names.name(peer)));
    for (peer, role) in roles {
        line(format!(
            "  {:<8} {}  {}",
            role_text(*role),
            names.name(peer),
            safe(peer)
        ));
    }
    if let Some(fallback) = &view.fallback {
        line(format!(
            "Fallback: playlist {} plays when up next runs dry",
            safe(fallback)
        ));
    }
    if !view.history.is_empty() {
        line("Recently played (newest last):".into());
        let start = view.history.len().saturating_sub(5);
        for played in &view.history[start..] {
            line(format!(
                "  {}  (played by {}, {})",
                safe(&played.title),
                names.name(&played.by),
                ago(played.played_at, now)
            ));
        }
    }
    if !view.reactions.is_empty() {
        let reactions: Vec<String> = view
            .reactions
            .iter()
            .map(|r| format!("{} {}", safe(&r.emoji), names.name(&r.peer_id)))
            .collect();
        line(format!("Reactions: {}", reactions.join(", ")));
    }
    if !view.comments.is_empty() {
        line(format!(
            "Comments: {} (`session comments {}`)",
            view.comments.iter().filter(|c| !c.deleted).count(),
            safe(&view.playlist_id)
        ));
    }
    out
}

/// Most levels replies are indented; deeper ones stay at this depth.
const MAX_INDENT: usize = 8;

/// The comments as threads: each reply under what it answers, oldest first; a reply whose
/// parent is unknown shows at the top level.
fn render_comments(comments: &[Comment], names: &Names, now: u64) -> String {
    let ids: HashSet<&str> = comments.iter().map(|c| c.id.as_str()).collect();
    let mut replies: BTreeMap<&str, Vec<&Comment>> = BTreeMap::new();
    let mut roots = Vec::new();
    for comment in comments {
        match comment.reply_to.as_deref() {
            Some(parent) if ids.contains(parent) && parent != comment.id => {
                replies.entry(parent).or_default().push(comment);
            }
            _ => roots.push(comment),
        }
    }
    let mut out = String::new();
    let mut shown: HashSet<&str> = HashSet::new();
    // The threads from their first comments, then whatever only a cycle of replies reaches
    // (never written by this app, but a hostile member could); depth first, without
    // recursion (a chain of replies may be long).
    for start in roots.into_iter().chain(comments) {
        let mut stack = vec![(start, 0)];
        while let Some((comment, depth)) = stack.pop() {
            if !shown.insert(comment.id.as_str()) {
                continue;
            }
            out.push_str(&comment_line(comment, depth, names, now));
            out.push('\n');
            if let Some(children) = replies.get(comment.id.as_str()) {
                stack.extend(children.iter().rev().map(|child| (*child, depth + 1)));
            }
        }
    }
    out
}

fn comment_line(comment: &Comment, depth: usize, names: &Names, now: u64) -> String {
    let indent = "    ".repeat(depth.min(MAX_INDENT));
    let marker = if depth > 0 { "↳ " } else { "" };
    if comment.deleted {
        return format!("{indent}{marker}(removed)  [id {}]", safe(&comment.id));
    }
    let who = match comment.display_name.as_str() {
        "" => names.name(&comment.peer_id),
        name if comment.peer_id == names.me => format!("{} (you)", safe(name)),
        name => safe(name).into_owned(),
    };
    let about = comment
        .track_id
        .as_deref()
        .map(|t| format!(" on {}", names.track(t)))
        .unwrap_or_default();
    format!(
        "{indent}{marker}{who}{about}, {}: {}  [id {}]",
        ago(comment.at, now),
        safe(&comment.text),
        safe(&comment.id)
    )
}

/// The guest page for people: its URL, PIN and QR code (after `on`), and who is in.
fn guests_text(reply: &GuestsReply, with_qr: bool) -> String {
    let mut out = String::new();
    let Some(url) = reply.url.as_deref().filter(|_| reply.on) else {
        return "no guest page is open (`session guests ID on` opens one)\n".to_string();
    };
    let _ = writeln!(out, "Guests join at {}", safe(url));
    if let Some(pin) = &reply.pin {
        let _ = writeln!(
            out,
            "PIN {}  (in the link already; say it to whoever types the address)",
            safe(pin)
        );
    }
    for also in &reply.also {
        let _ = writeln!(out, "also at {}", safe(also));
    }
    if with_qr && let Ok(code) = qrcode::QrCode::new(url.as_bytes()) {
        let _ = writeln!(
            out,
            "{}",
            // Light modules drawn: most terminals are dark, and a scanner wants dark
            // modules on light.
            code.render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .quiet_zone(true)
                .build()
        );
    }
    let _ = writeln!(
        out,
        "each guest may add {} tracks an hour",
        reply.adds_per_hour
    );
    if reply.guests.is_empty() {
        let _ = writeln!(out, "no guests yet");
    }
    for guest in &reply.guests {
        let _ = writeln!(
            out,
            "  {} ({} added this hour, last seen {} s ago)",
            safe(&guest.name),
            guest.added_last_hour,
            guest.idle_secs
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use whatnext_protocol::listening::{NowPlaying, Played, SkipVotes, Turn, UpNext};

    use super::*;

    fn names() -> Names {
        Names {
            me: "peer-a".into(),
            people: [
                ("peer-a".to_string(), "Ann".to_string()),
                ("peer-b".to_string(), "Bea".to_string()),
            ]
            .into(),
            tracks: [("t1".to_string(), "So What".to_string())].into(),
            playlist: Some("Party".into()),
        }
    }

    fn comment(id: &str, reply_to: Option<&str>, text: &str, deleted: bool) -> Comment {
        Comment {
            id: id.into(),
            peer_id: "peer-b".into(),
            display_name: "Bea".into(),
            text: text.into(),
            track_id: None,
            reply_to: reply_to.map(str::to_string),
            at: 0,
            deleted,
        }
    }

    #[test]
    fn positions_read_as_milliseconds_or_minutes_and_seconds() {
        assert_eq!(parse_position("90000"), Ok(90_000));
        assert_eq!(parse_position("1:30"), Ok(90_000));
        assert_eq!(parse_position("1:00:05"), Ok(3_605_000));
        assert!(parse_position("1:75").is_err());
        assert!(parse_position("soon").is_err());
        assert!(parse_position("99999999999999999999:00").is_err());
    }

    #[test]
    fn a_bad_mode_names_the_three() {
        let err = parse_mode("loud").expect_err("no such mode");
        for mode in ["free", "turns", "vote"] {
            assert!(err.contains(mode), "{err}");
        }
        assert_eq!(parse_mode("turns"), Ok(SessionMode::TurnTaking));
    }

    #[test]
    fn comments_are_threaded_and_removed_ones_keep_their_replies() {
        let comments = vec![
            comment("c1", None, "", true),
            comment("c2", Some("c1"), "agreed", false),
            comment("c3", None, "next one\u{1b}[2J", false),
            comment("c4", Some("c2"), "me too", false),
            comment("c5", Some("gone"), "orphan", false),
        ];
        let text = render_comments(&comments, &names(), 0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("(removed)"), "{text}");
        assert!(
            lines[1].starts_with("    ↳ Bea, just now: agreed"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("        ↳ Bea, just now: me too"),
            "{text}"
        );
        assert!(lines[3].contains("next one\\u{1b}[2J"), "escaped: {text}");
        assert!(lines[4].starts_with("Bea, just now: orphan"), "{text}");
        // A cycle (only a hostile member writes one) is shown once, not forever.
        let cycle = vec![
            comment("x", Some("y"), "one", false),
            comment("y", Some("x"), "two", false),
        ];
        assert_eq!(render_comments(&cycle, &names(), 0).lines().count(), 2);
    }

    #[test]
    fn now_shows_names_the_clock_the_turn_and_votes() {
        let view = SessionView {
            clock_offset_ms: None,
            playlist_id: "p1".into(),
            mode: SessionMode::TurnTaking,
            per_turn: 1,
            now_playing: Some(NowPlaying {
                track_id: "t1".into(),
                title: "So What".into(),
                artists: vec!["Miles Davis".into()],
                duration_ms: Some(565_000),
                position_ms: 83_000,
                paused: true,
                started_by: "peer-a".into(),
                content: None,
                uri: None,
                started_at_ms: None,
                start_position_ms: None,
            }),
            up_next: vec![UpNext {
                track_id: "t2".into(),
                title: "Blue in Green".into(),
                artists: vec![],
                added_by: "peer-b".into(),
                score: 0,
                my_vote: 0,
            }],
            turn: Some(Turn {
                peer_id: "peer-b".into(),
                display_name: "Bea".into(),
                tracks_left: 1,
                number: 2,
            }),
            turn_order: vec!["peer-a".into(), "peer-b".into()],
            playback_owner: Some("peer-a".into()),
            roles: [
                ("peer-a".to_string(), MemberRole::Owner),
                ("peer-b".to_string(), MemberRole::CoHost),
            ]
            .into(),
            skip: SkipVotes {
                votes: 1,
                needed: 2,
            },
            history: vec![Played {
                track_id: "t0".into(),
                title: "Freddie".into(),
                played_at: 0,
                by: "peer-a".into(),
            }],
            reactions: vec![],
            fallback: None,
            me: "peer-a".into(),
            my_role: MemberRole::Owner,
            comments: vec![],
        };
        let text = render(&view, &names(), 120_000);
        for want in [
            "Session of Party (p1)",
            "Mode: turns (1 track per turn)",
            "Now playing: So What — Miles Davis  1:23 / 9:25  [paused]",
            "started by Ann (you); skip votes 1/2",
            "Playback: held by Ann (you)",
            "Turn: Bea's, 1 track left (turn 3)",
            "Playback: held by Ann (you)",
            "order: Ann (you) → Bea",
            "  1. Blue in Green  (added by Bea, id t2)",
            "owner    Ann (you)  peer-a",
            "co-host  Bea  peer-b",
            "Freddie  (played by Ann (you), 2 min ago)",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert!(!text.contains("score"), "scores only in vote mode:\n{text}");
    }
}
