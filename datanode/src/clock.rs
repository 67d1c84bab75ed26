//! Clock reads for the hot path.
//!
//! Every command reads the wall clock once (expiry is absolute Unix milliseconds) and times
//! itself for the command statistics. `SystemTime` and `Instant` pay for validated
//! `Duration` arithmetic on top of the vDSO call; measured with callgrind on a SET/GET load,
//! that arithmetic cost more than the calls. So the wall clock is one `clock_gettime` turned
//! into an integer, and durations are measured like Redis's monotonic clock: in CPU ticks
//! (`rdtsc`, one instruction) where the processor says its tick counter is invariant
//! (`constant_tsc` and `nonstop_tsc`), converted with a rate calibrated once against
//! `CLOCK_MONOTONIC`; elsewhere with `clock_gettime(CLOCK_MONOTONIC)`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
#[inline]
pub fn unix_ms() -> u64 {
    let ts = read(libc::CLOCK_REALTIME);
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec.max(0) as u64 / 1_000_000)
}

/// Microseconds on the monotonic clock.
#[inline]
pub fn mono_us() -> u64 {
    let ts = read(libc::CLOCK_MONOTONIC);
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec.max(0) as u64 / 1000)
}

#[inline]
fn read(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on every Linux and
    // POSIX system, and on failure `ts` stays zero, which callers read as "the epoch".
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    ts
}

/// Microseconds per tick as a 32.32 fixed-point factor; 0 until [`calibrate`] found an
/// invariant tick counter, and then [`stamp`] reads ticks instead of the monotonic clock.
static US_PER_TICK_FX32: AtomicU64 = AtomicU64::new(0);

/// A timestamp to measure a short duration from, with [`elapsed_us`].
#[inline]
pub fn stamp() -> u64 {
    if US_PER_TICK_FX32.load(Relaxed) != 0 {
        ticks()
    } else {
        mono_us()
    }
}

/// Microseconds since `start`, a [`stamp`] (0 if the clock seems to have gone back, as
/// ticks read on another core may).
#[inline]
pub fn elapsed_us(start: u64) -> u64 {
    let fx = US_PER_TICK_FX32.load(Relaxed);
    if fx != 0 {
        let delta = ticks().saturating_sub(start);
        u64::try_from((u128::from(delta) * u128::from(fx)) >> 32).unwrap_or(u64::MAX)
    } else {
        mono_us().saturating_sub(start)
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn ticks() -> u64 {
    // SAFETY: rdtsc exists on every x86_64 processor and has no preconditions.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn ticks() -> u64 {
    mono_us()
}

/// Switches [`stamp`]/[`elapsed_us`] to the tick counter when it is invariant, measuring its
/// rate against the monotonic clock over `window` (blocks that long; call once at start).
/// Returns the measured ticks per microsecond, or `None` when ticks are not used.
pub fn calibrate(window: std::time::Duration) -> Option<f64> {
    if !cfg!(target_arch = "x86_64") || !invariant_tsc() {
        return None;
    }
    let (t0, m0) = (ticks(), mono_us());
    std::thread::sleep(window);
    let (t1, m1) = (ticks(), mono_us());
    let per_us = rate(t1.checked_sub(t0)?, m1.checked_sub(m0)?)?;
    US_PER_TICK_FX32.store(fx32(per_us)?, Relaxed);
    Some(per_us)
}

/// Ticks per microsecond over a measured interval, when it is long and plausible enough
/// (between 1 MHz and 100 GHz).
fn rate(ticks: u64, micros: u64) -> Option<f64> {
    if micros < 1000 {
        return None;
    }
    let per_us = ticks as f64 / micros as f64;
    (1.0..100_000.0).contains(&per_us).then_some(per_us)
}

/// Microseconds per tick as 32.32 fixed point.
fn fx32(ticks_per_us: f64) -> Option<u64> {
    let fx = ((1u64 << 32) as f64 / ticks_per_us) as u64;
    (fx != 0).then_some(fx)
}

fn invariant_tsc() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|flags| {
                let has = |w: &str| flags.split_whitespace().any(|f| f == w);
                has("constant_tsc") && has("nonstop_tsc")
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wall_clock_agrees_with_std() {
        let std_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let ms = unix_ms();
        // Both read the same clock; allow for a slow, descheduled test thread.
        assert!(ms >= std_ms && ms - std_ms < 60_000, "{ms} vs {std_ms}");
    }

    #[test]
    fn monotonic_never_goes_back() {
        let mut last = mono_us();
        for _ in 0..1000 {
            let t = mono_us();
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn rate_and_fixed_point() {
        assert_eq!(rate(3_000_000, 999), None, "too short a window");
        assert_eq!(rate(10, 1_000_000), None, "below 1 MHz");
        assert_eq!(rate(3_000_000, 1000), Some(3000.0));
        // 3000 ticks per µs: 3 million ticks are 1000 µs.
        let fx = fx32(3000.0).unwrap();
        assert_eq!((3_000_000u128 * u128::from(fx)) >> 32, 999);
        assert_eq!(fx32(f64::INFINITY), None);
    }

    #[test]
    fn elapsed_measures_a_sleep_whichever_clock_is_used() {
        // Calibration may or may not switch to ticks on this machine; both must measure.
        calibrate(Duration::from_millis(5));
        let start = stamp();
        std::thread::sleep(Duration::from_millis(20));
        // Sleeps last at least as long as asked; a tick rate measured on a busy machine may
        // be off by a little, never by half.
        assert!(elapsed_us(start) >= 10_000, "{}", elapsed_us(start));
    }
}
