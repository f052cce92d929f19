//! The syntax tree of a filter or rule, and its canonical text form.
//!
//! The tree is independent of any schema: identifiers are split into a root
//! (`@request.auth`, `@collection.x:alias`, a macro, or a plain field path), the path
//! segments and an optional modifier, but not checked against fields. Resolution happens
//! in `resolve.rs` at compile/eval time, so one tree serves every request.
//!
//! Invariants:
//! 1. `Display` prints text that parses back to an equal tree (`&&`/`||` chains are
//!    left-associative, so a right operand of the same operator is parenthesised), for
//!    every tree the parser can produce (a text literal never ends with `\`).
//! 2. Every string in the tree is user text and must only ever reach SQL as a bound
//!    parameter (literals) or after an allow-list lookup (identifiers).

use std::fmt::{self, Display};

/// A boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `left && right`.
    And(Box<Expr>, Box<Expr>),
    /// `left || right`.
    Or(Box<Expr>, Box<Expr>),
    /// One comparison.
    Cmp(Box<Comparison>),
}

/// `left op right`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Left operand.
    pub left: Operand,
    /// Operator.
    pub op: CmpOp,
    /// Right operand.
    pub right: Operand,
}

/// Comparison operator kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `~` (contains / LIKE)
    Like,
    /// `!~`
    NotLike,
}

/// A comparison operator; `any` is the `?`-prefixed "at least one" variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CmpOp {
    /// Which comparison.
    pub kind: OpKind,
    /// `true` for `?=`, `?!=`, ...
    pub any: bool,
}

/// An operand of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number literal.
    Number(f64),
    /// A quoted string literal (escapes already removed).
    Text(String),
    /// An identifier.
    Ident(Ident),
    /// A function call.
    Func(Func),
}

/// Known functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FuncName {
    /// `strftime(format [, time [, modifier...]])`
    Strftime,
    /// `geoDistance(lonA, latA, lonB, latB)`
    GeoDistance,
}

/// A function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Func {
    /// Which function.
    pub name: FuncName,
    /// Arguments.
    pub args: Vec<Operand>,
}

/// Datetime macros, evaluated per request in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Macro {
    Now,
    Yesterday,
    Tomorrow,
    TodayStart,
    TodayEnd,
    MonthStart,
    MonthEnd,
    YearStart,
    YearEnd,
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
    Weekday,
}

impl Macro {
    /// All macros with their names (without `@`).
    pub const ALL: [(Macro, &'static str); 16] = [
        (Macro::Now, "now"),
        (Macro::Yesterday, "yesterday"),
        (Macro::Tomorrow, "tomorrow"),
        (Macro::TodayStart, "todayStart"),
        (Macro::TodayEnd, "todayEnd"),
        (Macro::MonthStart, "monthStart"),
        (Macro::MonthEnd, "monthEnd"),
        (Macro::YearStart, "yearStart"),
        (Macro::YearEnd, "yearEnd"),
        (Macro::Second, "second"),
        (Macro::Minute, "minute"),
        (Macro::Hour, "hour"),
        (Macro::Day, "day"),
        (Macro::Month, "month"),
        (Macro::Year, "year"),
        (Macro::Weekday, "weekday"),
    ];

    /// Name without `@`.
    pub fn name(self) -> &'static str {
        Macro::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map(|(_, n)| *n)
            .unwrap_or("now")
    }
}

/// Identifier modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// `:isset`
    Isset,
    /// `:changed`
    Changed,
    /// `:length`
    Length,
    /// `:each`
    Each,
    /// `:lower`
    Lower,
}

impl Modifier {
    /// Name without `:`.
    pub fn name(self) -> &'static str {
        match self {
            Modifier::Isset => "isset",
            Modifier::Changed => "changed",
            Modifier::Length => "length",
            Modifier::Each => "each",
            Modifier::Lower => "lower",
        }
    }

    /// Parses a modifier name.
    pub fn from_name(name: &str) -> Option<Modifier> {
        Some(match name {
            "isset" => Modifier::Isset,
            "changed" => Modifier::Changed,
            "length" => Modifier::Length,
            "each" => Modifier::Each,
            "lower" => Modifier::Lower,
            _ => return None,
        })
    }
}

