//! Polling the client sockets for a moment before a worker sleeps (`--busy-poll-us`).
//!
//! A worker with nothing to run sleeps in `epoll_wait`, and the next request has to wake
//! it. That wake-up is paid by whoever sends the request: its `write` finds the worker
//! asleep and the kernel must schedule it on another core (on a virtual machine, an
//! interprocessor interrupt and an exit to the hypervisor). At pipeline 1 the sender is the
//! client, the client is what limits throughput, and a server that needs less CPU per
//! request sleeps more often and makes its clients slower: measured on a 2-core VM with
//! `redis-benchmark -c 50 -P 1` over TLS, CHKV's one worker slept 20,000-30,000 times per
//! 200,000 GETs against redis-server's 4,000-6,500 (redis-server spends more CPU per
//! request, so the next request is usually there when it looks), and ran at 0.87-0.90 times
//! its throughput with 15% less CPU per request. With polling it sleeps about 350 times and
//! runs at 1.04-1.06 times; one client at pipeline 1 gets 44% more GETs per second, four
//! clients 2.4 times as many.
//!
//! So before a worker sleeps it polls the sockets it serves for up to a window of
//! microseconds, returning as soon as one has data: the request that arrives meanwhile is
//! found without a sleep and its sender pays no wake-up. The window adapts per worker,
//! like Linux's guest halt-polling (`cpuidle-haltpoll`): a poll that ran out and was
//! followed by a short sleep (the next event came within what the largest window would
//! have covered) doubles the window; one followed by a long sleep halves it, down to no
//! polling at all. An idle or lightly loaded node therefore stops polling after a few
//! sleeps, and spends at most the window per sleep while it learns; a busy one polls only
//! while polling pays.
//!
//! [`Window`] is that rule as plain data; [`before_park`] and [`after_unpark`] are the
//! runtime's hooks, [`watch`] adds a socket to the set polled. The sockets are watched in a
//! second epoll set of their own (edge-triggered, so a socket with unread data that its
//! task is not reading does not end every poll at once); the kernel drops a socket from
//! it when the socket closes. Linux only; elsewhere nothing is polled.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The largest window by default, in microseconds. Measured on a 2-core VM, TLS GETs at
/// pipeline 1 from 50 clients (`redis-benchmark`), CHKV / redis-server: 0.87-0.90 without
/// polling; 0.92-0.98 at most 20 us (the worker still slept 11,000-14,000 times per 200,000
/// requests: a client's turn around often takes longer); 0.96-0.99 at 30 us; 1.04-1.06 at
/// 50 us (about 350 sleeps); 1.04-1.05 at 100 us.
pub const DEFAULT_MAX_US: u32 = 50;

/// The smallest window a grown window starts from, in microseconds.
const GROW_FROM_US: u32 = 2;

/// One worker's polling window: how long to poll before the next sleep, grown and shrunk
/// by what the sleeps after a poll turn out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    cur_us: u32,
    max_us: u32,
}

impl Window {
    /// A window that starts at its largest, `max_us`.
    pub fn new(max_us: u32) -> Window {
        Window {
            cur_us: max_us,
            max_us,
        }
    }

    /// How long to poll before the next sleep, in microseconds (0: do not poll).
    pub fn budget_us(&self) -> u32 {
        self.cur_us
    }

    /// A poll of [`budget_us`](Self::budget_us) ran out without finding anything, and
    /// the sleep after it lasted `slept`. A sleep the largest window would have covered
    /// means a longer poll would have saved it: the window doubles. A longer one means
    /// polling only cost CPU: the window halves.
    pub fn ran_out(&mut self, slept: Duration) {
        let covered = u128::from(self.cur_us) + slept.as_micros() <= u128::from(self.max_us);
        self.cur_us = if covered {
            self.cur_us
                .saturating_mul(2)
                .max(GROW_FROM_US)
                .min(self.max_us)
        } else {
            self.cur_us / 2
        };
    }
}

/// The sockets polled, and the largest window.
struct Poller {
    epoll: std::os::fd::OwnedFd,
    max_us: u32,
}

static POLLER: OnceLock<Poller> = OnceLock::new();

/// One worker's state between its hooks.
#[derive(Clone, Copy)]
struct Worker {
    window: Window,
    /// When the worker went to sleep after a poll that ran out; `None` after a poll that
    /// found something (the sleep returns at once and says nothing about the window).
    asleep_since: Option<Instant>,
}

thread_local! {
    static WORKER: Cell<Option<Worker>> = const { Cell::new(None) };
}

/// Turns polling on with windows of at most `max_us` microseconds (0 leaves it off).
/// Once per process, before the runtime's workers start; later calls change nothing.
pub fn install(max_us: u32) -> std::io::Result<()> {
    if max_us == 0 || POLLER.get().is_some() {
        return Ok(());
    }
    let epoll = sys::create()?;
    let _ = POLLER.set(Poller { epoll, max_us });
    Ok(())
}

/// Adds a socket to the set polled before a worker sleeps (nothing when polling is off).
pub fn watch(sock: &impl std::os::fd::AsRawFd) {
    if let Some(p) = POLLER.get() {
        sys::add(&p.epoll, sock.as_raw_fd());
    }
}

