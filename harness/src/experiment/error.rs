//! The one error of the experiment loader, and how a byte offset in the file becomes a line,
//! a column and a field name.

use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A problem with an experiment file.
///
/// Displayed as `{file}:{line}:{column}: {field}: {message}`, e.g.
/// `experiments/x.toml:14:11: faults[1].heal_at: heals at 2s, not after it starts (at = 5s)`,
/// the shape editors and CI annotations understand. A file that could not be read at all has
/// no position (`line` and `column` are 0, `field` is empty) and displays as
/// `{file}: {message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ExperimentError {
    /// The file (or directory) concerned, as given.
    pub file: PathBuf,
    /// 1-based line of the offending text; 0 when the file could not be read.
    pub line: usize,
    /// 1-based column (in characters) of the offending text; 0 when the file could not be
    /// read.
    pub column: usize,
    /// Dotted path of the offending key, e.g. `workload.rate_per_s`, `faults[1].heal_at`
    /// (fault indexes count from 0 in file order); `syntax` for a TOML syntax error not
    /// inside any key or in a table header; [`NOT_UTF8_FIELD`] when the file is not UTF-8
    /// text; empty when the file could not be read.
    pub field: String,
    /// What is wrong, and where useful, what would be right.
    pub message: String,
}

/// The field of the error for a file that is not UTF-8: no key can be named (the file is
/// not even text), so the position of its first invalid byte is all there is.
pub const NOT_UTF8_FIELD: &str = "(file)";

/// Reads the file at `path` as text. A file that is not UTF-8 is refused at its first invalid
/// byte (line and column, as every other problem), rather than as an unplaced I/O error.
pub(crate) fn read_text(path: &Path) -> Result<String, ExperimentError> {
    let bytes = std::fs::read(path).map_err(|e| ExperimentError::io(path, &e))?;
    decode(path, bytes)
}

/// `bytes` as text, or an error at the first byte that is not UTF-8: its line and column (in
/// characters) are counted over the valid text before it.
pub(crate) fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, ExperimentError> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let what = match (e.utf8_error().error_len(), bytes.get(at)) {
            (None, _) => "the file ends in the middle of a UTF-8 character".to_string(),
            (Some(_), Some(b)) => format!("byte 0x{b:02X} here is not UTF-8"),
            (Some(_), None) => "invalid UTF-8 here".to_string(),
        };
        ExperimentError::at(
            path,
            valid,
            at,
            NOT_UTF8_FIELD,
            format!("the file is not UTF-8 text: {what}; save it as UTF-8"),
        )
    })
}

impl ExperimentError {
    /// The file could not be read (or the directory listed).
    pub(crate) fn io(file: &Path, error: &std::io::Error) -> Self {
        ExperimentError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: error.to_string(),
        }
    }

    /// A problem at byte offset `offset` of `text`.
    pub(crate) fn at(
        file: &Path,
        text: &str,
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_column(text, offset);
        ExperimentError {
            file: file.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A syntax error, or a serde error (wrong type, unknown key) from deserializing the spec.
    /// The field is the deepest key or value of the document whose span holds the error.
    pub(crate) fn from_toml(
        file: &Path,
        text: &str,
        error: &toml::de::Error,
        syntax: bool,
    ) -> Self {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().to_string();
        let field = if syntax && in_table_header(text, span.start) {
            None
        } else {
            field_at(text, &span, syntax)
        };
        let field = field.unwrap_or_else(|| "syntax".to_string());
        ExperimentError::at(file, text, span.start, field, message)
    }

    fn render(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file.display(), self.message)
        } else {
            format!(
                "{}:{}:{}: {}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.field,
                self.message
            )
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Whether a syntax error is in a table header (`[workload` never closed, `[[faults]` half
/// closed, `[work load]`, a lone `[`): its line opens with `[` and it lies before the header
/// closes (`]`, or `]]` for an array of tables). Such an error is reported as `syntax` at its
/// place in the header, with the parser's message (`unclosed table, expected `]``): the
/// document around a broken header cannot be trusted to name a field, as the parser recovers
/// by skipping to the next header, whose table would be named instead.
fn in_table_header(text: &str, offset: usize) -> bool {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    let header = line.trim_start();
    let indent = line.len() - header.len();
    let end = if header.starts_with("[[") { "]]" } else { "]" };
    let close = line.find(end).unwrap_or(line.len());
    header.starts_with('[') && (start + indent..=start + close).contains(&offset)
}

/// Dotted path of the most specific key or value whose span holds `span.start`. For syntax
/// errors the end of a span counts too (an unterminated string is reported just past it).
fn field_at(text: &str, span: &Range<usize>, syntax: bool) -> Option<String> {
    let (tree, _) = DeTable::parse_recoverable(text);
    let places = places(tree.get_ref());
    field_of(&places, span, syntax).or_else(|| key_under_header(text, &places, span))
}

/// Dotted path of the most specific key or value of `doc` whose span holds `span.start` (a
/// document assembled from pieces of a file, spans kept: a matrix's cell).
pub(crate) fn field_in(doc: &DeTable<'_>, span: &Range<usize>) -> Option<String> {
    field_of(&places(doc), span, false)
}

fn places(doc: &DeTable<'_>) -> Vec<(Range<usize>, String)> {
    let mut places = Vec::new();
    collect_table(doc, "", &mut places);
    places
}

fn field_of(
    places: &[(Range<usize>, String)],
    span: &Range<usize>,
    syntax: bool,
) -> Option<String> {
    let at = span.start;
    places
        .iter()
        .filter(|(s, _)| s.start <= at && (at < s.end || (at == s.end && (syntax || s.is_empty()))))
        // Narrowest span first; among equals (an `[[faults]]` header is the span of both the
        // array and its element) the longer path.
        .min_by_key(|(s, path)| (s.end - s.start, usize::MAX - path.len()))
        .map(|(_, path)| path.clone())
}

/// For a syntax error on a key that is not in the document (a duplicate key): that key, under
/// the `[table]` or `[[array]]` header it follows.
fn key_under_header(
    text: &str,
    places: &[(Range<usize>, String)],
    span: &Range<usize>,
) -> Option<String> {
    let key = text.get(span.clone())?;
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    if key.is_empty() || !key.chars().all(bare) {
        return None;
    }
    let header = places
        .iter()
        .filter(|(s, _)| s.start < span.start && text[s.start..].starts_with('['))
        .max_by_key(|(s, path)| (s.start, path.len()));
    Some(match header {
        Some((_, table)) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

/// A key as a segment of a dotted field path: as written when bare, else quoted and escaped
/// (`""`, `"a.b"`, `"\n"`), so that a field is never empty and never spans lines.
fn segment(key: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    if !key.is_empty() && key.chars().all(bare) {
        key.to_string()
    } else {
        format!("\"{}\"", key.escape_debug())
    }
}

fn collect_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<(Range<usize>, String)>) {
    for (key, value) in table.iter() {
        let name = segment(key.get_ref());
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        out.push((key.span(), path.clone()));
        collect_value(value, path, out);
    }
}

fn collect_value(
    value: &Spanned<DeValue<'_>>,
    path: String,
    out: &mut Vec<(Range<usize>, String)>,
) {
    out.push((value.span(), path.clone()));
    match value.get_ref() {
        DeValue::Table(t) => collect_table(t, &path, out),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                collect_value(item, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // `=` on line 2 comes after a two-byte character: column counts characters.
        assert_eq!(line_column(text, 10), (2, 4));
        assert_eq!(line_column(text, 999), (3, 1));
        assert_eq!(line_column("", 0), (1, 1));
    }
}
