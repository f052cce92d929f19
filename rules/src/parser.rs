//! Parser: tokens to [`Expr`], enforcing the syntactic limits.
//!
//! Does not look at any schema. Identifiers are split into root, path and modifier here,
//! so that unknown `@request.*` roots, macros, modifiers and functions fail at parse time.
//!
//! Invariants:
//! 1. `&&` binds tighter than `||`; both chains are left-associative.
//! 2. Recursion depth is bounded by `GROUP_NESTING_MAX` and `FUNCTION_NESTING_MAX`, so no
//!    input can overflow the stack; the comparison count is bounded by `COMPARISONS_MAX`.

use crate::ast::{CmpOp, Comparison, Expr, Func, FuncName, Ident, Macro, Modifier, Operand, Root};
use crate::errors::RuleError;
use crate::lexer::{tokenize, Token};
use crate::limits::{
    COMPARISONS_MAX, FILTER_CHARS_MAX, FUNCTION_ARGS_MAX, FUNCTION_NESTING_MAX, GROUP_NESTING_MAX,
    RULE_CHARS_MAX, STRFTIME_MODIFIERS_MAX,
};

/// Parses a client filter (length limit [`FILTER_CHARS_MAX`]).
pub fn parse(input: &str) -> Result<Expr, RuleError> {
    parse_with_max(input, FILTER_CHARS_MAX)
}

/// Parses a collection rule (length limit [`RULE_CHARS_MAX`]); otherwise like [`parse`].
pub fn parse_rule(input: &str) -> Result<Expr, RuleError> {
    parse_with_max(input, RULE_CHARS_MAX)
}

