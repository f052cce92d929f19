//! Settings validation: the field errors of a merged settings document, with PocketBase's
//! codes, messages and nesting (measured on v0.40.6). A zero number skips its min/max check,
//! as ozzo-validation does.
//!
//! Invariant: pure functions of the settings JSON (no I/O, no state).

use crate::client_ip::IpNet;
use crate::error::field_error;
use crate::model::record::is_email;
use serde_json::{json, Map, Value};

/// Field errors of a settings document, nested as PocketBase nests them.
#[derive(Default)]
struct Errors(Map<String, Value>);

impl Errors {
    fn add(&mut self, path: &[&str], error: Value) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut map = &mut self.0;
        for segment in parents {
            let entry = map
                .entry(segment.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(next) = entry else {
                return;
            };
            map = next;
        }
        map.entry(last.to_string()).or_insert(error);
    }
}

fn required() -> Value {
    field_error("validation_required", "Cannot be blank.", None)
}

fn min_error(threshold: i64) -> Value {
    field_error(
        "validation_min_greater_equal_than_required",
        &format!("Must be no less than {threshold}."),
        Some(json!({"threshold": threshold})),
    )
}

fn invalid_value() -> Value {
    field_error("validation_in_invalid", "Must be a valid value.", None)
}

fn text<'a>(settings: &'a Value, pointer: &str) -> &'a str {
    settings
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn int(settings: &Value, pointer: &str) -> i64 {
    settings
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn flag(settings: &Value, pointer: &str) -> bool {
    settings
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// An integer: `Required` when asked (0 is blank), then `Min` (0 skips it, as ozzo does).
fn check_int(errors: &mut Errors, path: &[&str], value: i64, required_now: bool, min: i64) {
    if value == 0 {
        if required_now {
            errors.add(path, required());
        }
    } else if value < min {
        errors.add(path, min_error(min));
    }
}

/// A DNS name or an IP address (govalidator's `IsHost` shape).
pub fn is_host(text: &str) -> bool {
    if client_ip_parse(text) {
        return true;
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn client_ip_parse(text: &str) -> bool {
    text.parse::<std::net::IpAddr>().is_ok()
}

/// A URL as ozzo's `is.URL` accepts it: an optional `scheme://`, a host (name, IP or
/// `[IPv6]`) with an optional port, then an optional path, query or fragment.
pub fn is_url(text: &str) -> bool {
    if text.is_empty() || text.len() > 2083 || text.contains(char::is_whitespace) {
        return false;
    }
    let rest = match text.split_once("://") {
        Some((scheme, rest)) => {
            let valid_scheme = scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !valid_scheme {
                return false;
            }
            rest
        }
        None => text,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
        match inner.split_once(']') {
            Some((v6, after)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, after.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(host_port), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    host.is_none_or(is_host)
}

/// `#rrggbb`.
fn check_color(errors: &mut Errors, color: &str) {
    if color.is_empty() {
        return;
    }
    if color.chars().count() != 7 {
        errors.add(
            &["meta", "accentColor"],
            field_error(
                "validation_length_invalid",
                "The length must be exactly 7.",
                Some(json!({"max": 7, "min": 7})),
            ),
        );
    } else if !color.starts_with('#') || !color[1..].bytes().all(|b| b.is_ascii_hexdigit()) {
        errors.add(
            &["meta", "accentColor"],
            field_error(
                "validation_is_hex_color",
                "Must be a valid hexadecimal color code.",
                None,
            ),
        );
    }
}

fn cron_error(message: &str) -> Value {
    field_error("validation_invalid_cron", message, None)
}

/// Validates a 5-field cron expression or a macro; the error message on failure.
pub fn check_cron(expr: &str) -> Result<(), String> {
    const MACROS: &[&str] = &[
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    if MACROS.contains(&expr) {
        return Ok(());
    }
    let segments: Vec<&str> = expr.split(' ').collect();
    if segments.len() != 5 || segments.iter().any(|s| s.is_empty()) {
        return Err("Invalid cron expression - must be a valid macro or to have exactly 5 space separated segments.".into());
    }
    let bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)];
    for (segment, (min, max)) in segments.iter().zip(bounds) {
        for part in segment.split(',') {
            check_cron_part(part, min, max)?;
        }
    }
    Ok(())
}

fn cron_number(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing \"{text}\": invalid syntax"))
}

fn check_cron_part(part: &str, min: i64, max: i64) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(cron_number(step)?)),
        None => (part, None),
    };
    if let Some(step) = step {
        if step < 1 || step > max {
            return Err(format!(
                "Invalid segment step boundary - the step must be between 1 and the {max}."
            ));
        }
    }
    if range == "*" {
        return Ok(());
    }
    match range.split_once('-') {
        Some((low, high)) => {
            let low = cron_number(low)?;
            let high = cron_number(high)?;
            if low < min || low > max {
                return Err(format!(
                    "Invalid segment range minimum - must be between {min} and {max}."
                ));
            }
            if high < low || high > max {
                return Err(format!(
                    "Invalid segment range maximum - must be between {low} and {max}."
                ));
            }
        }
        None => {
            let value = cron_number(range)?;
            if value < min || value > max {
                return Err(
                    "Invalid segment value - must be between the min and max of the segment."
                        .into(),
                );
            }
        }
    }
    Ok(())
}

fn check_s3(errors: &mut Errors, settings: &Value, prefix: &[&str]) {
    let pointer = format!("/{}", prefix.join("/"));
    if !flag(settings, &format!("{pointer}/enabled")) {
        return;
    }
    for key in ["accessKey", "bucket", "endpoint", "region", "secret"] {
        let value = text(settings, &format!("{pointer}/{key}"));
        let mut path = prefix.to_vec();
        path.push(key);
        if value.is_empty() {
            errors.add(&path, required());
        } else if key == "endpoint" && !is_url(value) {
            errors.add(
                &path,
                field_error("validation_is_url", "Must be a valid URL.", None),
            );
        }
    }
}

/// Checks a list of IPs / CIDR subnets; errors by index.
fn check_ip_list(errors: &mut Errors, settings: &Value, pointer: &str, path: &[&str]) {
    let Some(list) = settings.pointer(pointer).and_then(Value::as_array) else {
        return;
    };
    for (index, item) in list.iter().enumerate() {
        let entry = item.as_str().unwrap_or("");
        let index = index.to_string();
        let mut full = path.to_vec();
        full.push(&index);
        if entry.is_empty() {
            errors.add(&full, required());
        } else if IpNet::parse(entry).is_none() || entry.trim() != entry {
            // The code's spelling is PocketBase's.
            errors.add(
                &full,
                field_error(
                    "validation_invlaid_ip_or_subnet",
                    "Invalid IP or CIDR subnet.",
                    None,
                ),
            );
        }
    }
}

/// `^(\w+ /[\w/-]*|/[\w/-]*|\w+:\w+|\*:\w+|\w+)$` with ASCII `\w`.
pub fn is_rate_limit_label(label: &str) -> bool {
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let path = |s: &str| {
        s.starts_with('/')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'-'))
    };
    if let Some((method, rest)) = label.split_once(' ') {
        return word(method) && path(rest);
    }
    if label.starts_with('/') {
        return path(label);
    }
    if let Some((left, right)) = label.split_once(':') {
        return (left == "*" || word(left)) && word(right);
    }
    word(label)
}

