//! Positions and the error list of one manifest being checked.
//!
//! Owns: turning byte offsets into 1-based `line:column`, quoting short snippets of the
//! source, and collecting every [`ManifestError`] found in one pass. It must never stop at
//! the first error or panic on an offset it is handed: offsets come from the TOML parser
//! and are clamped, not trusted.

use super::ManifestError;

/// Most errors one load reports. A random or badly broken file can produce thousands;
/// past this many, a person fixes the first ones and re-runs, so the rest are summarised.
pub(super) const MAX_REPORTED_ERRORS: usize = 100;

/// Longest snippet of source text quoted in a message.
const MAX_SNIPPET_CHARS: usize = 40;

/// The manifest text with its line index.
pub(super) struct Source<'a> {
    text: &'a str,
    /// Byte offset where each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { text, line_starts }
    }

    /// 1-based `(line, column)` of byte `offset`; the column counts characters, so a
    /// message points at the same place an editor shows.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        // `line_starts` is sorted and starts with 0, so the partition point is >= 1.
        let line_index = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(line_index).copied().unwrap_or(0);
        let column = match self.text.get(start..offset) {
            Some(prefix) => prefix.chars().count() + 1,
            // The offset is inside a multi-byte character: count bytes instead.
            None => offset - start + 1,
        };
        (line_index + 1, column)
    }

    /// 1-based line of byte `offset`.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }

    /// The source text of `span` on one line, shortened for a message.
    pub(super) fn snippet(&self, span: std::ops::Range<usize>) -> String {
        let text = self.text.get(span).unwrap_or("");
        let one_line = text.lines().next().unwrap_or("").trim();
        let mut out: String = one_line.chars().take(MAX_SNIPPET_CHARS).collect();
        if one_line.chars().count() > MAX_SNIPPET_CHARS || text.trim().lines().count() > 1 {
            out.push_str("...");
        }
        out
    }
}

/// Everything found wrong so far, with the source to locate it.
pub(super) struct Diagnostics<'a> {
    file: &'a str,
    pub(super) source: Source<'a>,
    errors: Vec<ManifestError>,
}

impl<'a> Diagnostics<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Self {
        Diagnostics {
            file,
            source: Source::new(text),
            errors: Vec::new(),
        }
    }

    /// Records one error at byte `offset`. `field` is the dotted path (`task.radar.budget`),
    /// empty when the problem is not about one field (a TOML syntax error).
    pub(super) fn error(
        &mut self,
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = self.source.position(offset);
        self.errors.push(ManifestError {
            file: self.file.to_string(),
            line,
            column,
            field: field.into(),
            // One error is one line of output, whatever text a message quotes.
            message: message.into().replace(['\n', '\r'], " "),
        });
    }

    pub(super) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(super) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// 1-based line of byte `offset`, for messages that point at a second place.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.source.line(offset)
    }

    /// The errors in file order (stable, so errors at one position keep the order they
    /// were found in), at most [`MAX_REPORTED_ERRORS`] of them plus one line saying how
    /// many more there were.
    pub(super) fn into_errors(self) -> Vec<ManifestError> {
        let mut errors = self.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        if errors.len() > MAX_REPORTED_ERRORS {
            let omitted = errors.len() - MAX_REPORTED_ERRORS;
            errors.truncate(MAX_REPORTED_ERRORS);
            let (line, column) = errors.last().map_or((0, 0), |e| (e.line, e.column));
            errors.push(ManifestError {
                file: self.file.to_string(),
                line,
                column,
                field: String::new(),
                message: format!(
                    "{omitted} more errors not shown; fix the ones above and check again"
                ),
            });
        }
        errors
    }
}
