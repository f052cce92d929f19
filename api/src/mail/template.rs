//! The e-mail templates of auth collections and their placeholders, as PocketBase renders
//! them (measured on v0.40.6: subject and body of the collection's template with
//! `{APP_NAME}`, `{APP_URL}`, `{TOKEN}`, `{OTP}`, `{OTP_ID}`, `{ALERT_INFO}` and
//! `{RECORD:<field>}` resolved; the body inside an HTML document; a plain-text alternative
//! where links read `[text](href)`).
//!
//! Invariants: rendering is one left-to-right pass of substitution (no template language; a
//! substituted value is never scanned again, so a record's values cannot inject placeholders);
//! hidden fields (`password`, `tokenKey`) are never offered as `{RECORD:*}`.

use crate::model::Collection;
use serde_json::{Map, Value};

/// Which template of an auth collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateKind {
    /// `verificationTemplate`.
    Verification,
    /// `resetPasswordTemplate`.
    PasswordReset,
    /// `confirmEmailChangeTemplate`.
    EmailChange,
    /// `otp.emailTemplate`.
    Otp,
    /// `authAlert.emailTemplate`.
    LoginAlert,
}

impl TemplateKind {
    /// The name used by `POST /api/settings/test/email` and in log lines.
    pub fn name(self) -> &'static str {
        match self {
            TemplateKind::Verification => "verification",
            TemplateKind::PasswordReset => "password-reset",
            TemplateKind::EmailChange => "email-change",
            TemplateKind::Otp => "otp",
            TemplateKind::LoginAlert => "login-alert",
        }
    }

    /// Parses a test e-mail `template` value.
    pub fn from_name(name: &str) -> Option<TemplateKind> {
        [
            TemplateKind::Verification,
            TemplateKind::PasswordReset,
            TemplateKind::EmailChange,
            TemplateKind::Otp,
            TemplateKind::LoginAlert,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }

    /// `(subject, body)` of the collection's template (defaults applied by the model).
    pub fn template(self, collection: &Collection) -> (String, String) {
        let option = match self {
            TemplateKind::Verification => collection.auth_option("verificationTemplate"),
            TemplateKind::PasswordReset => collection.auth_option("resetPasswordTemplate"),
            TemplateKind::EmailChange => collection.auth_option("confirmEmailChangeTemplate"),
            TemplateKind::Otp => collection
                .auth_option("otp")
                .get("emailTemplate")
                .cloned()
                .unwrap_or(Value::Null),
            TemplateKind::LoginAlert => collection
                .auth_option("authAlert")
                .get("emailTemplate")
                .cloned()
                .unwrap_or(Value::Null),
        };
        let (default_subject, default_body) = self.default_template();
        let text = |key: &str, default: &str| {
            option
                .get(key)
                .and_then(Value::as_str)
                .filter(|text| !text.trim().is_empty())
                .unwrap_or(default)
                .to_string()
        };
        (text("subject", default_subject), text("body", default_body))
    }

    /// PocketBase's default template (v0.40.6, measured), used for a missing or empty
    /// subject/body (a partial PATCH of `otp` or `authAlert` may drop `emailTemplate`).
    pub fn default_template(self) -> (&'static str, &'static str) {
        match self {
            TemplateKind::Verification => ("Verify your {APP_NAME} email", "<p>Hello,</p>\n<p>Thank you for joining us at {APP_NAME}.</p>\n<p>Click on the button below to verify your email address.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Verify</a>\n</p>\n<p><i>If you didn't recently register, please ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>"),
            TemplateKind::PasswordReset => ("Reset your {APP_NAME} password", "<p>Hello,</p>\n<p>Click on the button below to reset your password.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Reset password</a>\n</p>\n<p><i>If you didn't ask to reset your password, please ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>"),
            TemplateKind::EmailChange => ("Confirm your {APP_NAME} new email address", "<p>Hello,</p>\n<p>Click on the button below to confirm your new email address.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Confirm new email</a>\n</p>\n<p><i>If you didn't ask to change your email address, please ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>"),
            TemplateKind::Otp => ("OTP for {APP_NAME}", "<p>Hello,</p>\n<p>Your one-time password is: <strong>{OTP}</strong></p>\n<p><i>If you didn't ask for the one-time password, you can ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>"),
            TemplateKind::LoginAlert => ("Login from a new location", "<p>Hello,</p>\n<p>We noticed a login to your {APP_NAME} account from a new location:</p>\n<p><em>{ALERT_INFO}</em></p>\n<p><strong>If this wasn't you, you should immediately change your {APP_NAME} account password to revoke access from all other locations.</strong></p>\n<p>If this was you, you may disregard this email.</p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>"),
        }
    }
}

