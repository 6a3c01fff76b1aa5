//! A relay's cap on each peer's bandwidth: bytes a second, each way, over all of that peer's
//! connections and circuits together.
//!
//! libp2p's relay limits circuits by count, life and bytes each, which bounds one circuit
//! but not a peer: a host with sixteen friends on the relay, or a peer that opens circuit
//! after circuit, could take the relay's whole uplink. So the relay's transport wraps every
//! connection's streams, once the peer is known, in a token bucket shared by all streams of
//! that peer (one per direction). A stream over its budget is not failed: it waits for
//! tokens, and the wait reaches the sender as flow control (yamux and QUIC windows, TCP).

use std::{
    collections::HashMap,
    io,
    pin::Pin,
    sync::{Arc, Mutex, Weak},
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use futures::{AsyncRead, AsyncWrite};
use libp2p::{
    PeerId, Transport as _,
    core::{
        muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent},
        transport::Boxed,
    },
};

/// The fewest bytes a waiting stream asks for at once (or what it wants, when less): smaller
/// grants would wake it for a few bytes at a time.
const MIN_GRANT: usize = 4096;

/// Token buckets of every connected peer, made on first use and dropped with the peer's
/// last stream.
#[derive(Clone)]
pub struct PeerCaps {
    bytes_per_sec: u64,
    peers: Arc<Mutex<HashMap<PeerId, Weak<PeerBuckets>>>>,
}

/// One peer's budget: what we read from it and what we write to it.
struct PeerBuckets {
    inbound: Mutex<Bucket>,
    outbound: Mutex<Bucket>,
}

impl PeerCaps {
    /// Caps each peer at `bytes_per_sec` each way (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1),
            peers: Arc::default(),
        }
    }

    /// Wraps every connection of `transport` in its peer's caps.
    pub fn wrap(
        self,
        transport: Boxed<(PeerId, StreamMuxerBox)>,
    ) -> Boxed<(PeerId, StreamMuxerBox)> {
        transport
            .map(move |(peer, muxer), _| {
                let buckets = self.buckets_of(peer);
                (peer, StreamMuxerBox::new(CappedMuxer { muxer, buckets }))
            })
            .boxed()
    }

    fn buckets_of(&self, peer: PeerId) -> Arc<PeerBuckets> {
        // A poisoned lock only means another connection's set-up panicked; the map is valid.
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(buckets) = peers.get(&peer).and_then(Weak::upgrade) {
            return buckets;
        }
        // Peers gone since: their entries hold only a dead Weak.
        peers.retain(|_, buckets| buckets.strong_count() > 0);
        let now = Instant::now();
        let buckets = Arc::new(PeerBuckets {
            inbound: Mutex::new(Bucket::new(self.bytes_per_sec, now)),
            outbound: Mutex::new(Bucket::new(self.bytes_per_sec, now)),
        });
        peers.insert(peer, Arc::downgrade(&buckets));
        buckets
    }
}

/// A token bucket: `rate` bytes a second, holding at most one second's worth.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(bytes_per_sec: u64, now: Instant) -> Self {
        let rate = bytes_per_sec as f64;
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate);
        self.last = now;
    }

    /// How many of `want` bytes may pass now, or how long until enough may.
    fn allowance(&mut self, want: usize, now: Instant) -> Result<usize, Duration> {
        self.refill(now);
        let least = want.min(MIN_GRANT).min(self.rate as usize).max(1) as f64;
        if self.tokens >= least {
            Ok((self.tokens as usize).min(want))
        } else {
            Err(Duration::from_secs_f64((least - self.tokens) / self.rate))
        }
    }

    fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }
}

struct CappedMuxer {
    muxer: StreamMuxerBox,
    buckets: Arc<PeerBuckets>,
}

impl StreamMuxer for CappedMuxer {
    type Substream = CappedStream;
    type Error = io::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let stream = ready!(Pin::new(&mut self.muxer).poll_inbound(cx))?;
        Poll::Ready(Ok(CappedStream::new(stream, self.buckets.clone())))
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let stream = ready!(Pin::new(&mut self.muxer).poll_outbound(cx))?;
        Poll::Ready(Ok(CappedStream::new(stream, self.buckets.clone())))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.muxer).poll_close(cx)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.muxer).poll(cx)
    }
}

