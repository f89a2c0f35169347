//! Located problems in a stack file, and how they are shown.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};

/// A stack file's text, with what is needed to turn parser positions into
/// byte offsets (miette) and line:column (people).
#[derive(Debug, Clone)]
pub struct SourceText {
    name: String,
    text: Arc<String>,
    line_starts: Vec<usize>,
}

impl SourceText {
    pub fn new(name: impl Into<String>, text: String) -> Self {
        // Line breaks as YAML counts them (and so the parser's line numbers):
        // `\r\n`, `\n`, and a lone `\r`.
        let bytes = text.as_bytes();
        let line_starts = std::iter::once(0)
            .chain(bytes.iter().enumerate().filter_map(|(i, b)| match b {
                b'\n' => Some(i + 1),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => Some(i + 1),
                _ => None,
            }))
            .collect();
        Self {
            name: name.into(),
            text: Arc::new(text),
            line_starts,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// A span from a 1-based line, a 0-based column in characters and a length in characters.
    /// A place past the end of a line is its end (where a parser says
    /// "unexpected end of line"), past the last line the end of the text.
    pub fn span_at(&self, line: usize, col: usize, len_chars: usize) -> Span {
        let line = line.clamp(1, self.line_starts.len());
        let line_start = self.line_starts[line - 1];
        let line_end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next);
        let content = self.text[line_start..line_end].trim_end_matches(['\n', '\r']);
        let (in_line, col) = match content.char_indices().nth(col) {
            Some((i, _)) => (i, col),
            None => (content.len(), content.chars().count()),
        };
        let offset = line_start + in_line;
        let tail = &self.text[offset..];
        let len = tail
            .char_indices()
            .nth(len_chars)
            .map_or(tail.len(), |(i, _)| i);
        Span {
            offset,
            len,
            line,
            column: col + 1,
        }
    }
}

/// Where a problem is: byte offset and length, and the 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
    pub line: usize,
    pub column: usize,
}

/// One problem at one place, with an optional hint on how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_optional_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

/// Every problem found in one stack file.
#[derive(Debug, Clone)]
pub struct Report {
    pub source: SourceText,
    pub diagnostics: Vec<Diagnostic>,
}

/// The miette view of one diagnostic, for the graphical renderer.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
struct Rendered {
    message: String,
    #[source_code]
    src: NamedSource<Arc<String>>,
    #[label("{label}")]
    at: SourceSpan,
    label: String,
    #[help]
    hint: Option<String>,
}

impl Report {
    /// Renders each problem as `file:line:column: message`, then the offending
    /// line with a marker under it and the hint. `color` is for terminals.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
        let mut out = String::new();
        for d in &self.diagnostics {
            let rendered = Rendered {
                message: format!(
                    "{}:{}:{}: {}",
                    self.source.name(),
                    d.span.line,
                    d.span.column,
                    d.message
                ),
                src: NamedSource::new(self.source.name(), Arc::clone(&self.source.text)),
                at: SourceSpan::new(d.span.offset.into(), d.span.len),
                label: "here".into(),
                hint: d.hint.clone(),
            };
            let _ = handler.render_report(&mut out, &rendered);
            out.push('\n');
        }
        out.push_str(&format!(
            "{}: {} error{}\n",
            self.source.name(),
            self.diagnostics.len(),
            if self.diagnostics.len() == 1 { "" } else { "s" }
        ));
        out
    }

    /// One JSON object a problem, for editors and scripts.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.diagnostics
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "file": self.source.name(),
                        "line": d.span.line,
                        "column": d.span.column,
                        "message": d.message,
                        "hint": d.hint,
                    })
                })
                .collect(),
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(
                f,
                "{}:{}:{}: {}",
                self.source.name(),
                d.span.line,
                d.span.column,
                d.message
            )?;
        }
        Ok(())
    }
}
