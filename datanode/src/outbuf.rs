//! `client-output-buffer-limit`: Redis's per-class limits on the replies a connection has not
//! taken yet, with Redis's defaults, syntax, error texts and rule ([`over_limit`]). The one
//! place the limit lives: the connection layer applies it to what a connection is about to
//! write, Pub/Sub applies it to each subscriber's outbox.
//!
//! - `normal`: plain connections (no limit by default, as in Redis). A connection writes its
//!   replies before it reads more requests, and keeps only a bounded amount of forwarded
//!   replies in flight ([`crate::exec::FORWARDED_BUDGET`]), so its unwritten output is bounded
//!   by one batch even then; the limit adds Redis's rule on top, for local and forwarded
//!   replies alike.
//! - `pubsub`: connections with a subscription, and the outbox publishers append to (default
//!   `32mb 8mb 60`).
//! - `replica` (CONFIG GET shows it as `slave`): kept and reported; CHKV has no replicas yet.
//!
//! Past the hard limit, or over the soft limit for longer than its seconds, the connection is
//! closed, as Redis closes it.

use std::time::{Duration, Instant};

/// One class's limits, in bytes and seconds; 0 disables each (the default: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

impl ClassLimit {
    /// No limit at all.
    pub const NONE: ClassLimit = ClassLimit {
        hard: 0,
        soft: 0,
        soft_seconds: 0,
    };

    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.hard > 0 || self.soft > 0
    }
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
            normal: ClassLimit::NONE,
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
            let hard = crate::args::parse_memory(group[1]).ok_or_else(bad)?;
            let soft = crate::args::parse_memory(group[2]).ok_or_else(bad)?;
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

/// Redis's rule: a connection with `len` bytes not taken yet is over `limit` when `len`
/// reaches the hard limit, or has stayed at or over the soft limit for more than its seconds.
/// `since` records when the soft limit was first reached (reset once under it again).
pub fn over_limit(since: &mut Option<Instant>, len: u64, limit: &ClassLimit, now: Instant) -> bool {
    if limit.hard > 0 && len >= limit.hard {
        return true;
    }
    if limit.soft > 0 && len >= limit.soft {
        let start = *since.get_or_insert(now);
        return now.saturating_duration_since(start).as_secs() > limit.soft_seconds;
    }
    *since = None;
    false
}

/// When a connection that has been at or over the soft limit since `since` goes over it by
/// [`over_limit`]'s rule, if nothing changes: the deadline a blocked write is given.
pub fn soft_deadline(since: Instant, limit: &ClassLimit) -> Instant {
    since + Duration::from_secs(limit.soft_seconds.saturating_add(1))
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
        let set = d.parse_into(b"SLAVE 1gb 0 0").expect("valid");
        assert_eq!(set.replica.hard, 1 << 30);
        for (bad, why) in [
            (&b"normal 1 2"[..], "Wrong number"),
            (b"", "Wrong number"),
            (b"bogus 1 2 3", "Invalid client class"),
            (b"normal 1 2 x", "Error in hard"),
            (b"normal -1 2 3", "Error in hard"),
            (b"normal 99999999999999999999gb 0 0", "Error in hard"),
            // A bad group leaves the good one before it unapplied.
            (b"pubsub 1 1 1 normal x 1 1", "Error in hard"),
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
        let mut since = None;
        assert!(!over_limit(&mut since, 5, &limit, t0));
        assert!(since.is_none());
        assert!(over_limit(&mut since, 100, &limit, t0));
        assert!(!over_limit(&mut None, 99, &limit, t0));
        // Over the soft limit: closed once more than its seconds have passed (Redis compares
        // whole seconds, strictly).
        let mut since = None;
        assert!(!over_limit(&mut since, 50, &limit, t0));
        assert!(!over_limit(
            &mut since,
            50,
            &limit,
            t0 + Duration::from_secs(2)
        ));
        assert!(over_limit(
            &mut since,
            50,
            &limit,
            t0 + Duration::from_secs(3)
        ));
        assert_eq!(
            soft_deadline(t0, &limit),
            t0 + Duration::from_secs(3),
            "a blocked write is given until the rule would close it"
        );
        // Dropping under the soft limit resets the clock.
        assert!(!over_limit(
            &mut since,
            1,
            &limit,
            t0 + Duration::from_secs(3)
        ));
        assert!(!over_limit(
            &mut since,
            50,
            &limit,
            t0 + Duration::from_secs(4)
        ));
        assert!(!ClassLimit::NONE.is_set());
        assert!(!over_limit(&mut None, u64::MAX, &ClassLimit::NONE, t0));
    }
}
