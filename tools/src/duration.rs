//! Duration text (`30d`, `12h`, `15m`, `45s`, `500ms`) for retention windows, shared by
//! `pb-tools compact --retain` and `pocketlog serve --compact-retain`.

use anyhow::{bail, Context, Result};

/// Parses a duration such as `30d`, `12h`, `15m`, `45s` or `500ms` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration such as 7d, 12h, 30m or 45s"))?;
    let factor = match unit {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        other => bail!("unknown duration unit {other:?} in {text:?} (use ms, s, m, h, d or w)"),
    };
    number
        .checked_mul(factor)
        .with_context(|| format!("duration {text:?} is too large"))
}
