//! Stored file names: PocketBase's sanitized name with a random suffix (measured on v0.40.6).
//!
//! `<snake_case base>_<10 random [a-z0-9]>.<ext>`:
//! - the base is the original name without its extension, split at every character that is
//!   not an ASCII letter or digit (so path separators, dots, spaces, `..` and non-ASCII text
//!   vanish), words joined by `_`, `camelCase` split before an upper-case letter that follows
//!   a non-upper-case one, lower-cased; shorter than 3 bytes ⇒ 10 more random characters are
//!   appended, longer than 100 ⇒ cut to 100;
//! - the extension keeps its case and only `[A-Za-z0-9_.*+=#-]`; longer than 20 ⇒ `.` and its
//!   last 20 characters; `.tar.gz`-style double extensions are kept whole; none ⇒ the
//!   extension of the sniffed content type (`.png`, `.txt`, …), if it has one.
//!
//! Invariant: a stored name is never empty, never contains `/`, `\`, NUL or a leading `.`, and
//! is at most 132 bytes, so it is always a safe single path component.

use rand::Rng;

/// Alphabet of the random parts.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of the random suffix.
pub const SUFFIX_LEN: usize = 10;

/// `len` random characters from `[a-z0-9]`.
pub fn random_part(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// The final path component of a client-supplied name (both `/` and `\` separate).
fn base_name(original: &str) -> &str {
    original.rsplit(['/', '\\']).next().unwrap_or(original)
}

/// Splits `name` into (stem, extension incl. the dot), keeping `.tar.<x>` together.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) => {
            let (stem, ext) = name.split_at(dot);
            if let Some(tar) = stem.len().checked_sub(4) {
                if stem.is_char_boundary(tar) && stem[tar..].eq_ignore_ascii_case(".tar") {
                    return name.split_at(tar);
                }
            }
            (stem, ext)
        }
        None => (name, ""),
    }
}

/// Keeps the allowed extension characters; a too long extension keeps its last 20.
fn clean_ext(ext: &str) -> String {
    let clean: String = ext
        .chars()
        .filter(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '-' | '+' | '=' | '#')
        })
        .collect();
    if clean.len() > 20 {
        format!(".{}", &clean[clean.len() - 20..])
    } else {
        clean
    }
}

/// PocketBase's snake case of a file name stem (ASCII words only).
pub fn snakecase(stem: &str) -> String {
    let mut out = String::new();
    for word in stem
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        if !out.is_empty() {
            out.push('_');
        }
        let bytes = word.as_bytes();
        for (index, &byte) in bytes.iter().enumerate() {
            if byte.is_ascii_uppercase() && index > 0 && !bytes[index - 1].is_ascii_uppercase() {
                out.push('_');
            }
            out.push(char::from(byte.to_ascii_lowercase()));
        }
    }
    out
}

/// The stored name for an upload called `original` whose sniffed content type has the
/// extension `sniffed_ext` (with its dot, e.g. `.png`).
pub fn stored_name(original: &str, sniffed_ext: Option<&str>) -> String {
    let (stem, ext) = split_ext(base_name(original));
    let mut ext = clean_ext(ext);
    if ext.is_empty() || ext == "." {
        ext = sniffed_ext.unwrap_or("").to_string();
    }
    let mut stem = snakecase(stem);
    if stem.len() < 3 {
        stem.push_str(&random_part(SUFFIX_LEN));
    } else if stem.len() > 100 {
        stem.truncate(100);
    }
    format!("{stem}_{}{ext}", random_part(SUFFIX_LEN))
}

/// Whether `name` is safe as one path component under the storage root (what every stored
/// name is; used to refuse anything else that reaches the storage layer).
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a stored name into (prefix, random suffix, extension) for the checks below.
    fn parts(stored: &str, ext: &str) -> (String, String) {
        let without_ext = stored.strip_suffix(ext).expect("extension kept");
        let (prefix, suffix) = without_ext.rsplit_once('_').expect("random suffix");
        assert_eq!(suffix.len(), SUFFIX_LEN, "{stored}");
        assert!(suffix.bytes().all(|b| ALPHABET.contains(&b)), "{stored}");
        (prefix.to_string(), suffix.to_string())
    }

    #[test]
    fn names_as_the_reference_stores_them() {
        // (original, sniffed extension, expected prefix, expected extension), measured.
        let cases = [
            ("Second File.TXT", Some(".txt"), "second_file", ".TXT"),
            ("red.png", Some(".png"), "red", ".png"),
            ("MyFile.txt", None, "my_file", ".txt"),
            ("ABCFile.txt", None, "abcfile", ".txt"),
            ("a.b.c.tar.gz", None, "a_b_c", ".tar.gz"),
            ("noext", Some(".txt"), "noext", ".txt"),
            ("noext2", None, "noext2", ""),
            ("x y-z__w.TxT", None, "x_y_z_w", ".TxT"),
            ("file.t$x%t", None, "file", ".txt"),
            (
                "very.lo-ng+ext=#*abcdefghijklmnopqrstuvwxyz",
                None,
                "very",
                ".ghijklmnopqrstuvwxyz",
            ),
            ("abc.txt", None, "abc", ".txt"),
            ("../../etc/pa ss wd", Some(".png"), "pa_ss_wd", ".png"),
            ("..\\..\\win\\evil.exe", None, "evil", ".exe"),
        ];
        for (original, sniffed, prefix, ext) in cases {
            let stored = stored_name(original, sniffed);
            assert_eq!(parts(&stored, ext).0, prefix, "{original} -> {stored}");
            assert!(is_safe_component(&stored), "{stored}");
        }
    }

    #[test]
    fn short_and_non_ascii_stems_get_a_random_prefix() {
        for (original, kept, ext) in [
            ("ab.txt", "ab", ".txt"),
            ("ÄÖü 漢字.PnG", "", ".PnG"),
            (".hidden", "", ".hidden"),
            ("j.json", "j", ".json"),
        ] {
            let stored = stored_name(original, None);
            let (prefix, _) = parts(&stored, ext);
            assert_eq!(prefix.len(), kept.len() + SUFFIX_LEN, "{stored}");
            assert!(prefix.starts_with(kept), "{stored}");
            assert!(is_safe_component(&stored), "{stored}");
        }
    }

    #[test]
    fn long_stems_are_cut_and_names_stay_bounded() {
        let original = format!("{}.{}", "a".repeat(5000), "b".repeat(5000));
        let stored = stored_name(&original, None);
        assert!(stored.len() <= 132, "{}", stored.len());
        assert!(stored.starts_with(&"a".repeat(100)));
        assert!(!stored.starts_with(&"a".repeat(101)));
        assert!(is_safe_component(&stored));
        for hostile in ["", ".", "..", "/", "\0", "../x", "a\\b", ".x"] {
            let stored = stored_name(hostile, None);
            assert!(is_safe_component(&stored), "{hostile:?} -> {stored:?}");
        }
        assert!(!is_safe_component(".."));
        assert!(!is_safe_component("a/b"));
    }
}