fn check_rate_limits(errors: &mut Errors, settings: &Value) {
    let rules = settings
        .pointer("/rateLimits/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if flag(settings, "/rateLimits/enabled") && rules.is_empty() {
        errors.add(&["rateLimits", "rules"], required());
    }
    for (index, rule) in rules.iter().enumerate() {
        let index_text = index.to_string();
        let path = |field: &'static str| ["rateLimits", "rules", "", field];
        let at = |field: &'static str| {
            let mut p = path(field);
            p[2] = &index_text;
            p
        };
        let label = rule.get("label").and_then(Value::as_str).unwrap_or("");
        let audience = rule.get("audience").and_then(Value::as_str).unwrap_or("");
        if label.is_empty() {
            errors.add(&at("label"), required());
        } else if !is_rate_limit_label(label) {
            errors.add(
                &at("label"),
                field_error(
                    "validation_match_invalid",
                    "Must be in a valid format.",
                    None,
                ),
            );
        } else {
            let conflict = rules[..index].iter().any(|other| {
                let other_audience = other.get("audience").and_then(Value::as_str).unwrap_or("");
                other.get("label").and_then(Value::as_str) == Some(label)
                    && (other_audience == audience
                        || other_audience.is_empty()
                        || audience.is_empty())
            });
            if conflict {
                errors.add(
                    &at("label"),
                    field_error(
                        "validation_conflicting_rate_limit_rule",
                        &format!("Rate limit rule configuration with label {label} already exists or conflicts with another rule."),
                        Some(json!({"label": label})),
                    ),
                );
            }
        }
        if !["", "@guest", "@auth"].contains(&audience) {
            errors.add(&at("audience"), invalid_value());
        }
        for field in ["duration", "maxRequests"] {
            let value = rule.get(field).and_then(Value::as_i64).unwrap_or(0);
            check_int(errors, &at(field), value, true, 1);
        }
    }
    check_ip_list(
        errors,
        settings,
        "/rateLimits/excludedIPs",
        &["rateLimits", "excludedIPs"],
    );
}

