//! Lexer: filter text to tokens.
//!
//! Does not interpret identifiers (that is the parser's job) and never allocates more than
//! the input size. Works on `char`s, so any UTF-8 input (NUL bytes included) is handled.
//!
//! Invariants:
//! 1. Never panics; every malformed input is a `RuleError::Syntax`.
//! 2. A quoted text ends at the first quote char of its kind not preceded by `\`; the
//!    value is the inner text with every `\<quote>` replaced by `<quote>` (other
//!    backslashes are kept, so `'100\%'` keeps its LIKE escape).

use crate::ast::OpKind;
use crate::errors::RuleError;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    Ident(String),
    Text(String),
    Number(f64),
    Op(OpKind, bool),
    And,
    Or,
    LParen,
    RParen,
    Comma,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '@' || c == '#'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.' || c == ':'
}

/// Splits `input` into tokens.
pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, RuleError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let c = chars[pos];
        let next = chars.get(pos + 1).copied();
        if c.is_whitespace() {
            pos += 1;
            continue;
        }
        if c == '/' && next == Some('/') {
            while pos < chars.len() && chars[pos] != '\n' {
                pos += 1;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            let (text, end) = scan_text(&chars, pos)?;
            tokens.push(Token::Text(text));
            pos = end;
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) {
            let (number, end) = scan_number(&chars, pos)?;
            tokens.push(Token::Number(number));
            pos = end;
            continue;
        }
        if is_ident_start(c) {
            let start = pos;
            pos += 1;
            while pos < chars.len() && is_ident_continue(chars[pos]) {
                pos += 1;
            }
            tokens.push(Token::Ident(chars[start..pos].iter().collect()));
            continue;
        }
        match c {
            '(' => tokens.push(Token::LParen),
            ')' => tokens.push(Token::RParen),
            ',' => tokens.push(Token::Comma),
            '&' | '|' => {
                if next != Some(c) {
                    return Err(RuleError::Syntax(format!("unexpected character {c:?}")));
                }
                tokens.push(if c == '&' { Token::And } else { Token::Or });
                pos += 2;
                continue;
            }
            '=' | '!' | '<' | '>' | '~' | '?' => {
                let (token, end) = scan_operator(&chars, pos)?;
                tokens.push(token);
                pos = end;
                continue;
            }
            other => {
                return Err(RuleError::Syntax(format!("unexpected character {other:?}")));
            }
        }
        pos += 1;
    }
    Ok(tokens)
}

fn scan_text(chars: &[char], start: usize) -> Result<(String, usize), RuleError> {
    let quote = chars[start];
    let mut pos = start + 1;
    let mut prev = '\0';
    let mut inner = String::new();
    loop {
        let Some(&c) = chars.get(pos) else {
            return Err(RuleError::Syntax("unterminated quoted text".into()));
        };
        pos += 1;
        if c == quote && prev != '\\' {
            break;
        }
        inner.push(c);
        prev = c;
    }
    let escaped = format!("\\{quote}");
    Ok((inner.replace(&escaped, &quote.to_string()), pos))
}

fn scan_number(chars: &[char], start: usize) -> Result<(f64, usize), RuleError> {
    let mut pos = start;
    if chars[pos] == '-' {
        pos += 1;
    }
    while pos < chars.len() && chars[pos].is_ascii_digit() {
        pos += 1;
    }
    if chars.get(pos) == Some(&'.') {
        pos += 1;
        let fraction_start = pos;
        while pos < chars.len() && chars[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == fraction_start {
            return Err(RuleError::Syntax("invalid number".into()));
        }
    }
    if chars.get(pos).is_some_and(|c| is_ident_continue(*c)) {
        return Err(RuleError::Syntax("invalid number".into()));
    }
    let text: String = chars[start..pos].iter().collect();
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .map(|n| (n, pos))
        .ok_or_else(|| RuleError::Syntax(format!("invalid number {text:?}")))
}

fn scan_operator(chars: &[char], start: usize) -> Result<(Token, usize), RuleError> {
    let mut pos = start;
    let any = chars[pos] == '?';
    if any {
        pos += 1;
    }
    let c = chars.get(pos).copied();
    let next = chars.get(pos + 1).copied();
    let (kind, len) = match (c, next) {
        (Some('!'), Some('=')) => (OpKind::Neq, 2),
        (Some('!'), Some('~')) => (OpKind::NotLike, 2),
        (Some('>'), Some('=')) => (OpKind::Gte, 2),
        (Some('<'), Some('=')) => (OpKind::Lte, 2),
        (Some('='), _) => (OpKind::Eq, 1),
        (Some('>'), _) => (OpKind::Gt, 1),
        (Some('<'), _) => (OpKind::Lt, 1),
        (Some('~'), _) => (OpKind::Like, 1),
        _ => return Err(RuleError::Syntax("invalid operator".into())),
    };
    pos += len;
    // `>>`, `==`, `=!` and similar are not operators.
    if chars
        .get(pos)
        .is_some_and(|c| matches!(c, '=' | '!' | '<' | '>' | '~' | '?'))
    {
        return Err(RuleError::Syntax("invalid operator".into()));
    }
    Ok((Token::Op(kind, any), pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_escapes() {
        assert_eq!(
            tokenize(r"'O\'Reilly'").unwrap(),
            vec![Token::Text("O'Reilly".into())]
        );
        assert_eq!(
            tokenize(r#""O'Reilly""#).unwrap(),
            vec![Token::Text("O'Reilly".into())]
        );
        assert_eq!(
            tokenize(r"'100\%'").unwrap(),
            vec![Token::Text(r"100\%".into())]
        );
        assert!(tokenize("'abc").is_err());
        assert!(tokenize(r"'abc\'").is_err());
    }

    #[test]
    fn doubled_quotes_are_two_texts() {
        assert_eq!(
            tokenize("'o''reilly'").unwrap(),
            vec![Token::Text("o".into()), Token::Text("reilly".into())]
        );
    }

    #[test]
    fn numbers_and_operators() {
        assert_eq!(
            tokenize("a>=-1.5").unwrap(),
            vec![
                Token::Ident("a".into()),
                Token::Op(OpKind::Gte, false),
                Token::Number(-1.5)
            ]
        );
        assert_eq!(
            tokenize("?!~").unwrap(),
            vec![Token::Op(OpKind::NotLike, true)]
        );
        assert!(tokenize(">>").is_err());
        assert!(tokenize("1.").is_err());
        assert!(tokenize("a & b").is_err());
        assert!(tokenize("a // x\n&& b").unwrap().len() == 3);
    }
}
