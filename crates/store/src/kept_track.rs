//! A track as the followed track list keeps it between reads: every field in one
//! allocation.
//!
//! A [`Track`] is eight to ten small allocations; kept for every element of a 10,000-track
//! playlist they held 8 MB, more than its Loro document (~6 MB). Encoded with postcard into
//! one buffer a track takes ~200 bytes. Turning it back into a `Track` costs what cloning one
//! did: a read hands out owned tracks either way.

use serde::{Deserialize, Serialize};
use whatnext_protocol::playlist::{Author, Content, Track};

/// One track's fields, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptTrack(Box<[u8]>);

/// A [`Track`]'s fields, borrowed, in the order they are encoded.
#[derive(Serialize, Deserialize)]
struct Fields<'a> {
    id: &'a str,
    title: &'a str,
    #[serde(borrow)]
    artists: Vec<&'a str>,
    #[serde(borrow)]
    album: Option<&'a str>,
    duration_ms: Option<u64>,
    #[serde(borrow)]
    uri: Option<&'a str>,
    peer_id: &'a str,
    display_name: &'a str,
    added_at: u64,
    /// BLAKE3 id, size, MIME type.
    #[serde(borrow)]
    content: Option<(&'a str, u64, &'a str)>,
}

impl KeptTrack {
    /// `track`, encoded; None if it cannot be (postcard fails only on types these fields do
    /// not have, so never expected: the track is then simply read again next time).
    pub(crate) fn new(track: &Track) -> Option<Self> {
        let fields = Fields {
            id: &track.id,
            title: &track.title,
            artists: track.artists.iter().map(String::as_str).collect(),
            album: track.album.as_deref(),
            duration_ms: track.duration_ms,
            uri: track.uri.as_deref(),
            peer_id: &track.added_by.peer_id,
            display_name: &track.added_by.display_name,
            added_at: track.added_at,
            content: track
                .content
                .as_ref()
                .map(|c| (c.blake3.as_str(), c.size, c.mime.as_str())),
        };
        postcard::to_allocvec(&fields)
            .ok()
            .map(|bytes| KeptTrack(bytes.into_boxed_slice()))
    }

    /// The track, decoded; None only if these bytes were not written by [`Self::new`].
    pub(crate) fn track(&self) -> Option<Track> {
        let fields: Fields = postcard::from_bytes(&self.0).ok()?;
        Some(Track {
            id: fields.id.to_string(),
            title: fields.title.to_string(),
            artists: fields.artists.into_iter().map(str::to_string).collect(),
            album: fields.album.map(str::to_string),
            duration_ms: fields.duration_ms,
            uri: fields.uri.map(str::to_string),
            added_by: Author {
                peer_id: fields.peer_id.to_string(),
                display_name: fields.display_name.to_string(),
            },
            added_at: fields.added_at,
            content: fields.content.map(|(blake3, size, mime)| Content {
                blake3: blake3.to_string(),
                size,
                mime: mime.to_string(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        // Empty, ASCII, and any Unicode (lengths past one varint byte too).
        prop_oneof![Just(String::new()), "[a-z ]{0,20}", ".{0,200}"]
    }

    prop_compose! {
        fn any_track()(
            id in text(), title in text(), artists in prop::collection::vec(text(), 0..4),
            album in prop::option::of(text()), duration_ms in prop::option::of(any::<u64>()),
            uri in prop::option::of(text()), peer_id in text(), display_name in text(),
            added_at in any::<u64>(),
            content in prop::option::of((text(), any::<u64>(), text())),
        ) -> Track {
            Track {
                id, title, artists, album, duration_ms, uri,
                added_by: Author { peer_id, display_name },
                added_at,
                content: content.map(|(blake3, size, mime)| Content { blake3, size, mime }),
            }
        }
    }

    proptest! {
        #[test]
        fn a_kept_track_reads_back_as_it_was(track in any_track()) {
            let kept = KeptTrack::new(&track).expect("encodes");
            prop_assert_eq!(kept.track(), Some(track));
        }
    }

    #[test]
    fn a_kept_track_is_one_small_allocation() {
        let track = Track {
            id: "01JDXQ8Z3N4W5V6B7C8D9E0F1G".into(),
            title: "Track number 1234".into(),
            artists: vec!["Artist 234".into()],
            album: Some("Album 234".into()),
            duration_ms: Some(181_234),
            uri: Some("spotify:track:0000000000000000001234".into()),
            added_by: Author {
                peer_id: "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".into(),
                display_name: "Owner".into(),
            },
            added_at: 1_764_800_000_000,
            content: None,
        };
        let kept = KeptTrack::new(&track).expect("encodes");
        // The fields' text is 150 bytes; lengths and numbers add a few.
        assert!(kept.0.len() < 180, "{} bytes", kept.0.len());
    }
}