/// Record fields never offered to templates.
const HIDDEN_RECORD_FIELDS: [&str; 2] = ["password", "tokenKey"];

/// Resolves the placeholders in `text` in one pass: `{NAME}` from `values`,
/// `{RECORD:<field>}` from `record`; anything else (and any text a value brings in) is kept
/// as is.
pub fn render(text: &str, values: &[(&str, &str)], record: Option<&Map<String, Value>>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after
            .find(['}', '{'])
            .filter(|at| after.as_bytes()[*at] == b'}')
        else {
            out.push('{');
            rest = after;
            continue;
        };
        let name = &after[..close];
        match resolve(name, values, record) {
            Some(value) => out.push_str(&value),
            None => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn resolve(
    name: &str,
    values: &[(&str, &str)],
    record: Option<&Map<String, Value>>,
) -> Option<String> {
    if let Some(field) = name.strip_prefix("RECORD:") {
        if HIDDEN_RECORD_FIELDS.contains(&field) {
            return None;
        }
        return match record?.get(field)? {
            Value::String(text) => Some(text.clone()),
            Value::Null => Some(String::new()),
            other => Some(other.to_string()),
        };
    }
    values
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| (*value).to_string())
}

/// The body fragment inside a minimal HTML document.
pub fn html_document(body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\" />\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
}

/// A plain-text rendering of an HTML fragment: tags dropped, `<a href="x">t</a>` as
/// `[t](x)`, `<br>` and block ends as line breaks, the common entities decoded.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut link: Option<String> = None;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = &rest[start + 1..start + end];
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let closing = tag.starts_with('/');
        match (name.as_str(), closing) {
            ("a", false) => {
                link = attribute(tag, "href");
                out.push('[');
            }
            ("a", true) => {
                out.push(']');
                if let Some(href) = link.take() {
                    out.push('(');
                    out.push_str(&href);
                    out.push(')');
                }
            }
            ("br", _) | ("p", true) | ("div", true) | ("li", true) => out.push('\n'),
            _ => {}
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let lines: Vec<&str> = decoded
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    lines.join("\n")
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!("{name}="))? + name.len() + 1;
    let rest = &tag[at..];
    let quote = rest.chars().next()?;
    if quote == '"' || quote == '\'' {
        let inner = &rest[1..];
        inner.find(quote).map(|end| inner[..end].to_string())
    } else {
        rest.split_whitespace().next().map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_and_record_fields() {
        let record = json!({"email": "a@b.c", "password": "h", "tokenKey": "k", "n": 3});
        let out = render(
            "{APP_NAME} {TOKEN} {RECORD:email} {RECORD:n} {RECORD:password} {RECORD:tokenKey}",
            &[("APP_NAME", "App"), ("TOKEN", "t{RECORD:email}")],
            record.as_object(),
        );
        // One pass: a value bringing a placeholder in keeps it as text; hidden fields stay
        // unresolved.
        assert_eq!(
            out,
            "App t{RECORD:email} a@b.c 3 {RECORD:password} {RECORD:tokenKey}"
        );
        assert_eq!(
            render("{{APP_NAME}} {X", &[("APP_NAME", "A")], None),
            "{A} {X"
        );
    }

    #[test]
    fn plain_text_keeps_links() {
        let text = plain_text(
            "<p>Hello,</p>\n<p>\n  <a class=\"btn\" href=\"http://x/y?a=1&amp;b\" target=\"_blank\">Verify</a>\n</p><p>Thanks,<br/>\n  A &amp; B team</p>",
        );
        assert_eq!(
            text,
            "Hello,\n[Verify](http://x/y?a=1&b)\nThanks,\nA & B team"
        );
    }
}