/// Validates merged settings; the field errors (empty when valid).
pub fn validate(settings: &Value) -> Map<String, Value> {
    let mut errors = Errors::default();
    // meta
    let app_name = text(settings, "/meta/appName");
    if app_name.is_empty() {
        errors.add(&["meta", "appName"], required());
    } else if app_name.chars().count() > 255 {
        errors.add(
            &["meta", "appName"],
            field_error(
                "validation_length_out_of_range",
                "The length must be between 1 and 255.",
                Some(json!({"max": 255, "min": 1})),
            ),
        );
    }
    let app_url = text(settings, "/meta/appURL");
    if app_url.is_empty() {
        errors.add(&["meta", "appURL"], required());
    } else if !is_url(app_url) {
        errors.add(
            &["meta", "appURL"],
            field_error("validation_is_url", "Must be a valid URL.", None),
        );
    }
    if text(settings, "/meta/senderName").is_empty() {
        errors.add(&["meta", "senderName"], required());
    }
    let sender = text(settings, "/meta/senderAddress");
    if sender.is_empty() {
        errors.add(&["meta", "senderAddress"], required());
    } else if !is_email(sender) {
        errors.add(
            &["meta", "senderAddress"],
            field_error(
                "validation_is_email",
                "Must be a valid email address.",
                None,
            ),
        );
    }
    check_color(&mut errors, text(settings, "/meta/accentColor"));
    // smtp
    let smtp_on = flag(settings, "/smtp/enabled");
    let host = text(settings, "/smtp/host");
    if smtp_on && host.is_empty() {
        errors.add(&["smtp", "host"], required());
    } else if !host.is_empty() && !is_host(host) {
        errors.add(
            &["smtp", "host"],
            field_error(
                "validation_is_host",
                "Must be a valid IP address or DNS name.",
                None,
            ),
        );
    }
    check_int(
        &mut errors,
        &["smtp", "port"],
        int(settings, "/smtp/port"),
        smtp_on,
        0,
    );
    if !["", "PLAIN", "LOGIN"].contains(&text(settings, "/smtp/authMethod")) {
        errors.add(&["smtp", "authMethod"], invalid_value());
    }
    let local_name = text(settings, "/smtp/localName");
    if !local_name.is_empty() && !is_host(local_name) {
        errors.add(
            &["smtp", "localName"],
            field_error(
                "validation_is_host",
                "Must be a valid IP address or DNS name.",
                None,
            ),
        );
    }
    // s3 and backups
    check_s3(&mut errors, settings, &["s3"]);
    check_s3(&mut errors, settings, &["backups", "s3"]);
    let cron = text(settings, "/backups/cron");
    if !cron.is_empty() {
        if let Err(message) = check_cron(cron) {
            errors.add(&["backups", "cron"], cron_error(&message));
        }
    }
    check_int(
        &mut errors,
        &["backups", "cronMaxKeep"],
        int(settings, "/backups/cronMaxKeep"),
        !cron.is_empty(),
        1,
    );
    // batch
    let batch_on = flag(settings, "/batch/enabled");
    check_int(
        &mut errors,
        &["batch", "maxRequests"],
        int(settings, "/batch/maxRequests"),
        batch_on,
        0,
    );
    check_int(
        &mut errors,
        &["batch", "timeout"],
        int(settings, "/batch/timeout"),
        batch_on,
        0,
    );
    check_int(
        &mut errors,
        &["batch", "maxBodySize"],
        int(settings, "/batch/maxBodySize"),
        false,
        0,
    );
    // logs
    check_int(
        &mut errors,
        &["logs", "maxDays"],
        int(settings, "/logs/maxDays"),
        false,
        0,
    );
    check_int(
        &mut errors,
        &["logs", "maxDataSize"],
        int(settings, "/logs/maxDataSize"),
        false,
        0,
    );
    // rate limits, superuser IPs
    check_rate_limits(&mut errors, settings);
    check_ip_list(&mut errors, settings, "/superuserIPs", &["superuserIPs"]);
    errors.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in [
            "test_a",
            "users:create",
            "*:create",
            "/",
            "/api",
            "POST /api/collections/",
            "post /api",
            "/a-b/",
            "_:_",
            "1 /",
            "/a//b",
            "GET",
        ] {
            assert!(is_rate_limit_label(ok), "{ok}");
        }
        for bad in [
            "GET  /a",
            "/a b",
            "/a?x",
            "*",
            "*:*",
            "a:*",
            "x:y:z",
            "/a.b",
            "users:",
            ":create",
            " /a",
            "/a ",
            "**:x",
            "a-b",
            "x:cre-ate",
        ] {
            assert!(!is_rate_limit_label(bad), "{bad}");
        }
    }

    #[test]
    fn urls_and_hosts() {
        for ok in [
            "http://localhost:8090",
            "ftp://x",
            "localhost:8090",
            "https://a.b/c?d#e",
            "http://[::1]:80/",
            "http://user:pw@host.com",
        ] {
            assert!(is_url(ok), "{ok}");
        }
        for bad in [
            "http://",
            "http://a b",
            "",
            "://x",
            "http://:80",
            "http://h:port",
        ] {
            assert!(!is_url(bad), "{bad}");
        }
        assert!(is_host("smtp.example.com"));
        assert!(is_host("10.0.0.1"));
        assert!(!is_host("h h"));
        assert!(!is_host("bad name!"));
    }

    #[test]
    fn cron() {
        assert!(check_cron("1,2,3 * * * *").is_ok());
        assert!(check_cron("1-5/2 * * * *").is_ok());
        assert!(check_cron("@daily").is_ok());
        for (expr, start) in [
            ("x * * * *", "strconv"),
            ("*/0 * * * *", "Invalid segment step"),
            ("5-1 * * * *", "Invalid segment range maximum"),
            ("0 0 1 1 7", "Invalid segment value"),
            ("@every 5m", "Invalid cron expression"),
            ("0  0 * * *", "Invalid cron expression"),
        ] {
            let err = check_cron(expr).expect_err(expr);
            assert!(err.starts_with(start), "{expr}: {err}");
        }
    }
}
