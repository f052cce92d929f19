//! Named security limits of the rules language.
//!
//! Every input path checks one of these constants; they mirror PocketBase v0.40.6
//! (`docs/wire/rules.md` "Syntax", `docs/wire/records.md` "Lists") plus a guard against
//! deep parenthesis nesting that would otherwise grow the parser's stack.
//!
//! Invariants:
//! 1. Limits are checked before the work they bound (length before lexing, depth before
//!    recursing).

/// Longest client filter, in characters.
pub const FILTER_CHARS_MAX: usize = 3500;
/// Longest collection rule, in characters (rules are written by superusers).
pub const RULE_CHARS_MAX: usize = 16_384;
/// Most comparisons in one expression.
pub const COMPARISONS_MAX: usize = 200;
/// Most relation hops in one identifier path.
pub const RELATION_DEPTH_MAX: usize = 6;
/// Most nested function calls (`strftime(strftime(..))` is 2).
pub const FUNCTION_NESTING_MAX: usize = 2;
/// Most nested parenthesis groups.
pub const GROUP_NESTING_MAX: usize = 64;
/// Most arguments in one function call.
pub const FUNCTION_ARGS_MAX: usize = 10;
/// Most modifiers of one `strftime(format, time, modifiers…)` call (as PocketBase).
pub const STRFTIME_MODIFIERS_MAX: usize = 8;
/// Most sort fields.
pub const SORT_FIELDS_MAX: usize = 8;
/// Longest single sort field, in characters.
pub const SORT_FIELD_CHARS_MAX: usize = 255;
