//! Glob-style matching with Redis's rules (`KEYS`, `SCAN MATCH`, `CONFIG GET`).
//!
//! `*` any run, `?` one byte, `[abc]`, `[^abc]`, `[a-z]` classes, `\x` a literal `x`.
//! Matching is on bytes, so binary keys work.

/// Whether `s` matches `pattern`.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    matches(pattern, s, false)
}

/// Case-insensitive variant (for CONFIG GET patterns).
pub fn glob_match_nocase(pattern: &[u8], s: &[u8]) -> bool {
    matches(pattern, s, true)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Iterative matching that backtracks only to the last `*`: a later star can absorb anything
/// an earlier one could, so this is exact and runs in O(len(pattern) * len(s)).
fn matches(p: &[u8], s: &[u8], nocase: bool) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            if p[pi] == b'*' {
                pi += 1;
                star = Some((pi, si));
                continue;
            }
            if si < s.len() {
                if let Some(used) = match_one(&p[pi..], s[si], nocase) {
                    pi += used;
                    si += 1;
                    continue;
                }
            }
        } else if si == s.len() {
            return true;
        }
        match star {
            Some((sp, ss)) if ss < s.len() => {
                star = Some((sp, ss + 1));
                pi = sp;
                si = ss + 1;
            }
            _ => return false,
        }
    }
}

/// Matches one pattern element (not `*`) against byte `c`; returns the pattern bytes it used.
fn match_one(p: &[u8], c: u8, nocase: bool) -> Option<usize> {
    match p[0] {
        b'?' => Some(1),
        b'\\' if p.len() >= 2 => eq(p[1], c, nocase).then_some(2),
        b'[' => {
            let mut i = 1;
            let not = p.get(1) == Some(&b'^');
            if not {
                i += 1;
            }
            let mut matched = false;
            while i < p.len() && p[i] != b']' {
                if p[i] == b'\\' && i + 1 < p.len() {
                    matched |= eq(p[i + 1], c, nocase);
                    i += 2;
                } else if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
                    let (mut lo, mut hi, mut ch) = (p[i], p[i + 2], c);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    if nocase {
                        lo = lo.to_ascii_lowercase();
                        hi = hi.to_ascii_lowercase();
                        ch = ch.to_ascii_lowercase();
                    }
                    matched |= ch >= lo && ch <= hi;
                    i += 3;
                } else {
                    matched |= eq(p[i], c, nocase);
                    i += 1;
                }
            }
            // An unterminated class ends at the end of the pattern.
            let used = (i + 1).min(p.len());
            (matched != not).then_some(used)
        }
        x => eq(x, c, nocase).then_some(1),
    }
}

/// Whether the pattern matches every string (lets callers skip matching).
pub fn matches_all(pattern: &[u8]) -> bool {
    pattern == b"*"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h*llo", b"heeeello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[ae]llo", b"hillo"));
        assert!(glob_match(b"h[^e]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-b]llo", b"hbllo"));
        assert!(glob_match(b"h[b-a]llo", b"hallo"));
        assert!(!glob_match(b"h[a-b]llo", b"hcllo"));
        assert!(glob_match(b"key:\\*", b"key:*"));
        assert!(!glob_match(b"key:\\*", b"key:a"));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
        assert!(glob_match(b"user:*", b"user:1000"));
        assert!(!glob_match(b"user:?", b"user:"));
        assert!(glob_match(b"[\\]]", b"]"));
    }

    #[test]
    fn nocase() {
        assert!(glob_match_nocase(b"MAXMEM*", b"maxmemory"));
        assert!(!glob_match(b"MAXMEM*", b"maxmemory"));
    }

    #[test]
    fn pathological_stars_terminate() {
        let p = b"*a*a*a*a*a*a*a*a*a*a*a*a*b".to_vec();
        let s = vec![b'a'; 40];
        assert!(!glob_match(&p, &s));
    }
}
