//! Naming a playlist on the command line: its id, an unambiguous start of its id, or its
//! exact name — resolved to the id before the command runs.

use whatnext_client::Client;
use whatnext_protocol::playlist::PlaylistSummary;

use crate::text::safe;

/// The id of the playlist `given` names, among `playlists`.
pub fn playlist_id(playlists: &[PlaylistSummary], given: &str) -> anyhow::Result<String> {
    if playlists.iter().any(|p| p.id == given) {
        return Ok(given.to_string());
    }
    let named: Vec<&PlaylistSummary> = playlists.iter().filter(|p| p.name == given).collect();
    let started: Vec<&PlaylistSummary> = playlists
        .iter()
        .filter(|p| !given.is_empty() && p.id.starts_with(given))
        .collect();
    let list = |found: &[&PlaylistSummary]| {
        found
            .iter()
            .map(|p| format!("{} ({})", p.id, safe(&p.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (named.as_slice(), started.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one.id.clone()),
        ([], []) => anyhow::bail!(
            "no playlist is called {:?} or has an id starting with it; `whatnext playlist list` shows yours",
            safe(given)
        ),
        ([], several) => anyhow::bail!(
            "{:?} starts the ids of {} playlists: {}; give more of the id",
            safe(given),
            several.len(),
            list(several)
        ),
        (several, _) => anyhow::bail!(
            "{} playlists are called {:?}: {}; name one by its id",
            several.len(),
            safe(given),
            list(several)
        ),
    }
}

/// Resolves each of `ids` in place. When the playlists cannot be listed (no controller
/// running), they are left as given: the command then says what is wrong.
pub fn playlist_ids(client: &Client, ids: Vec<&mut String>) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let Ok(playlists) = client.playlists() else {
        return Ok(());
    };
    for id in ids {
        *id = playlist_id(&playlists, id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, name: &str) -> PlaylistSummary {
        PlaylistSummary {
            id: id.into(),
            name: name.into(),
            track_count: 0,
            updated_at: 0,
            damaged: false,
        }
    }

    #[test]
    fn by_id_prefix_or_exact_name() {
        let all = [
            summary("a1b2c3", "Road Trip"),
            summary("a1ffff", "Party"),
            summary("b7", "Party"),
            summary("c9", "a1"),
        ];
        assert_eq!(playlist_id(&all, "a1b2c3").expect("id"), "a1b2c3");
        assert_eq!(playlist_id(&all, "a1b").expect("prefix"), "a1b2c3");
        assert_eq!(playlist_id(&all, "Road Trip").expect("name"), "a1b2c3");
        // A name wins over a prefix: "a1" is c9's name and starts two ids.
        assert_eq!(playlist_id(&all, "a1").expect("name first"), "c9");
        let err = playlist_id(&all, "Party")
            .expect_err("two named so")
            .to_string();
        assert!(
            err.contains("2 playlists are called") && err.contains("b7"),
            "{err}"
        );
        let err = playlist_id(&all[..2], "a1")
            .expect_err("two ids")
            .to_string();
        assert!(err.contains("give more of the id"), "{err}");
        let err = playlist_id(&all, "zz").expect_err("none").to_string();
        assert!(err.contains("playlist list"), "{err}");
    }
}
