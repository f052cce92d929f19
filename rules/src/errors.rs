//! Error values of the rules language.
//!
//! Nothing here panics or formats SQL. Every failure of parsing, resolving or compiling a
//! filter, sort or rule is a [`RuleError`]; the API maps it to PocketBase's error envelope
//! with [`RuleError::status`] and [`RuleError::public_message`].
//!
//! Invariants:
//! 1. `Forbidden` is the only variant that maps to HTTP 403; all others are 400.
//! 2. Messages never contain SQL, only the user's own input or schema names.

/// A parse, resolve, limit or permission failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The text is not a well formed expression (lexer or parser).
    #[error("{0}")]
    Syntax(String),
    /// A security limit (length, comparisons, depth, nesting) was exceeded.
    #[error("{0}")]
    Limit(String),
    /// An identifier, modifier or function could not be resolved against the schema.
    #[error("{0}")]
    Resolve(String),
    /// The caller may not use this construct (for example `@request.*` in a client filter).
    #[error("{0}")]
    Forbidden(String),
}

impl RuleError {
    /// HTTP status the API should answer with.
    pub fn status(&self) -> u16 {
        match self {
            RuleError::Forbidden(_) => 403,
            _ => 400,
        }
    }

    /// The message PocketBase puts in the error envelope for a client `filter`/`sort`.
    pub fn public_message(&self) -> String {
        match self {
            RuleError::Forbidden(message) => message.clone(),
            _ => "Something went wrong while processing your request.".to_string(),
        }
    }

    /// The message for `validation_invalid_rule` when a collection rule is saved.
    pub fn invalid_rule_message(&self) -> String {
        format!("Invalid rule. Raw error: {self}.")
    }
}

/// Failure of the in-memory evaluator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The expression needs joins (relations, back-relations, `@collection`, functions
    /// that only SQLite implements); evaluate it with SQL instead.
    #[error("the expression needs the database")]
    NeedsDatabase,
    /// The expression does not resolve against the collection.
    #[error(transparent)]
    Rule(#[from] RuleError),
}
