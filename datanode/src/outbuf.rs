//! `client-output-buffer-limit`: Redis's per-class limits on the replies a connection has not
//! taken yet, with Redis's defaults, syntax and error texts.
//!
//! A connection writes its replies before it reads more requests, and keeps only a bounded
//! amount of forwarded replies in flight ([`crate::exec::FORWARDED_BUDGET`]), so its unwritten
//! output is already bounded by one batch. The limit adds Redis's rule on top: a connection
//! whose unwritten output passes the hard limit, or stays over the soft limit for the soft
//! seconds, is closed. Plain clients are the `normal` class (no limit by default, as in
//! Redis); `replica` and `pubsub` are kept and reported for when those clients exist.

use std::time::{Duration, Instant};

/// One class's limits, in bytes and seconds; 0 disables each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

/// The three classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    pub normal: ClassLimit,
    pub replica: ClassLimit,
    pub pubsub: ClassLimit,
}

impl Default for OutputLimits {
    /// Redis's defaults: `normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60`.
    fn default() -> Self {
        OutputLimits {
            normal: ClassLimit {
                hard: 0,
                soft: 0,
                soft_seconds: 0,
            },
            replica: ClassLimit {
                hard: 256 << 20,
                soft: 64 << 20,
                soft_seconds: 60,
            },
            pubsub: ClassLimit {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_seconds: 60,
            },
        }
    }
}

impl OutputLimits {
    /// The CONFIG GET form (Redis names the replica class `slave` there).
    pub fn format(&self) -> String {
        let c = |l: &ClassLimit| format!("{} {} {}", l.hard, l.soft, l.soft_seconds);
        format!(
            "normal {} slave {} pubsub {}",
            c(&self.normal),
            c(&self.replica),
            c(&self.pubsub)
        )
    }

    /// Applies a CONFIG SET value: one or more `class hard soft seconds` groups; classes not
    /// named keep their limits. Nothing changes when any group is invalid.
    pub fn parse_into(&self, value: &[u8]) -> Result<OutputLimits, String> {
        let text = std::str::from_utf8(value)
            .map_err(|_| "Invalid client class specified in buffer limit configuration.")?;
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        let mut out = *self;
        for group in words.chunks(4) {
            let class = match group[0].to_ascii_lowercase().as_str() {
                "normal" => &mut out.normal,
                "replica" | "slave" => &mut out.replica,
                "pubsub" => &mut out.pubsub,
                _ => {
                    return Err(
                        "Invalid client class specified in buffer limit configuration.".into(),
                    )
                }
            };
            let bad =
                || "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
            let hard = crate::config::parse_memory(group[1]).ok_or_else(bad)?;
            let soft = crate::config::parse_memory(group[2]).ok_or_else(bad)?;
            let soft_seconds: u64 = group[3].parse().map_err(|_| bad())?;
            *class = ClassLimit {
                hard,
                soft,
                soft_seconds,
            };
        }
        Ok(out)
    }
}

/// Tracks one connection against its class's limit.
#[derive(Debug, Default)]
pub struct Tracker {
    over_soft_since: Option<Instant>,
}

impl Tracker {
    /// Whether a connection with `pending` unwritten bytes at `now` has gone over `limit`
    /// and must be closed.
    pub fn exceeded(&mut self, limit: &ClassLimit, pending: u64, now: Instant) -> bool {
        if limit.hard > 0 && pending >= limit.hard {
            return true;
        }
        if limit.soft > 0 && pending >= limit.soft {
            let since = *self.over_soft_since.get_or_insert(now);
            return now.saturating_duration_since(since) >= Duration::from_secs(limit.soft_seconds);
        }
        self.over_soft_since = None;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_config_forms_match_redis() {
        let d = OutputLimits::default();
        assert_eq!(
            d.format(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        let set = d.parse_into(b"normal 1mb 512kb 10").expect("valid");
        assert_eq!(
            set.format(),
            "normal 1048576 524288 10 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        let set = d.parse_into(b"replica 1 2 3 pubsub 4 5 6").expect("valid");
        assert_eq!(set.replica.soft_seconds, 3);
        assert_eq!(set.pubsub.hard, 4);
        for (bad, why) in [
            (&b"normal 1 2"[..], "Wrong number"),
            (b"", "Wrong number"),
            (b"bogus 1 2 3", "Invalid client class"),
            (b"normal 1 2 x", "Error in hard"),
            (b"normal -1 2 3", "Error in hard"),
            (b"normal 99999999999999999999gb 0 0", "Error in hard"),
        ] {
            let err = d.parse_into(bad).expect_err("invalid");
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn hard_at_once_soft_after_its_seconds() {
        let limit = ClassLimit {
            hard: 100,
            soft: 10,
            soft_seconds: 2,
        };
        let t0 = Instant::now();
        let mut t = Tracker::default();
        assert!(!t.exceeded(&limit, 5, t0));
        assert!(t.exceeded(&limit, 100, t0));
        assert!(!t.exceeded(&limit, 50, t0));
        assert!(!t.exceeded(&limit, 50, t0 + Duration::from_secs(1)));
        assert!(t.exceeded(&limit, 50, t0 + Duration::from_secs(2)));
        // Dropping under the soft limit resets the clock.
        assert!(!t.exceeded(&limit, 1, t0 + Duration::from_secs(3)));
        assert!(!t.exceeded(&limit, 50, t0 + Duration::from_secs(4)));
        let none = ClassLimit {
            hard: 0,
            soft: 0,
            soft_seconds: 0,
        };
        assert!(!t.exceeded(&none, u64::MAX, t0));
    }
}