type Stream = <StreamMuxerBox as StreamMuxer>::Substream;

struct CappedStream {
    stream: Stream,
    buckets: Arc<PeerBuckets>,
    /// Until the read side may try again.
    read_wait: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Until the write side may try again.
    write_wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl CappedStream {
    fn new(stream: Stream, buckets: Arc<PeerBuckets>) -> Self {
        Self {
            stream,
            buckets,
            read_wait: None,
            write_wait: None,
        }
    }
}

/// Waits out `wait` if set, then asks `bucket` for up to `want` bytes: `Ready(n)` to go on
/// with `n`, or `Pending` with a timer set to wake us when tokens are there.
fn grant(
    bucket: &Mutex<Bucket>,
    wait: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    want: usize,
    cx: &mut Context<'_>,
) -> Poll<usize> {
    loop {
        if let Some(sleep) = wait.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            *wait = None;
        }
        let allowance = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allowance(want, Instant::now());
        match allowance {
            Ok(bytes) => return Poll::Ready(bytes),
            // At least the timer's own granularity: a wait of nanoseconds (rounding) would
            // spin through this loop instead of sleeping.
            Err(delay) => {
                let delay = delay.max(Duration::from_millis(1));
                *wait = Some(Box::pin(tokio::time::sleep(delay)));
            }
        }
    }
}

fn spend(bucket: &Mutex<Bucket>, bytes: usize) {
    bucket
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .spend(bytes);
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let this = &mut *self;
        let allowed = ready!(grant(
            &this.buckets.inbound,
            &mut this.read_wait,
            buf.len(),
            cx
        ));
        let read = ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf[..allowed]))?;
        spend(&this.buckets.inbound, read);
        Poll::Ready(Ok(read))
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Pin::new(&mut self.stream).poll_write(cx, buf);
        }
        let this = &mut *self;
        let allowed = ready!(grant(
            &this.buckets.outbound,
            &mut this.write_wait,
            buf.len(),
            cx
        ));
        let written = ready!(Pin::new(&mut this.stream).poll_write(cx, &buf[..allowed]))?;
        spend(&this.buckets.outbound, written);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_grants_a_second_at_once_then_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10_000, start);
        assert_eq!(bucket.allowance(64_000, start), Ok(10_000));
        bucket.spend(10_000);
        // Empty: a wait until MIN_GRANT bytes are earned (0.41 s at 10 kB/s).
        let wait = bucket.allowance(64_000, start).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.4096).abs() < 1e-6, "{wait:?}");
        // Half a second later: half a second's worth.
        let later = start + Duration::from_millis(500);
        assert_eq!(bucket.allowance(64_000, later), Ok(5_000));
        // Never more than a second's worth, however long it was idle.
        let much_later = start + Duration::from_secs(3600);
        assert_eq!(bucket.allowance(64_000, much_later), Ok(10_000));
    }

    #[test]
    fn a_small_want_passes_as_soon_as_it_fits() {
        let start = Instant::now();
        let mut bucket = Bucket::new(1_000, start);
        bucket.spend(1_000);
        // A 32-byte ping waits for 32 bytes' worth, not MIN_GRANT's.
        let wait = bucket.allowance(32, start).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.032).abs() < 1e-6, "{wait:?}");
        assert_eq!(
            bucket.allowance(32, start + Duration::from_millis(40)),
            Ok(32)
        );
        // A rate below MIN_GRANT still lets a big read through, a second's worth at a time.
        let mut slow = Bucket::new(100, start);
        slow.spend(100);
        assert!(slow.allowance(64_000, start).is_err());
        assert_eq!(
            slow.allowance(64_000, start + Duration::from_secs(1)),
            Ok(100)
        );
    }

    #[test]
    fn a_peers_connections_share_one_budget_and_it_goes_with_them() {
        let caps = PeerCaps::new(1_000);
        let peer = PeerId::random();
        let first = caps.buckets_of(peer);
        let second = caps.buckets_of(peer);
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(&first, &caps.buckets_of(PeerId::random())));
        drop((first, second));
        // The next connection starts afresh, and dead entries are swept on the way.
        let _again = caps.buckets_of(peer);
        let peers = caps.peers.lock().expect("not poisoned");
        assert_eq!(peers.len(), 1, "the other peer's entry was swept");
    }
}
