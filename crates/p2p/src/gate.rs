//! Polls the swarm only when there can be something new in it.
//!
//! The service's loop wakes for every command frame, and a `select!` polls every branch
//! each time it wakes — so each command walked the whole swarm (every behaviour's `poll`,
//! the connection pool, the transports), about as much work as the command itself. The gate
//! gives the swarm its own waker and remembers whether that waker fired: the swarm is polled
//! when it woke itself, after it returned an event (a stream is polled again until it is
//! pending), and after the loop changed it from outside (`dial`, `send_request`, …), which
//! behaviours expect to be followed by a poll without waking anyone.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use futures::task::AtomicWaker;

/// Whether the gated stream's waker fired, and the loop's task to wake when it does.
struct Woken {
    flag: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        self.task.wake();
    }
}

pub(crate) struct PollGate {
    woken: Arc<Woken>,
    /// The waker the gated stream is polled with: it sets the flag, then wakes the task.
    waker: Waker,
}

impl Default for PollGate {
    fn default() -> Self {
        let woken = Arc::new(Woken {
            // A new stream has never been polled: it must be.
            flag: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(woken.clone()),
            woken,
        }
    }
}

impl PollGate {
    /// The gated stream was changed from outside its poll: poll it at the next chance.
    pub(crate) fn open(&self) {
        self.woken.flag.store(true, Ordering::Release);
    }

    /// Polls with `poll` if the gate is open, else is pending (until the stream's own waker
    /// fires or [`Self::open`] is called and the task is polled again).
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.woken.task.register(cx.waker());
        if !self.woken.flag.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let polled = poll(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            // A stream that yielded an item has not said it is empty: ask it again.
            self.open();
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A stream that counts its polls, is ready when told, and keeps the last waker.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        ready: AtomicBool,
        waker: std::sync::Mutex<Option<Waker>>,
    }

    impl Probe {
        fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            *self.waker.lock().expect("not poisoned") = Some(cx.waker().clone());
            if self.ready.swap(false, Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
        fn polls(&self) -> usize {
            self.polls.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn the_stream_is_polled_only_when_it_can_have_something_new() {
        let gate = PollGate::default();
        let probe = Probe::default();
        let woken = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let task = Waker::from(Arc::new(Count(woken.clone())));
        let mut cx = Context::from_waker(&task);

        // Fresh: polled once, then not again while nothing happens.
        assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_pending());
        assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_pending());
        assert_eq!(probe.polls(), 1);

        // Its own waker fires: the task is woken and the stream polled again.
        probe.ready.store(true, Ordering::SeqCst);
        let waker = probe.waker.lock().expect("not poisoned").take();
        waker.expect("the stream kept a waker").wake();
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_ready());
        assert_eq!(probe.polls(), 2);

        // After an item it is asked again, until it is pending.
        assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_pending());
        assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_pending());
        assert_eq!(probe.polls(), 3);

        // Changed from outside: opened, polled once more.
        gate.open();
        assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_pending());
        assert_eq!(probe.polls(), 4);
    }
}
