//! Naming a playlist on the command line: its id, an unambiguous start of its id, or its
//! name (exactly; else whatever the case, else an unambiguous start of it) — resolved to the
//! id before the command runs.

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
    match (named.as_slice(), started.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one.id.clone()),
        ([], []) => loosely_named(playlists, given).map(|p| p.id.clone()),
        ([], several) => anyhow::bail!(
            "{:?} starts the ids of {} playlists: {}; give more of the id",
            safe(given),
            several.len(),
            listed(several)
        ),
        (several, _) => anyhow::bail!(
            "{} playlists are called {:?}: {}; name one by its id",
            several.len(),
            safe(given),
            listed(several)
        ),
    }
}

/// "id (name), id (name)": the playlists a name could be, for the user to pick from.
fn listed(found: &[&PlaylistSummary]) -> String {
    found
        .iter()
        .map(|p| format!("{} ({})", p.id, safe(&p.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The playlist `given` names loosely, when nothing is named so exactly: its name whatever
/// the case, else the start of its name ("sunday" for "Sunday morning"), if that is one.
fn loosely_named<'a>(
    playlists: &'a [PlaylistSummary],
    given: &str,
) -> anyhow::Result<&'a PlaylistSummary> {
    let given_lower = given.trim().to_lowercase();
    let lower: Vec<(String, &PlaylistSummary)> = playlists
        .iter()
        .map(|p| (p.name.to_lowercase(), p))
        .collect();
    let equal: Vec<&PlaylistSummary> = lower
        .iter()
        .filter(|(name, _)| *name == given_lower)
        .map(|(_, p)| *p)
        .collect();
    let begun: Vec<&PlaylistSummary> = lower
        .iter()
        .filter(|(name, _)| !given_lower.is_empty() && name.starts_with(&given_lower))
        .map(|(_, p)| *p)
        .collect();
    match (equal.as_slice(), begun.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one),
        ([], []) => anyhow::bail!(
            "no playlist is called {:?} or has an id starting with it; `whatnext playlist list` shows yours",
            safe(given)
        ),
        ([], several) | (several, _) => anyhow::bail!(
            "{:?} could be any of {} playlists: {}; give more of the name, or the id",
            safe(given),
            several.len(),
            listed(several)
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

    #[test]
    fn a_name_is_also_found_whatever_its_case_and_by_its_start() {
        let all = [
            summary("a1b2c3", "Sunday morning"),
            summary("d4e5f6", "Sunday night"),
            summary("070809", "Road Trip"),
            summary("0a0b0c", "road trip 2"),
        ];
        assert_eq!(playlist_id(&all, "sunday MORNING").expect("case"), "a1b2c3");
        assert_eq!(playlist_id(&all, "Sunday m").expect("start"), "a1b2c3");
        // A name in another case wins over the start of a longer one.
        assert_eq!(playlist_id(&all, "road trip").expect("case"), "070809");
        let err = playlist_id(&all, "sunday")
            .expect_err("two start so")
            .to_string();
        assert!(
            err.contains("any of 2 playlists") && err.contains("d4e5f6"),
            "{err}"
        );
        // An id's start still comes first: "0a" starts an id, and no name.
        assert_eq!(playlist_id(&all, "0a").expect("id"), "0a0b0c");
        let err = playlist_id(&all, "")
            .expect_err("nothing given")
            .to_string();
        assert!(err.contains("playlist list"), "{err}");
    }
}
