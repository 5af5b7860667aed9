//! Well-formed tokens that do not verify: a known id with a wrong secret, or an unknown id,
//! for timing what a guess costs.

/// `token` (of prefix `prefix`) with its secret replaced by `fill` hex digits, the checksum
/// recomputed: the same id, a wrong secret.
pub fn wrong_secret(token: &str, prefix: &str, fill: char) -> String {
    let id_end = prefix.len() + 1 + 32;
    let secret_len = token.len() - id_end - 8;
    let signed = format!(
        "{}{}",
        &token[..id_end],
        fill.to_string().repeat(secret_len)
    );
    format!("{signed}{:08x}", crc32fast::hash(signed.as_bytes()))
}

/// `token` with its id replaced (an id no store holds), the checksum recomputed.
pub fn unknown_id(token: &str, prefix: &str) -> String {
    let body = prefix.len() + 1;
    let signed = format!(
        "{}{}{}",
        &token[..body],
        "f".repeat(32),
        &token[body + 32..token.len() - 8]
    );
    format!("{signed}{:08x}", crc32fast::hash(signed.as_bytes()))
}

/// Time `a` and `b` in alternation, one call each per round, and return their median
/// times in nanoseconds: robust to a noisy neighbour, which moves separate benchmarks by
/// more than the difference looked for.
pub fn interleaved_medians(rounds: usize, a: &mut dyn FnMut(), b: &mut dyn FnMut()) -> (f64, f64) {
    let (mut ta, mut tb) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        a();
        ta.push(start.elapsed().as_nanos() as f64);
        let start = std::time::Instant::now();
        b();
        tb.push(start.elapsed().as_nanos() as f64);
    }
    ta.sort_by(f64::total_cmp);
    tb.sort_by(f64::total_cmp);
    (ta[rounds / 2], tb[rounds / 2])
}