fn parse_with_max(input: &str, chars_max: usize) -> Result<Expr, RuleError> {
    if input.chars().count() > chars_max {
        return Err(RuleError::Limit(format!(
            "the expression is longer than {chars_max} characters"
        )));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(RuleError::Syntax("empty expression".into()));
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        comparisons: 0,
        depth: 0,
    };
    let expr = parser.parse_or()?;
    match parser.peek() {
        None => Ok(expr),
        Some(Token::RParen) => Err(RuleError::Syntax(
            "invalid formatted group - unexpected closing bracket".into(),
        )),
        Some(other) => Err(RuleError::Syntax(format!(
            "unexpected token {} after the expression",
            describe(other)
        ))),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    comparisons: usize,
    depth: usize,
}

fn describe(token: &Token) -> String {
    match token {
        Token::Ident(i) => format!("{i:?}"),
        Token::Text(t) => format!("text {t:?}"),
        Token::Number(n) => format!("number {n}"),
        Token::Op(kind, any) => CmpOp {
            kind: *kind,
            any: *any,
        }
        .to_string(),
        Token::And => "&&".into(),
        Token::Or => "||".into(),
        Token::LParen => "(".into(),
        Token::RParen => ")".into(),
        Token::Comma => ",".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn parse_or(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.parse_and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            let right = self.parse_and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.parse_group()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.parse_group()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_group(&mut self) -> Result<Expr, RuleError> {
        if self.peek() == Some(&Token::LParen) {
            self.pos += 1;
            self.depth += 1;
            if self.depth > GROUP_NESTING_MAX {
                return Err(RuleError::Limit(format!(
                    "more than {GROUP_NESTING_MAX} nested groups"
                )));
            }
            let inner = self.parse_or()?;
            match self.next() {
                Some(Token::RParen) => {}
                _ => {
                    return Err(RuleError::Syntax(format!(
                        "invalid formatted group - missing {} closing bracket(s)",
                        self.depth
                    )))
                }
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.parse_comparison()
    }

    fn parse_comparison(&mut self) -> Result<Expr, RuleError> {
        self.comparisons += 1;
        if self.comparisons > COMPARISONS_MAX {
            return Err(RuleError::Limit(format!(
                "more than {COMPARISONS_MAX} comparisons"
            )));
        }
        let left = self.parse_operand(0)?;
        let op = match self.next() {
            Some(Token::Op(kind, any)) => CmpOp { kind, any },
            Some(other) => {
                return Err(RuleError::Syntax(format!(
                    "expected a comparison operator, got {}",
                    describe(&other)
                )))
            }
            None => return Err(RuleError::Syntax("missing comparison operator".into())),
        };
        let right = self.parse_operand(0)?;
        Ok(Expr::Cmp(Box::new(Comparison { left, op, right })))
    }

    fn parse_operand(&mut self, nesting: usize) -> Result<Operand, RuleError> {
        match self.next() {
            Some(Token::Text(t)) => Ok(Operand::Text(t)),
            Some(Token::Number(n)) => Ok(Operand::Number(n)),
            Some(Token::Ident(name)) => {
                if self.peek() == Some(&Token::LParen) {
                    self.pos += 1;
                    return self.parse_function(&name, nesting + 1);
                }
                parse_identifier(&name)
            }
            Some(other) => Err(RuleError::Syntax(format!(
                "invalid operand {}",
                describe(&other)
            ))),
            None => Err(RuleError::Syntax("missing operand".into())),
        }
    }

    fn parse_function(&mut self, name: &str, nesting: usize) -> Result<Operand, RuleError> {
        let func_name = match name {
            "strftime" => FuncName::Strftime,
            "geoDistance" => FuncName::GeoDistance,
            _ => return Err(RuleError::Syntax(format!("unknown function {name:?}"))),
        };
        if nesting > FUNCTION_NESTING_MAX {
            return Err(RuleError::Limit(format!(
                "more than {FUNCTION_NESTING_MAX} nested function calls"
            )));
        }
        let mut args = Vec::new();
        loop {
            if self.peek() == Some(&Token::RParen) {
                self.pos += 1;
                break;
            }
            if args.len() >= FUNCTION_ARGS_MAX {
                return Err(RuleError::Limit("too many function arguments".into()));
            }
            args.push(self.parse_operand(nesting)?);
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::RParen) => break,
                _ => {
                    return Err(RuleError::Syntax(format!(
                        "invalid arguments of function {name:?}"
                    )))
                }
            }
        }
        validate_function(func_name, &args)?;
        Ok(Operand::Func(Func {
            name: func_name,
            args,
        }))
    }
}

fn validate_function(name: FuncName, args: &[Operand]) -> Result<(), RuleError> {
    match name {
        FuncName::GeoDistance => {
            if args.len() != 4 {
                return Err(RuleError::Syntax(
                    "geoDistance expects exactly 4 arguments".into(),
                ));
            }
            for arg in args {
                if !matches!(arg, Operand::Number(_) | Operand::Ident(_)) {
                    return Err(RuleError::Syntax(
                        "geoDistance arguments must be identifiers or numbers".into(),
                    ));
                }
            }
        }
        FuncName::Strftime => {
            if args.is_empty() || args.len() > 2 + STRFTIME_MODIFIERS_MAX {
                return Err(RuleError::Syntax(
                    "strftime expects a format, an optional time and up to 8 modifiers".into(),
                ));
            }
            if !matches!(args[0], Operand::Text(_)) {
                return Err(RuleError::Syntax(
                    "strftime format must be a quoted string".into(),
                ));
            }
            if let Some(time) = args.get(1) {
                if matches!(time, Operand::Null | Operand::Bool(_)) {
                    return Err(RuleError::Syntax("invalid strftime time value".into()));
                }
            }
            if args.iter().skip(2).any(|a| !matches!(a, Operand::Text(_))) {
                return Err(RuleError::Syntax(
                    "strftime modifiers must be quoted strings".into(),
                ));
            }
        }
    }
    Ok(())
}

fn is_plain_segment(segment: &str) -> bool {
    !segment.is_empty() && segment.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Splits the raw identifier text into an [`Ident`] (or a `true/false/null` literal).
pub(crate) fn parse_identifier(raw: &str) -> Result<Operand, RuleError> {
    match raw.to_ascii_lowercase().as_str() {
        "true" => return Ok(Operand::Bool(true)),
        "false" => return Ok(Operand::Bool(false)),
        "null" => return Ok(Operand::Null),
        _ => {}
    }
    let invalid = || RuleError::Syntax(format!("invalid identifier {raw:?}"));
    let mut segments: Vec<&str> = raw.split('.').collect();
    // The modifier can only follow the last segment.
    let mut modifier = None;
    let is_collection_alias = raw.starts_with("@collection.") && segments.len() == 2;
    if let Some(last) = segments.last_mut() {
        if let Some((base, name)) = last.split_once(':') {
            if !is_collection_alias {
                modifier = Some(
                    Modifier::from_name(name)
                        .ok_or_else(|| RuleError::Syntax(format!("unknown modifier {name:?}")))?,
                );
                *last = base;
            }
        }
    }
    let first = segments.first().copied().unwrap_or_default();
    let (root, rest): (Root, &[&str]) = if first == "@request" {
        let kind = segments.get(1).copied().unwrap_or_default();
        let rest = segments.get(2..).unwrap_or_default();
        let root = match kind {
            "auth" => Root::RequestAuth,
            "body" => Root::RequestBody,
            "query" => Root::RequestQuery,
            "headers" => Root::RequestHeaders,
            "method" => Root::RequestMethod,
            "context" => Root::RequestContext,
            _ => return Err(invalid()),
        };
        (root, rest)
    } else if first == "@collection" {
        let target = segments.get(1).copied().unwrap_or_default();
        let (name, alias) = match target.split_once(':') {
            Some((name, alias)) => (name, Some(alias)),
            None => (target, None),
        };
        if !is_plain_segment(name) || alias.is_some_and(|a| !is_plain_segment(a)) {
            return Err(invalid());
        }
        let root = Root::Collection {
            name: name.to_string(),
            alias: alias.map(str::to_string),
        };
        (root, segments.get(2..).unwrap_or_default())
    } else if let Some(name) = first.strip_prefix('@') {
        let found = Macro::ALL.iter().find(|(_, n)| *n == name);
        match found {
            Some((m, _)) if segments.len() == 1 => (Root::Macro(*m), &[][..]),
            _ => return Err(RuleError::Syntax(format!("unknown macro {raw:?}"))),
        }
    } else {
        (Root::Field, &segments[..])
    };
    let needs_path = !matches!(
        root,
        Root::Macro(_) | Root::RequestMethod | Root::RequestContext
    );
    if needs_path == rest.is_empty() || !rest.iter().all(|s| is_plain_segment(s)) {
        return Err(invalid());
    }
    Ok(Operand::Ident(Ident {
        root,
        path: rest.iter().map(|s| s.to_string()).collect(),
        modifier,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_roundtrip() {
        let e = parse("priority = 3 || priority = 2 && done = true").unwrap();
        assert!(matches!(e, Expr::Or(..)));
        assert_eq!(e.to_string(), "priority = 3 || priority = 2 && done = true");
        let e = parse("(a = 1 || b = 2) && c = 3").unwrap();
        assert_eq!(e.to_string(), "(a = 1 || b = 2) && c = 3");
        assert_eq!(parse(&e.to_string()).unwrap(), e);
    }

    #[test]
    fn identifiers() {
        let e = parse("@collection.tnotes:n.task ?= id && tags:length > 1").unwrap();
        assert_eq!(
            e.to_string(),
            "@collection.tnotes:n.task ?= id && tags:length > 1"
        );
        assert!(parse("@request.nope = 1").is_err());
        assert!(parse("@nope = 1").is_err());
        assert!(parse("a:nope = 1").is_err());
        assert!(parse("a..b = 1").is_err());
        assert!(parse("@request.method.x = 1").is_err());
        assert!(parse("NULL = Null").is_ok());
    }

    #[test]
    fn errors() {
        for bad in [
            "priority >",
            "(priority > 1",
            "priority >> 1",
            "title ~ 'spec' ??",
            "title:lower ~ 'o''reilly'",
            "",
            "a = 1 &&",
            "nope(1) = 1",
            "strftime(strftime(strftime('%Y'))) = 1",
            "a = 1)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("strftime('%Y', strftime('%Y-%m', due)) = '1'").is_ok());
        let long = "a = 1 && ".repeat(200) + "a = 1";
        assert!(matches!(parse(&long), Err(RuleError::Limit(_))));
        let deep = "(".repeat(100) + "a = 1" + &")".repeat(100);
        assert!(matches!(parse(&deep), Err(RuleError::Limit(_))));
    }

    #[test]
    fn strftime_takes_up_to_the_modifier_limit() {
        let call = |modifiers: usize| {
            let list = vec!["'+1 day'"; modifiers].join(", ");
            format!("strftime('%Y', due, {list}) = '2030'")
        };
        assert!(parse(&call(STRFTIME_MODIFIERS_MAX)).is_ok());
        assert!(parse(&call(STRFTIME_MODIFIERS_MAX + 1)).is_err());
    }
}