/// Where an identifier starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// A field path of the current collection.
    Field,
    /// `@now` and friends (path empty).
    Macro(Macro),
    /// `@request.auth.<path>`
    RequestAuth,
    /// `@request.body.<path>`
    RequestBody,
    /// `@request.query.<param>`
    RequestQuery,
    /// `@request.headers.<name>`
    RequestHeaders,
    /// `@request.method` (path empty)
    RequestMethod,
    /// `@request.context` (path empty)
    RequestContext,
    /// `@collection.<name>[:alias].<path>`
    Collection {
        /// Collection name or id.
        name: String,
        /// Optional join alias.
        alias: Option<String>,
    },
}

/// An identifier split into root, path and modifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// Where the path starts.
    pub root: Root,
    /// Path segments after the root (never empty for `Field`, `Collection`, auth/body/query/headers).
    pub path: Vec<String>,
    /// Trailing `:modifier`.
    pub modifier: Option<Modifier>,
}

/// One `sort` item.
#[derive(Debug, Clone, PartialEq)]
pub enum SortItem {
    /// `@random`
    Random,
    /// `@rowid`, ascending or descending.
    RowId {
        /// `true` for `-@rowid`.
        desc: bool,
    },
    /// A field path.
    Field {
        /// The identifier (root `Field`, may have `:lower`/`:length`).
        ident: Ident,
        /// `true` for `-field`.
        desc: bool,
    },
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Eq => "=",
            OpKind::Neq => "!=",
            OpKind::Gt => ">",
            OpKind::Gte => ">=",
            OpKind::Lt => "<",
            OpKind::Lte => "<=",
            OpKind::Like => "~",
            OpKind::NotLike => "!~",
        })
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            f.write_str("?")?;
        }
        self.kind.fmt(f)
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match &self.root {
            Root::Field => String::new(),
            Root::Macro(m) => format!("@{}", m.name()),
            Root::RequestAuth => "@request.auth".into(),
            Root::RequestBody => "@request.body".into(),
            Root::RequestQuery => "@request.query".into(),
            Root::RequestHeaders => "@request.headers".into(),
            Root::RequestMethod => "@request.method".into(),
            Root::RequestContext => "@request.context".into(),
            Root::Collection { name, alias } => match alias {
                Some(alias) => format!("@collection.{name}:{alias}"),
                None => format!("@collection.{name}"),
            },
        };
        f.write_str(&prefix)?;
        for (index, segment) in self.path.iter().enumerate() {
            if index > 0 || !prefix.is_empty() {
                f.write_str(".")?;
            }
            f.write_str(segment)?;
        }
        if let Some(modifier) = self.modifier {
            write!(f, ":{}", modifier.name())?;
        }
        Ok(())
    }
}

/// Writes `text` as a double-quoted literal that the lexer reads back unchanged.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    f.write_str(&text.replace('"', "\\\""))?;
    f.write_str("\"")
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Null => f.write_str("null"),
            Operand::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Operand::Number(n) => write!(f, "{n}"),
            Operand::Text(t) => write_quoted(f, t),
            Operand::Ident(i) => i.fmt(f),
            Operand::Func(func) => {
                f.write_str(match func.name {
                    FuncName::Strftime => "strftime(",
                    FuncName::GeoDistance => "geoDistance(",
                })?;
                for (index, arg) in func.args.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    arg.fmt(f)?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.left, self.op, self.right)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Cmp(c) => c.fmt(f),
            Expr::And(l, r) => {
                write_child(f, l, matches!(**l, Expr::Or(..)))?;
                f.write_str(" && ")?;
                write_child(f, r, !matches!(**r, Expr::Cmp(_)))
            }
            Expr::Or(l, r) => {
                write_child(f, l, false)?;
                f.write_str(" || ")?;
                write_child(f, r, matches!(**r, Expr::Or(..)))
            }
        }
    }
}

fn write_child(f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({e})")
    } else {
        e.fmt(f)
    }
}

impl Expr {
    /// Calls `visit` for every comparison, left to right.
    pub fn for_each_comparison<'a>(&'a self, visit: &mut dyn FnMut(&'a Comparison)) {
        match self {
            Expr::Cmp(c) => visit(c),
            Expr::And(l, r) | Expr::Or(l, r) => {
                l.for_each_comparison(visit);
                r.for_each_comparison(visit);
            }
        }
    }
}

impl Operand {
    /// Calls `visit` for every identifier in this operand (function arguments included).
    pub fn for_each_ident<'a>(&'a self, visit: &mut dyn FnMut(&'a Ident)) {
        match self {
            Operand::Ident(i) => visit(i),
            Operand::Func(func) => func.args.iter().for_each(|a| a.for_each_ident(visit)),
            _ => {}
        }
    }
}
