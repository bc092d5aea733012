//! Timestamps in the textual forms OpenStack APIs use.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Formats as Keystone does for token times: microseconds and a `Z`
/// (`2025-01-01T12:00:00.000000Z`).
pub fn iso8601_micros(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Formats with whole seconds and a `Z` (`2025-01-01T12:00:00Z`), as most
/// resources' `created_at` are shown.
pub fn iso8601(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses the times clients send (`2025-01-01T12:00:00Z`, with or without
/// fractions or an offset, or without any zone, which means UTC).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| Utc.from_utc_datetime(&naive))
}

/// Converts unix seconds (as stored in the database) to a time.
pub fn from_unix(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_form_matches_keystone() {
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(iso8601_micros(at), "2025-01-01T12:00:00.000000Z");
        assert_eq!(iso8601(at), "2025-01-01T12:00:00Z");
    }

    #[test]
    fn parse_accepts_zone_less_times() {
        let at = parse("2030-05-01T10:00:00").unwrap();
        assert_eq!(iso8601(at), "2030-05-01T10:00:00Z");
        assert!(parse("tomorrow").is_none());
    }
}
