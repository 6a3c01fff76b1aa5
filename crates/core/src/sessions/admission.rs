//! Who may join a shared playlist, decided from the book alone (no network, no clock): the
//! rules the handshake applies, kept pure so they are tested as a table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use whatnext_protocol::state::MAIN_SERVICE;

use crate::secret::same_secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Member,
}

/// One shared playlist in `sessions.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    pub key: String,
    pub role: Role,
    #[serde(default)]
    pub revoked: Vec<String>,
    /// Served by a network service of its own, with its own identity (`share --isolated`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolated: bool,
}

impl SessionEntry {
    /// The name of the network service that serves the playlist `id`.
    pub fn service<'a>(&self, id: &'a str) -> &'a str {
        if self.isolated { id } else { MAIN_SERVICE }
    }

    pub fn is_revoked(&self, peer: &str) -> bool {
        self.revoked.iter().any(|p| p == peer)
    }
}

/// `<home>/sessions.json`: playlist id → capability.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Book {
    pub sessions: BTreeMap<String, SessionEntry>,
}

/// Why a peer is refused a playlist: said to the peer, and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NotShared,
    Revoked,
    WrongKey,
    /// The playlist is served by another identity of ours (it moved to an isolated service):
    /// links to this one no longer admit.
    ServedElsewhere,
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NotShared => "no such shared playlist here",
            Refused::Revoked => "your access was revoked by the owner",
            Refused::WrongKey => "wrong key: ask for a new link",
            Refused::ServedElsewhere => {
                "this playlist is no longer shared through this peer: ask for a new link"
            }
        }
    }
}

/// Whether `peer`, proving `key` for playlist `session` to our service `service`, is admitted.
/// Refusals read the same whatever the cause that comes after the first failed check, and the
/// key is compared in constant time.
pub fn admit(
    book: &Book,
    service: &str,
    session: &str,
    peer: &str,
    key: &str,
) -> Result<(), Refused> {
    let entry = book.sessions.get(session).ok_or(Refused::NotShared)?;
    if entry.service(session) != service {
        return Err(Refused::ServedElsewhere);
    }
    if entry.is_revoked(peer) {
        return Err(Refused::Revoked);
    }
    if !same_secret(entry.key.as_bytes(), key.as_bytes()) {
        return Err(Refused::WrongKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> Book {
        let mut book = Book::default();
        book.sessions.insert(
            "shared".into(),
            SessionEntry {
                key: "k1".into(),
                role: Role::Owner,
                revoked: vec!["mallory".into()],
                isolated: false,
            },
        );
        book.sessions.insert(
            "iso".into(),
            SessionEntry {
                key: "k2".into(),
                role: Role::Owner,
                revoked: vec![],
                isolated: true,
            },
        );
        book
    }

    #[test]
    fn admission_table() {
        let book = book();
        let table = [
            ("main", "shared", "bob", "k1", Ok(())),
            ("main", "shared", "bob", "k2", Err(Refused::WrongKey)),
            ("main", "shared", "bob", "", Err(Refused::WrongKey)),
            ("main", "shared", "mallory", "k1", Err(Refused::Revoked)),
            ("main", "nope", "bob", "k1", Err(Refused::NotShared)),
            // An isolated playlist is admitted only through its own service…
            ("iso", "iso", "bob", "k2", Ok(())),
            ("main", "iso", "bob", "k2", Err(Refused::ServedElsewhere)),
            // …and that service admits to nothing else.
            ("iso", "shared", "bob", "k1", Err(Refused::ServedElsewhere)),
        ];
        for (service, session, peer, key, want) in table {
            assert_eq!(
                admit(&book, service, session, peer, key),
                want,
                "{service} {session} {peer} {key}"
            );
        }
    }

    #[test]
    fn an_old_book_reads_as_served_by_main() {
        let book: Book = serde_json::from_str(r#"{"sessions":{"p":{"key":"k","role":"member"}}}"#)
            .expect("old sessions.json");
        let entry = &book.sessions["p"];
        assert!(!entry.isolated);
        assert_eq!(entry.service("p"), MAIN_SERVICE);
        let written = serde_json::to_string(&book).expect("json");
        assert!(!written.contains("isolated"), "{written}");
    }
}
