//! Command-line units: durations like `5s`, `250ms`, `20us`, `1m` (a bare number is
//! seconds).

use std::time::Duration;

/// `duration` in whole nanoseconds, as the agent's protocol and the saved runs carry
/// it (saturating: no duration given here reaches the limit).
pub fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Parses a duration for clap; the error says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 5s, 250ms, 20us, 1m"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ns, us, ms, s or m"
            ))
        }
    };
    let seconds = value * scale;
    if !seconds.is_finite() || seconds > 86_400.0 {
        return Err(format!("{text:?} is out of range (at most 24 h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20us"), Ok(Duration::from_micros(20)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("fast")
            .unwrap_err()
            .contains("not a duration"));
    }
}
