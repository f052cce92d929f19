//! Subscription strings: `<collection>/*`, `<collection>/<recordId>`, `<collection>` (alias of
//! `/*`), each optionally followed by `?options=<urlencoded JSON>` (see
//! `docs/wire/realtime.md`).
//!
//! 1. The raw string is kept byte for byte: it is the SSE `event:` name of every delivery.
//! 2. Parsing never fails: a topic that names no collection, or whose options or filter do not
//!    parse, is stored and simply never matches anything (PocketBase accepts any string).

use crate::model::RuleKind;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The subscription option (`options.query.position`) naming the log position to stream from.
pub const POSITION_OPTION: &str = "position";

/// The marker between a topic and its options.
const OPTIONS_MARKER: &str = "?options=";

/// One parsed subscription.
#[derive(Debug, Clone)]
pub struct Topic {
    /// The subscription string exactly as the client sent it.
    pub raw: Arc<str>,
    /// Collection name or id as written.
    pub collection: String,
    /// `Some(id)` for a record topic, `None` for a collection topic.
    pub record_id: Option<String>,
    /// The `query.filter` option: `None` = no filter, `Some(None)` = a filter that does not
    /// parse (the topic never matches).
    pub filter: Option<Option<Arc<rules::Expr>>>,
    /// The `query.expand` option.
    pub expand: Option<String>,
    /// The `query.fields` option.
    pub fields: Option<String>,
    /// All `query.*` options, stringified, for `@request.query.*`.
    pub query: BTreeMap<String, String>,
    /// All `headers.*` options, names normalised, for `@request.headers.*`.
    pub headers: BTreeMap<String, String>,
    /// False when the options are not valid JSON (the topic never matches).
    pub valid: bool,
    /// The `query.position` option: the log position the client's data was read at (the
    /// `X-Pocketlog-Position` of a list); the topic delivers the commits after it.
    pub position: Option<engine::Seq>,
    /// Commits with a seq `<=` this are not delivered for this topic (set by the hub when the
    /// subscription is made: the position, or what the session had already delivered when
    /// another topic's position moved the session back).
    pub floor: engine::Seq,
}

impl Topic {
    /// The rule that guards this topic: `viewRule` for a record topic, `listRule` for a
    /// collection topic.
    pub fn rule_kind(&self) -> RuleKind {
        if self.record_id.is_some() {
            RuleKind::View
        } else {
            RuleKind::List
        }
    }
}

fn stringify(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Decodes `%XX` escapes (and `+` as space, as Go's `url.QueryUnescape` does).
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = bytes.get(index + 1..index + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                index += 3;
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a subscription string.
pub fn parse(raw: &str) -> Topic {
    let (path, options) = match raw.split_once(OPTIONS_MARKER) {
        Some((path, options)) => (path, Some(options)),
        None => (raw, None),
    };
    let (collection, record_id) = match path.split_once('/') {
        Some((collection, "*")) => (collection.to_string(), None),
        Some((collection, id)) => (collection.to_string(), Some(id.to_string())),
        None => (path.to_string(), None),
    };
    let mut topic = Topic {
        raw: Arc::from(raw),
        collection,
        record_id,
        filter: None,
        expand: None,
        fields: None,
        query: BTreeMap::new(),
        headers: BTreeMap::new(),
        valid: true,
        position: None,
        floor: 0,
    };
    let Some(options) = options else {
        return topic;
    };
    let parsed = percent_decode(options)
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|value| match value {
            Value::Object(map) => Some(map),
            _ => None,
        });
    let Some(parsed) = parsed else {
        topic.valid = false;
        return topic;
    };
    if let Some(Value::Object(query)) = parsed.get("query") {
        for (key, value) in query {
            topic.query.insert(key.clone(), stringify(value));
        }
    }
    if let Some(Value::Object(headers)) = parsed.get("headers") {
        for (key, value) in headers {
            topic.headers.insert(
                rules::RequestInfo::normalize_header_name(key),
                stringify(value),
            );
        }
    }
    let non_empty = |key: &str| {
        topic
            .query
            .get(key)
            .filter(|text| !text.trim().is_empty())
            .cloned()
    };
    topic.expand = non_empty("expand");
    topic.fields = non_empty("fields");
    topic.filter = non_empty("filter").map(|text| rules::parse(&text).ok().map(Arc::new));
    if let Some(position) = non_empty(POSITION_OPTION) {
        match position.trim().parse::<engine::Seq>() {
            Ok(seq) => topic.position = Some(seq),
            // A position that is not a seq never matches (as a filter that does not parse).
            Err(_) => topic.valid = false,
        }
    }
    topic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sdk_forms() {
        let topic = parse("messages/*");
        assert_eq!(topic.collection, "messages");
        assert!(topic.record_id.is_none());
        let topic = parse("messages/abc");
        assert_eq!(topic.record_id.as_deref(), Some("abc"));
        assert_eq!(topic.rule_kind(), RuleKind::View);
        let topic = parse("messages");
        assert_eq!(topic.rule_kind(), RuleKind::List);
        let raw = "messages/*?options=%7B%22query%22%3A%7B%22expand%22%3A%22author%22%2C%22filter%22%3A%22n%20%3E%205%22%7D%2C%22headers%22%3A%7B%22X-Custom%22%3A1%7D%7D";
        let topic = parse(raw);
        assert_eq!(&*topic.raw, raw);
        assert_eq!(topic.expand.as_deref(), Some("author"));
        assert!(matches!(topic.filter, Some(Some(_))));
        assert_eq!(topic.headers.get("x_custom").map(String::as_str), Some("1"));
        assert!(!parse("messages/*?options=%7Bnope").valid);
        let positioned = parse("m/*?options=%7B%22query%22%3A%7B%22position%22%3A42%7D%7D");
        assert_eq!(positioned.position, Some(42));
        assert!(positioned.valid);
        assert!(!parse("m/*?options=%7B%22query%22%3A%7B%22position%22%3A%22x%22%7D%7D").valid);
        assert!(matches!(
            parse("m/*?options=%7B%22query%22%3A%7B%22filter%22%3A%22((%22%7D%7D").filter,
            Some(None)
        ));
    }
}
