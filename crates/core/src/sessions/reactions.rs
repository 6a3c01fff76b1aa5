//! Reactions: emoji members send to what plays. Not stored in the playlist — each member
//! keeps those of the last 30 s in memory (the sessions task owns them) and shows them. A
//! member may send a few per 10 s; more are refused, by its own app and by every receiver.

use std::collections::{HashMap, VecDeque};

use whatnext_protocol::listening::{
    REACTION_SHOWN_MS, REACTION_WINDOW_MS, REACTIONS_PER_WINDOW, Reaction, is_reaction,
};

/// Why a reaction was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NotAnEmoji,
    TooMany,
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NotAnEmoji => "a reaction is one emoji (up to 8 characters, no letters)",
            Refused::TooMany => "at most 5 reactions per 10 seconds; wait a moment",
        }
    }
}

#[derive(Debug, Default)]
pub struct Reactions {
    /// Session → reactions shown (oldest first).
    shown: HashMap<String, VecDeque<Reaction>>,
    /// (session, peer) → when its recent reactions came, for the rate limit.
    sent: HashMap<(String, String), VecDeque<u64>>,
}

impl Reactions {
    /// Takes `peer`'s reaction `emoji` to `session` at `now` (Unix ms), if it is one and
    /// `peer` has room in its window.
    pub fn record(
        &mut self,
        session: &str,
        peer: &str,
        emoji: &str,
        now: u64,
    ) -> Result<(), Refused> {
        if !is_reaction(emoji) {
            return Err(Refused::NotAnEmoji);
        }
        let sent = self
            .sent
            .entry((session.to_string(), peer.to_string()))
            .or_default();
        while sent
            .front()
            .is_some_and(|at| now.saturating_sub(*at) >= REACTION_WINDOW_MS)
        {
            sent.pop_front();
        }
        if sent.len() >= REACTIONS_PER_WINDOW {
            return Err(Refused::TooMany);
        }
        sent.push_back(now);
        self.shown
            .entry(session.to_string())
            .or_default()
            .push_back(Reaction {
                peer_id: peer.to_string(),
                emoji: emoji.to_string(),
                at: now,
            });
        Ok(())
    }

    /// Forgets what is older than the 30 s shown; returns whether anything went.
    pub fn prune(&mut self, now: u64) -> bool {
        let mut pruned = false;
        for reactions in self.shown.values_mut() {
            while reactions
                .front()
                .is_some_and(|r| now.saturating_sub(r.at) >= REACTION_SHOWN_MS)
            {
                reactions.pop_front();
                pruned = true;
            }
        }
        self.shown.retain(|_, r| !r.is_empty());
        self.sent.retain(|_, at| {
            at.back()
                .is_some_and(|last| now.saturating_sub(*last) < REACTION_WINDOW_MS)
        });
        pruned
    }

    /// The reactions to `session` shown now, oldest first.
    pub fn of(&self, session: &str) -> Vec<Reaction> {
        self.shown
            .get(session)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_per_ten_seconds_each_shown_thirty_seconds() {
        let mut reactions = Reactions::default();
        for i in 0..5 {
            assert_eq!(reactions.record("s", "ann", "🎉", 1_000 + i), Ok(()));
        }
        assert_eq!(
            reactions.record("s", "ann", "🎉", 2_000),
            Err(Refused::TooMany)
        );
        assert_eq!(
            reactions.record("s", "bea", "🔥", 2_000),
            Ok(()),
            "per member"
        );
        assert_eq!(
            reactions.record("s", "bea", "hi", 2_000),
            Err(Refused::NotAnEmoji)
        );
        assert_eq!(
            reactions.record("s", "ann", "👏", 11_000),
            Ok(()),
            "the window moved on"
        );
        assert_eq!(reactions.of("s").len(), 7);
        assert!(!reactions.prune(30_000));
        assert!(reactions.prune(31_500), "the first ones are 30 s old");
        assert_eq!(reactions.of("s").len(), 2);
        assert!(reactions.prune(41_000));
        assert!(reactions.of("s").is_empty());
    }
}
