//! Clock offsets to members, NTP-style: ask a member the time (`clock` on the sync
//! protocol), note when we asked and when the answer came; the member's clock minus ours is
//! `((received − sent) + (answered − came_back)) / 2`, good to half the round trip spent on
//! the wire. Of the last few samples the one with the lowest round trip is kept: queueing
//! only ever adds delay, so it is the most accurate.

use std::collections::{HashMap, VecDeque};

use whatnext_protocol::state::ClockEstimate;

/// Samples kept per member.
const KEPT: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub offset_ms: f64,
    pub round_trip_ms: f64,
}

/// One exchange: we asked at `sent`, they received at `received` and answered at
/// `answered` (their clock), the answer came back at `came_back` (ours).
pub fn sample(sent: u64, received: u64, answered: u64, came_back: u64) -> Option<Sample> {
    let (t0, t1, t2, t3) = (
        sent as f64,
        received as f64,
        answered as f64,
        came_back as f64,
    );
    let round_trip_ms = (t3 - t0) - (t2 - t1);
    (round_trip_ms >= 0.0 && t2 >= t1).then_some(Sample {
        offset_ms: ((t1 - t0) + (t2 - t3)) / 2.0,
        round_trip_ms,
    })
}

/// Every member's offset (their clock minus ours, ms, rounded), by peer id.
pub type Offsets = HashMap<String, i64>;

/// The samples of every member, and the estimate each gives; the offsets are published on
/// a watch channel, so whoever shows a session reads them without asking the task.
#[derive(Debug)]
pub struct Clocks {
    samples: HashMap<String, VecDeque<Sample>>,
    published: tokio::sync::watch::Sender<Offsets>,
}

impl Default for Clocks {
    fn default() -> Self {
        Clocks {
            samples: HashMap::new(),
            published: tokio::sync::watch::Sender::new(Offsets::new()),
        }
    }
}

impl Clocks {
    /// The offsets as they are published, now and after every change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Offsets> {
        self.published.subscribe()
    }

    fn publish(&self) {
        let offsets = self.offsets();
        self.published.send_if_modified(|current| {
            let changed = *current != offsets;
            *current = offsets;
            changed
        });
    }

    /// Adds a sample of `peer`; its estimate now.
    pub fn add(&mut self, peer: &str, sample: Sample) -> ClockEstimate {
        let kept = self.samples.entry(peer.to_string()).or_default();
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(sample);
        self.publish();
        self.estimate(peer).unwrap_or(ClockEstimate {
            offset_ms: sample.offset_ms,
            error_ms: sample.round_trip_ms / 2.0,
        })
    }

    pub fn estimate(&self, peer: &str) -> Option<ClockEstimate> {
        self.samples
            .get(peer)?
            .iter()
            .min_by(|a, b| a.round_trip_ms.total_cmp(&b.round_trip_ms))
            .map(|best| ClockEstimate {
                offset_ms: best.offset_ms,
                error_ms: best.round_trip_ms / 2.0,
            })
    }

    /// Every member's offset (their clock minus ours, ms, rounded), by peer id.
    fn offsets(&self) -> Offsets {
        self.samples
            .keys()
            .filter_map(|peer| Some((peer.clone(), self.estimate(peer)?.offset_ms.round() as i64)))
            .collect()
    }

    pub fn forget(&mut self, peer: &str) {
        if self.samples.remove(peer).is_some() {
            self.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_comes_from_the_exchange_and_the_fastest_sample_wins() {
        // Their clock is 500 ms ahead; 10 ms each way, 2 ms to answer.
        let s = sample(1_000, 1_510, 1_512, 1_022).expect("sample");
        assert_eq!(s.offset_ms, 500.0);
        assert_eq!(s.round_trip_ms, 20.0);
        // A slow way back (queueing) skews a sample; the fast one is kept.
        let mut clocks = Clocks::default();
        clocks.add("p", s);
        let skewed = sample(2_000, 2_510, 2_512, 2_222).expect("sample");
        assert_eq!(skewed.offset_ms, 400.0);
        let estimate = clocks.add("p", skewed);
        assert_eq!((estimate.offset_ms, estimate.error_ms), (500.0, 10.0));
        // Nonsense (an answer before the question came) is no sample.
        assert_eq!(sample(1_000, 1_510, 1_500, 1_022), None);
        assert_eq!(
            *clocks.subscribe().borrow(),
            Offsets::from([("p".into(), 500)])
        );
        clocks.forget("p");
        assert_eq!(clocks.estimate("p"), None);
        assert!(clocks.subscribe().borrow().is_empty(), "published too");
    }
}
