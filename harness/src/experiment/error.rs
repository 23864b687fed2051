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
    /// inside any key; empty when the file could not be read.
    pub field: String,
    /// What is wrong, and where useful, what would be right.
    pub message: String,
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
        let field = field_at(text, &span, syntax).unwrap_or_else(|| "syntax".to_string());
        let message = error.message().trim().to_string();
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

/// Dotted path of the most specific key or value whose span holds `span.start`. For syntax
/// errors the end of a span counts too (an unterminated string is reported just past it).
fn field_at(text: &str, span: &Range<usize>, syntax: bool) -> Option<String> {
    let (tree, _) = DeTable::parse_recoverable(text);
    let mut places = Vec::new();
    collect_table(tree.get_ref(), "", &mut places);
    let at = span.start;
    let inside = places
        .iter()
        .filter(|(s, _)| s.start <= at && (at < s.end || (at == s.end && (syntax || s.is_empty()))))
        // Narrowest span first; among equals (an `[[faults]]` header is the span of both the
        // array and its element) the longer path.
        .min_by_key(|(s, path)| (s.end - s.start, usize::MAX - path.len()))
        .map(|(_, path)| path.clone());
    inside.or_else(|| key_under_header(text, &places, span))
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

fn collect_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<(Range<usize>, String)>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
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