/// The runtime's `on_thread_park` hook: polls for up to this worker's window.
pub fn before_park() {
    let Some(p) = POLLER.get() else { return };
    let mut w = WORKER.get().unwrap_or(Worker {
        window: Window::new(p.max_us),
        asleep_since: None,
    });
    let budget = w.window.budget_us();
    let found = budget > 0 && sys::poll(&p.epoll, Duration::from_micros(budget.into()));
    w.asleep_since = (!found).then(Instant::now);
    WORKER.set(Some(w));
}

/// The runtime's `on_thread_unpark` hook: learns from the sleep that just ended.
pub fn after_unpark() {
    let Some(mut w) = WORKER.get() else { return };
    if let Some(since) = w.asleep_since.take() {
        w.window.ran_out(since.elapsed());
    }
    WORKER.set(Some(w));
}

#[cfg(target_os = "linux")]
mod sys {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::{Duration, Instant};

    pub fn create() -> std::io::Result<OwnedFd> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    pub fn add(epoll: &OwnedFd, fd: RawFd) {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: 0,
        };
        // SAFETY: `ev` is a valid epoll_event for the call's duration; a descriptor that is
        // not a socket, or already closed, makes the call fail, which is ignored: that
        // socket is then not polled, nothing else changes.
        let _ = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    }

    /// Polls without sleeping until a watched socket has news or `budget` has passed; true
    /// when one had news.
    pub fn poll(epoll: &OwnedFd, budget: Duration) -> bool {
        let start = Instant::now();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        loop {
            // SAFETY: `events` is writable for its full length, which is what is passed.
            let n = unsafe {
                libc::epoll_wait(
                    epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    0,
                )
            };
            if n > 0 {
                return true;
            }
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return false;
            }
            if start.elapsed() >= budget {
                return false;
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::os::fd::{OwnedFd, RawFd};
    use std::time::Duration;

    pub fn create() -> std::io::Result<OwnedFd> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "busy polling needs Linux's epoll",
        ))
    }

    pub fn add(_: &OwnedFd, _: RawFd) {}

    pub fn poll(_: &OwnedFd, _: Duration) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_window_starts_at_its_largest() {
        assert_eq!(Window::new(20).budget_us(), 20);
    }

    #[test]
    fn long_sleeps_halve_the_window_down_to_no_polling() {
        let mut w = Window::new(20);
        let mut seen = vec![];
        for _ in 0..6 {
            w.ran_out(Duration::from_millis(5));
            seen.push(w.budget_us());
        }
        assert_eq!(seen, [10, 5, 2, 1, 0, 0]);
    }

    #[test]
    fn short_sleeps_grow_it_back_to_at_most_the_largest() {
        let mut w = Window::new(20);
        for _ in 0..5 {
            w.ran_out(Duration::from_secs(1));
        }
        assert_eq!(w.budget_us(), 0);
        // Woken 3 us into each sleep: a longer poll would have caught it.
        let mut seen = vec![];
        for _ in 0..5 {
            w.ran_out(us(3));
            seen.push(w.budget_us());
        }
        assert_eq!(seen, [2, 4, 8, 16, 20]);
        // At the largest, 20 us polled and 3 asleep is beyond what any poll may cover.
        w.ran_out(us(3));
        assert_eq!(w.budget_us(), 10);
    }

    #[test]
    fn a_sleep_counts_with_the_poll_before_it() {
        // 12 us polled, then 8 us asleep: 20 in all, within the largest window: grow.
        let mut w = Window::new(20);
        w.ran_out(Duration::from_secs(1)); // 10
        w.ran_out(us(1)); // 10 + 1 <= 20: 20
        assert_eq!(w.budget_us(), 20);
        let mut w = Window {
            cur_us: 12,
            max_us: 20,
        };
        w.ran_out(us(8));
        assert_eq!(w.budget_us(), 20);
        // 12 polled and 9 asleep: 21, beyond it: shrink.
        let mut w = Window {
            cur_us: 12,
            max_us: 20,
        };
        w.ran_out(us(9));
        assert_eq!(w.budget_us(), 6);
    }

    #[test]
    fn the_hooks_do_nothing_when_polling_is_off() {
        // No `install` in this test binary: no poller, no state, no panic.
        before_park();
        after_unpark();
        assert!(WORKER.get().is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_poll_returns_when_a_watched_socket_gets_data_and_runs_out_otherwise() {
        use std::io::Write;
        let epoll = sys::create().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        sys::add(&epoll, std::os::fd::AsRawFd::as_raw_fd(&server));
        // Nothing sent: the poll runs its whole budget out.
        let start = Instant::now();
        assert!(!sys::poll(&epoll, Duration::from_millis(2)));
        assert!(start.elapsed() >= Duration::from_millis(2));
        // Data arrives: found, however long the budget.
        client.write_all(b"PING\r\n").unwrap();
        assert!(sys::poll(&epoll, Duration::from_secs(600)));
        // Edge-triggered: the same unread data does not end the next poll.
        assert!(!sys::poll(&epoll, Duration::from_micros(200)));
        // New data ends a poll again.
        client.write_all(b"PING\r\n").unwrap();
        assert!(sys::poll(&epoll, Duration::from_secs(600)));
        drop(server);
    }
}
