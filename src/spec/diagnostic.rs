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
    index: Arc<Index>,
}

/// Where lines start and end, in bytes and in characters, and the byte
/// offset of every [`CHECKPOINT`]th character: a place is found in constant
/// time, however long its line (a file of one line holds every node of a
/// flow collection; walking the line for each of them was quadratic).
#[derive(Debug)]
struct Index {
    lines: Vec<Line>,
    checkpoints: Vec<usize>,
    chars: usize,
}

#[derive(Debug, Clone, Copy)]
struct Line {
    start_char: usize,
    /// Characters before the line break.
    len_chars: usize,
}

const CHECKPOINT: usize = 64;

impl SourceText {
    pub fn new(name: impl Into<String>, text: String) -> Self {
        // Line breaks as YAML counts them (and so the parser's line numbers):
        // `\r\n`, `\n`, and a lone `\r`.
        let mut lines = Vec::new();
        let mut checkpoints = Vec::new();
        let mut line = Line {
            start_char: 0,
            len_chars: 0,
        };
        let mut chars = 0;
        let mut iter = text.char_indices().peekable();
        while let Some((i, c)) = iter.next() {
            if chars % CHECKPOINT == 0 {
                checkpoints.push(i);
            }
            chars += 1;
            let crlf = c == '\r' && iter.peek().is_some_and(|&(_, next)| next == '\n');
            if c == '\n' || c == '\r' {
                line.len_chars = chars - 1 - line.start_char;
                if crlf {
                    iter.next();
                    if chars % CHECKPOINT == 0 {
                        checkpoints.push(i + 1);
                    }
                    chars += 1;
                }
                lines.push(line);
                line = Line {
                    start_char: chars,
                    len_chars: 0,
                };
            }
        }
        line.len_chars = chars - line.start_char;
        lines.push(line);
        Self {
            name: name.into(),
            text: Arc::new(text),
            index: Arc::new(Index {
                lines,
                checkpoints,
                chars,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The byte offset of the `c`th character (the end of the text past it).
    fn byte_of_char(&self, c: usize) -> usize {
        let index = &self.index;
        if c >= index.chars {
            return self.text.len();
        }
        let from = index.checkpoints[c / CHECKPOINT];
        self.text[from..]
            .char_indices()
            .nth(c % CHECKPOINT)
            .map_or(self.text.len(), |(i, _)| from + i)
    }

    /// A span from a 1-based line, a 0-based column in characters and a length in characters.
    /// A place past the end of a line is its end (where a parser says
    /// "unexpected end of line"), past the last line the last line.
    pub fn span_at(&self, line: usize, col: usize, len_chars: usize) -> Span {
        let lines = &self.index.lines;
        let line = line.clamp(1, lines.len());
        let l = lines[line - 1];
        let col = col.min(l.len_chars);
        let start = l.start_char + col;
        let offset = self.byte_of_char(start);
        let end = self.byte_of_char(start.saturating_add(len_chars));
        Span {
            offset,
            len: end - offset,
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
    /// The span may hold a secret: the rendered source masks it.
    pub secret: bool,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            hint: None,
            secret: false,
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
        let text = self.masked_text();
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
                src: NamedSource::new(self.source.name(), Arc::clone(&text)),
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

    /// The source as shown under the messages: what secret spans cover is
    /// replaced byte for byte with `*` (offsets stay valid).
    fn masked_text(&self) -> Arc<String> {
        let secrets: Vec<&Span> = self
            .diagnostics
            .iter()
            .filter(|d| d.secret)
            .map(|d| &d.span)
            .collect();
        if secrets.is_empty() {
            return Arc::clone(&self.source.text);
        }
        let mut bytes = self.source.text.as_bytes().to_vec();
        for span in secrets {
            let end = (span.offset + span.len).min(bytes.len());
            for b in &mut bytes[span.offset.min(end)..end] {
                if !matches!(*b, b'\n' | b'\r') {
                    *b = b'*';
                }
            }
        }
        // Masking whole spans may cut a multi-byte character; lossy keeps it text.
        Arc::new(String::from_utf8_lossy(&bytes).into_owned())
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
