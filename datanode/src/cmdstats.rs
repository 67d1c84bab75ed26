//! Per-command statistics: calls, failed calls (the command ran and answered an error),
//! rejected calls (refused before running: arity, authentication, out of memory) and a
//! latency histogram, per top-level command.
//!
//! Recorded by [`crate::cmd::dispatch`] for every command this node runs (forwarded requests
//! are counted where they run). Each thread writes its own row of a
//! [`CounterTable`]: no locked instruction and no shared cache
//! line per command. The cost per command is two monotonic clock reads ([`crate::clock`]) and
//! four plain stores; `/metrics` sums the rows when scraped.

use crate::striped::CounterTable;

/// Upper bounds of the latency buckets, in microseconds (Prometheus `le`, cumulative when
/// exported). Slower calls count only in the implicit `+Inf` bucket (the call count).
pub const BUCKETS_US: [u64; 10] = [10, 25, 50, 100, 250, 500, 1000, 5000, 25_000, 100_000];

const CALLS: usize = 0;
const FAILED: usize = 1;
const REJECTED: usize = 2;
const MICROS: usize = 3;
const FIRST_BUCKET: usize = 4;
/// Counters per command.
const FIELDS: usize = FIRST_BUCKET + BUCKETS_US.len();

/// The figures of one command, summed over threads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandFigures {
    pub calls: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Total time in the command, microseconds.
    pub micros: u64,
    /// Calls that took at most `BUCKETS_US[i]` microseconds, cumulative like Prometheus's
    /// `le` buckets.
    pub buckets: [u64; BUCKETS_US.len()],
}

/// Room for this many top-level commands: more than [`crate::cmd::table`] holds (a test of
/// the table checks), so a node's statistics are sized without asking the command layer.
pub const MAX_COMMANDS: usize = 320;

/// Statistics for `commands` top-level commands, indexed like [`crate::cmd::table`].
pub struct CommandStats {
    table: CounterTable,
    commands: usize,
    /// Every counter's value at the last [`CommandStats::reset`] (CONFIG RESETSTAT): the
    /// rows are written without locked instructions, so they are not zeroed but read
    /// relative to this.
    base: parking_lot::Mutex<Vec<u64>>,
}

impl CommandStats {
    pub fn new(commands: usize) -> CommandStats {
        CommandStats {
            table: CounterTable::new(commands * FIELDS),
            commands,
            base: parking_lot::Mutex::new(vec![0; commands * FIELDS]),
        }
    }

    /// CONFIG RESETSTAT: every figure reads 0 from now on.
    pub fn reset(&self) {
        let mut base = self.base.lock();
        for (i, b) in base.iter_mut().enumerate() {
            *b = self.table.get(i);
        }
    }

    fn read(&self, base: &[u64], i: usize) -> u64 {
        self.table
            .get(i)
            .wrapping_sub(base.get(i).copied().unwrap_or(0))
    }

    /// A call of command `index` that ran for `micros` microseconds; `failed` when it answered an error.
    #[inline]
    pub fn record(&self, index: usize, micros: u64, failed: bool) {
        if index >= self.commands {
            return;
        }
        let base = index * FIELDS;
        // Fixed four adds, no branches: a successful call adds 0 to FAILED, a call slower
        // than every bucket adds 0 to CALLS a second time.
        let bucket = BUCKETS_US
            .iter()
            .position(|&le| micros <= le)
            .map_or(base + CALLS, |b| base + FIRST_BUCKET + b);
        let in_bucket = u64::from(bucket != base + CALLS);
        self.table.add_all(&[
            (base + CALLS, 1),
            (base + FAILED, u64::from(failed)),
            (base + MICROS, micros),
            (bucket, in_bucket),
        ]);
    }

    /// A call of command `index` refused before it ran.
    pub fn reject(&self, index: usize) {
        if index < self.commands {
            self.table.add(index * FIELDS + REJECTED, 1);
        }
    }

    /// The figures of command `index`.
    pub fn get(&self, index: usize) -> CommandFigures {
        let at = self.base.lock();
        let base = index * FIELDS;
        let mut f = CommandFigures {
            calls: self.read(&at, base + CALLS),
            failed: self.read(&at, base + FAILED),
            rejected: self.read(&at, base + REJECTED),
            micros: self.read(&at, base + MICROS),
            buckets: [0; BUCKETS_US.len()],
        };
        let mut running = 0u64;
        for (b, slot) in f.buckets.iter_mut().enumerate() {
            running = running.wrapping_add(self.read(&at, base + FIRST_BUCKET + b));
            *slot = running;
        }
        f
    }
}

/// Error replies by error code (INFO's `errorstats` and `total_error_replies`), as Redis
/// counts them: once per error a client gets, an error a script passes on from a command
/// it called counted once, at the command.
#[derive(Default)]
pub struct ErrorStats {
    codes: parking_lot::Mutex<std::collections::BTreeMap<String, u64>>,
    total: crate::striped::Counter,
}

/// Distinct error codes tracked at most (Redis's limit); others count in the total only.
const MAX_ERROR_CODES: usize = 128;

impl ErrorStats {
    /// Counts an error reply by its code (its first word).
    pub fn count(&self, text: &str) {
        self.total.add(1);
        let code = text.split(' ').next().unwrap_or("");
        let mut codes = self.codes.lock();
        if let Some(n) = codes.get_mut(code) {
            *n += 1;
        } else if codes.len() < MAX_ERROR_CODES {
            codes.insert(code.to_string(), 1);
        }
    }

    pub fn total(&self) -> u64 {
        self.total.get()
    }

    /// Counts by code, in code order.
    pub fn codes(&self) -> Vec<(String, u64)> {
        self.codes
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    pub fn reset(&self) {
        self.codes.lock().clear();
        self.total.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_errors_and_cumulative_buckets() {
        let s = CommandStats::new(2);
        s.record(1, 3, false);
        s.record(1, 30, true);
        s.record(1, 2000, false);
        s.record(1, 1_000_000, false);
        s.reject(1);
        s.record(7, 0, false); // out of range: ignored
        let f = s.get(1);
        assert_eq!((f.calls, f.failed, f.rejected), (4, 1, 1));
        assert_eq!(f.micros, 3 + 30 + 2000 + 1_000_000);
        // <=10: 1, <=25: 1, <=50: 2, ... <=1000: 2, <=5000: 3, <=100000: 3 (+Inf: 4 calls).
        assert_eq!(f.buckets, [1, 1, 2, 2, 2, 2, 2, 3, 3, 3]);
        assert_eq!(s.get(0), CommandFigures::default());
        s.reset();
        assert_eq!(s.get(1), CommandFigures::default());
        s.record(1, 3, true);
        assert_eq!((s.get(1).calls, s.get(1).failed), (1, 1));
    }

    #[test]
    fn errors_by_code() {
        let e = ErrorStats::default();
        e.count("ERR syntax error");
        e.count("ERR");
        e.count("WRONGTYPE Operation against a key");
        assert_eq!(e.total(), 3);
        assert_eq!(
            e.codes(),
            vec![("ERR".to_string(), 2), ("WRONGTYPE".to_string(), 1)]
        );
        e.reset();
        assert_eq!((e.total(), e.codes().len()), (0, 0));
    }
}
