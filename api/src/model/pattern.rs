//! Field patterns: matching with the `regex` crate, and generation for `autogeneratePattern`s
//! of the form PocketBase uses (`[a-z0-9]{15}`, literals, `[A-Z]{3}-[0-9]{4}`).
//!
//! 1. Patterns that cannot be compiled never match-fail a record (they are superuser input).
//! 2. Generation supports literals and bracket classes with `{n}`, `+`, `*`, `?`; anything else
//!    yields `None` from `compile`.

use rand::Rng;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// A compiled pattern.
pub struct Pattern {
    regex: Option<regex::Regex>,
    parts: Option<Vec<(Vec<char>, usize)>>,
}

const PATTERN_LEN_MAX: usize = 1000;

/// Distinct patterns kept per thread by [`Pattern::compile`].
const CACHE_MAX: usize = 256;

impl Pattern {
    /// Compiles a pattern; `None` when it is too long.
    ///
    /// Memoized per thread: building the regex's DFA was ~14% of the writer thread's time in
    /// the 64-client create benchmark (every create validates the `id` pattern and generates
    /// from `[a-z0-9]{15}`). The cache is cleared when it grows past `CACHE_MAX` patterns.
    pub fn compile(pattern: &str) -> Option<Arc<Pattern>> {
        thread_local! {
            static CACHE: RefCell<HashMap<String, Option<Arc<Pattern>>>> = RefCell::new(HashMap::new());
        }
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(hit) = cache.get(pattern) {
                return hit.clone();
            }
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            let compiled = Pattern::build(pattern).map(Arc::new);
            cache.insert(pattern.to_string(), compiled.clone());
            compiled
        })
    }

    fn build(pattern: &str) -> Option<Pattern> {
        if pattern.len() > PATTERN_LEN_MAX {
            return None;
        }
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .ok();
        Some(Pattern {
            regex,
            parts: generator_parts(pattern),
        })
    }

    /// True when `text` matches (or the regex is invalid).
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.as_ref().is_none_or(|regex| regex.is_match(text))
    }

    /// A random string matching the pattern ("" when it cannot be generated).
    pub fn generate(&self) -> String {
        let Some(parts) = &self.parts else {
            return String::new();
        };
        let mut rng = rand::thread_rng();
        let mut out = String::new();
        for (chars, count) in parts {
            for _ in 0..*count {
                out.push(chars[rng.gen_range(0..chars.len())]);
            }
        }
        out
    }
}

fn generator_parts(pattern: &str) -> Option<Vec<(Vec<char>, usize)>> {
    let chars: Vec<char> = pattern
        .trim_start_matches('^')
        .trim_end_matches('$')
        .chars()
        .collect();
    let mut parts = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let class: Vec<char> = if chars[index] == '[' {
            let end = chars[index..].iter().position(|&c| c == ']')? + index;
            let body = &chars[index + 1..end];
            let mut set = Vec::new();
            let mut cursor = 0;
            while cursor < body.len() {
                if cursor + 2 < body.len() && body[cursor + 1] == '-' {
                    let (start, stop) = (body[cursor], body[cursor + 2]);
                    if start > stop {
                        return None;
                    }
                    set.extend(start..=stop);
                    cursor += 3;
                } else {
                    set.push(body[cursor]);
                    cursor += 1;
                }
            }
            index = end + 1;
            set
        } else if chars[index] == '\\' && index + 1 < chars.len() {
            index += 2;
            vec![chars[index - 1]]
        } else if "()|.*+?{}".contains(chars[index]) {
            return None;
        } else {
            index += 1;
            vec![chars[index - 1]]
        };
        if class.is_empty() {
            return None;
        }
        let mut count = 1;
        if index < chars.len() && chars[index] == '{' {
            let end = chars[index..].iter().position(|&c| c == '}')? + index;
            let text: String = chars[index + 1..end].iter().collect();
            let first = text.split(',').next()?.trim().parse::<usize>().ok()?;
            count = first.min(1000);
            index = end + 1;
        } else if index < chars.len()
            && (chars[index] == '+' || chars[index] == '?' || chars[index] == '*')
        {
            count = usize::from(chars[index] == '+');
            index += 1;
        }
        parts.push((class, count));
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_ids_that_match() {
        let pattern = Pattern::compile("[a-z0-9]{15}").expect("compiles");
        let id = pattern.generate();
        assert_eq!(id.len(), 15);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert!(Pattern::compile("^[a-z0-9]+$")
            .expect("compiles")
            .is_match(&id));
        assert!(!Pattern::compile("^[a-z0-9]+$")
            .expect("compiles")
            .is_match("A!"));
    }
}
