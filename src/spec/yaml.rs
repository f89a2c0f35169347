//! A located YAML tree, built from `saphyr-parser` events.
//!
//! Why not a ready-made YAML-to-serde loader: validation must report *every*
//! mistake of a file at its line and column, so each node keeps its span, and
//! the loader must stay bounded on hostile input (alias bombs, deep nesting,
//! duplicate keys) while reporting those as located errors instead of
//! failing on the first one or silently keeping the last duplicate.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span as YamlSpan, Tag};

use super::diagnostic::{Diagnostic, SourceText, Span};

/// Deepest nesting accepted; a stack file needs five or six levels.
pub const MAX_DEPTH: usize = 32;
/// Most nodes a document may expand to, aliases included (stops alias bombs).
pub const MAX_NODES: usize = 100_000;
/// Most bytes of scalars and keys a document may expand to, aliases included
/// (stops alias bombs of few nodes but long strings). Eight times the largest
/// file: a file without aliases never comes near it.
pub const MAX_EXPANDED_BYTES: usize = 8 * super::MAX_FILE_BYTES;

/// One YAML node with where it stands in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

/// A mapping key: always a string in a stack file.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Node {
    /// The child at a JSON-pointer-like path of keys and indices.
    pub fn lookup<'a>(&self, path: impl IntoIterator<Item = &'a str>) -> Option<&Node> {
        let mut node = self;
        for segment in path {
            node = match &node.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.name == segment)
                    .map(|(_, v)| v)?,
                Value::Seq(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The key node under which `path` is stored (for "unknown key" errors).
    pub fn lookup_key<'a>(
        &self,
        parent: impl IntoIterator<Item = &'a str>,
        key: &str,
    ) -> Option<&Key> {
        match &self.lookup(parent)?.value {
            Value::Map(entries) => entries.iter().map(|(k, _)| k).find(|k| k.name == key),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.lookup([key])
    }

    /// Plain JSON, for the schema validator and for serde.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            // A number without a fraction is an integer, as JSON Schema
            // counts it: `shards: 2.0` or `1e3` is read as the integer it is.
            Value::Float(f)
                if f.fract() == 0.0 && (-(2f64.powi(63))..2f64.powi(63)).contains(f) =>
            {
                J::from(*f as i64)
            }
            Value::Float(f) if f.fract() == 0.0 && (0.0..2f64.powi(64)).contains(f) => {
                J::from(*f as u64)
            }
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// How many nodes and bytes of text this subtree holds (charged against
    /// [`MAX_NODES`] and [`MAX_EXPANDED_BYTES`] when an alias copies it).
    fn size(&self) -> (usize, usize) {
        match &self.value {
            Value::Seq(items) => items.iter().fold((1, 0), |(n, b), item| {
                let (n2, b2) = item.size();
                (n + n2, b + b2)
            }),
            Value::Map(entries) => entries.iter().fold((1, 0), |(n, b), (k, v)| {
                let (n2, b2) = v.size();
                (n + 1 + n2, b + k.name.len() + b2)
            }),
            Value::Str(s) => (1, s.len()),
            _ => (1, 0),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending: Option<Key>,
        seen: HashMap<String, Span>,
    },
}

/// Parses one YAML document. Returns the tree (when the syntax allowed one)
/// and every problem found on the way.
pub fn parse(src: &SourceText) -> (Option<Node>, Vec<Diagnostic>) {
    let mut builder = Builder {
        src,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
        diagnostics: Vec::new(),
        root: None,
        documents: 0,
    };
    let mut parser = Parser::new_from_str(src.text());
    loop {
        match parser.next_event() {
            None => break,
            Some(Err(e)) => {
                let span = src.span_at(e.marker().line(), e.marker().col(), 1);
                builder.diagnostics.push(Diagnostic::new(
                    span,
                    format!("YAML syntax error: {}", e.info()),
                ));
                return (None, builder.diagnostics);
            }
            Some(Ok((event, span))) => {
                if let Err(fatal) = builder.event(event, span) {
                    builder.diagnostics.push(fatal);
                    return (None, builder.diagnostics);
                }
            }
        }
    }
    let root = builder.root.take().unwrap_or(Node {
        span: src.span_at(1, 0, 0),
        value: Value::Null,
    });
    (Some(root), builder.diagnostics)
}

struct Builder<'s> {
    src: &'s SourceText,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    bytes: usize,
    diagnostics: Vec<Diagnostic>,
    root: Option<Node>,
    documents: usize,
}

impl Builder<'_> {
    fn span(&self, span: &YamlSpan) -> Span {
        let len = span.end.index().saturating_sub(span.start.index());
        self.src.span_at(span.start.line(), span.start.col(), len)
    }

    fn start(&self, marker: &Marker) -> Span {
        self.src.span_at(marker.line(), marker.col(), 1)
    }

    /// Handles one event; an `Err` stops parsing (the input is beyond what we accept).
    fn event(&mut self, event: Event<'_>, span: YamlSpan) -> Result<(), Diagnostic> {
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::new(
                        self.start(&span.start),
                        "a stack file holds exactly one YAML document",
                    )
                    .with_hint(
                        "remove the second `---` and what follows, or split it into its own file",
                    ));
                }
                Ok(())
            }
            Event::Alias(id) => {
                let at = self.span(&span);
                let (nodes, bytes) = self.anchors.get(&id).map(Node::size).ok_or_else(|| {
                    Diagnostic::new(at, "alias to an unknown anchor")
                        .with_hint("an alias (`*name`) must come after its anchor (`&name`)")
                })?;
                // Charged before the copy is made, so a bomb stops before it allocates.
                self.charge(nodes, bytes, at)?;
                let node = Node {
                    span: at,
                    value: self.anchors[&id].value.clone(),
                };
                self.push_node(node, at)
            }
            Event::Scalar(text, style, anchor, tag) => {
                let at = self.span(&span);
                self.charge(1, text.len(), at)?;
                if let Some(tag) = tag.as_deref()
                    && !tag.is_yaml_core_schema()
                {
                    return Err(unsupported_tag(at, tag));
                }
                let value = resolve_scalar(&text, style, tag.as_deref()).map_err(|msg| {
                    Diagnostic::new(at, msg).with_hint(
                        "a `!!` tag forces a type; remove it and write the value plainly",
                    )
                })?;
                let node = Node { span: at, value };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_node(node, at)
            }
            Event::SequenceStart(anchor, tag) => self.open(&span, anchor, tag.as_deref(), false),
            Event::MappingStart(anchor, tag) => self.open(&span, anchor, tag.as_deref(), true),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq {
                        span,
                        anchor,
                        items,
                    }) => (
                        Node {
                            span,
                            value: Value::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        span,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            span,
                            value: Value::Map(entries),
                        },
                        anchor,
                    ),
                    None => return Ok(()),
                };
                let (node, anchor) = node;
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                let at = node.span;
                self.push_node(node, at)
            }
        }
    }

    fn open(
        &mut self,
        span: &YamlSpan,
        anchor: usize,
        tag: Option<&Tag>,
        is_map: bool,
    ) -> Result<(), Diagnostic> {
        let at = self.start(&span.start);
        if let Some(tag) = tag
            && !tag.is_yaml_core_schema()
        {
            return Err(unsupported_tag(at, tag));
        }
        if let Some(Frame::Map { pending: None, .. }) = self.stack.last() {
            return Err(key_not_a_string(at));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(
                Diagnostic::new(at, format!("nesting deeper than {MAX_DEPTH} levels")).with_hint(
                    "a stack file needs only a few levels; this looks like the wrong file",
                ),
            );
        }
        self.charge(1, 0, at)?;
        self.stack.push(if is_map {
            Frame::Map {
                span: at,
                anchor,
                entries: Vec::new(),
                pending: None,
                seen: HashMap::new(),
            }
        } else {
            Frame::Seq {
                span: at,
                anchor,
                items: Vec::new(),
            }
        });
        Ok(())
    }

    /// Counts nodes and bytes created, aliases included, so that an alias bomb stops early.
    fn charge(&mut self, nodes: usize, bytes: usize, at: Span) -> Result<(), Diagnostic> {
        self.nodes = self.nodes.saturating_add(nodes);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::new(at, format!("the document expands to more than {MAX_NODES} nodes"))
                .with_hint("aliases (`*name`) that copy large anchors multiply quickly; a stack file needs a few hundred nodes"));
        }
        if self.bytes > MAX_EXPANDED_BYTES {
            return Err(Diagnostic::new(
                at,
                format!(
                    "the document expands to more than {} MiB of text",
                    MAX_EXPANDED_BYTES >> 20
                ),
            )
            .with_hint(
                "aliases (`*name`) copy their anchor's text each time; a stack file is a few KB",
            ));
        }
        Ok(())
    }

    /// Places a finished node: as a key, as a value, as a list item or as the root.
    fn push_node(&mut self, node: Node, at: Span) -> Result<(), Diagnostic> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending,
                seen,
                ..
            }) => match pending.take() {
                Some(key) => {
                    if let Some(first) = seen.get(&key.name) {
                        let first = *first;
                        self.diagnostics.push(
                            Diagnostic::new(key.span, format!("duplicate key \"{}\"", key.name))
                                .with_hint(format!("it is first set at line {}; the first one is kept, remove one of them", first.line)),
                        );
                    } else {
                        seen.insert(key.name.clone(), key.span);
                        entries.push((key, node));
                    }
                }
                None => {
                    let name = match node.value {
                        Value::Str(s) => s,
                        Value::Null => String::new(),
                        Value::Bool(b) => b.to_string(),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(key_not_a_string(at));
                        }
                    };
                    *pending = Some(Key { name, span: at });
                }
            },
        }
        Ok(())
    }
}

fn key_not_a_string(at: Span) -> Diagnostic {
    Diagnostic::new(
        at,
        "a mapping key must be a plain string, not a list or mapping",
    )
    .with_hint("write the key as a word (`tags:`); a `[` or `{` at the start of a line opens a list or mapping")
}

fn unsupported_tag(at: Span, tag: &Tag) -> Diagnostic {
    Diagnostic::new(at, format!("YAML tag `{}{}` is not supported in a stack file", tag.handle, tag.suffix))
        .with_hint("stack files are plain YAML; CloudFormation intrinsics like !Ref belong in the generated template, not here")
}

/// Resolves a scalar by the YAML 1.2 core schema: quoted scalars are strings,
/// plain ones may be null, booleans, integers or floats. (YAML 1.1's `yes`/`no`
/// stay strings, so the schema check can flag them with a hint.)
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        if !tag.is_yaml_core_schema() {
            return Err(format!(
                "YAML tag `{}{}` is not supported in a stack file",
                tag.handle, tag.suffix
            ));
        }
        return match tag.suffix.as_str() {
            "str" => Ok(Value::Str(text.to_string())),
            "null" => Ok(Value::Null),
            "bool" => plain_scalar(text)
                .filter(|v| matches!(v, Value::Bool(_)))
                .ok_or_else(|| format!("`{text}` is not a boolean")),
            "int" => plain_scalar(text)
                .filter(|v| matches!(v, Value::Int(_)))
                .ok_or_else(|| format!("`{text}` is not an integer")),
            "float" => match plain_scalar(text) {
                Some(Value::Int(i)) => Ok(Value::Float(i as f64)),
                Some(v @ Value::Float(_)) => Ok(v),
                _ => Err(format!("`{text}` is not a number")),
            },
            other => Err(format!(
                "YAML tag `!!{other}` is not supported in a stack file"
            )),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::Str(text.to_string()));
    }
    Ok(plain_scalar(text).unwrap_or_else(|| Value::Str(text.to_string())))
}

fn plain_scalar(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Value::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Value::Float(f64::NAN)),
        _ => {}
    }
    let bytes = text.as_bytes();
    let digits = bytes
        .strip_prefix(b"-")
        .or_else(|| bytes.strip_prefix(b"+"))
        .unwrap_or(bytes);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        // Out-of-range integers fall through to floats, which the schema then rejects where an integer is due.
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::Int(i));
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Value::Int);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Value::Int);
    }
    let looks_numeric = !digits.is_empty()
        && digits
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.iter().any(u8::is_ascii_digit)
        && (digits[0].is_ascii_digit() || digits[0] == b'.');
    if looks_numeric {
        return text.parse::<f64>().ok().map(Value::Float);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (Option<Node>, Vec<Diagnostic>) {
        parse(&SourceText::new("t.yaml", text.to_string()))
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let (root, errs) =
            parse_str("a: 1\nb: '1'\nc: true\nd: yes\ne: 1.5\nf: ~\ng: -3\nh: 1e3\n");
        assert!(errs.is_empty(), "{errs:?}");
        let json = root.unwrap().to_json();
        assert_eq!(
            json,
            serde_json::json!({"a": 1, "b": "1", "c": true, "d": "yes", "e": 1.5, "f": null, "g": -3, "h": 1000})
        );
    }

    #[test]
    fn keeps_locations_of_keys_and_values() {
        let (root, _) = parse_str("stream:\n  shards: 2\n");
        let root = root.unwrap();
        let value = root.lookup(["stream", "shards"]).unwrap();
        assert_eq!((value.span.line, value.span.column), (2, 11));
        let key = root.lookup_key(["stream"], "shards").unwrap();
        assert_eq!((key.span.line, key.span.column), (2, 3));
    }

    #[test]
    fn reports_every_duplicate_key_and_keeps_the_first() {
        let (root, errs) = parse_str("a: 1\nb: 2\na: 3\nb: 4\n");
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].span.line, 3);
        assert!(errs[0].message.contains("duplicate key \"a\""));
        assert_eq!(errs[1].span.line, 4);
        assert_eq!(root.unwrap().get("a").unwrap().value, Value::Int(1));
    }

    #[test]
    fn stops_alias_bombs() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let (root, errs) = parse_str(&text);
        assert!(root.is_none());
        assert!(errs[0].message.contains("expands to more than"), "{errs:?}");
    }

    #[test]
    fn stops_deep_nesting() {
        let text: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let (root, errs) = parse_str(&text);
        assert!(root.is_none());
        assert!(errs[0].message.contains("nesting deeper"), "{errs:?}");
    }

    #[test]
    fn rejects_a_second_document_and_custom_tags() {
        let (_, errs) = parse_str("a: 1\n---\nb: 2\n");
        assert!(errs[0].message.contains("one YAML document"));
        let (_, errs) = parse_str("a: !Ref Foo\n");
        assert!(errs[0].message.contains("not supported"), "{errs:?}");
    }
}
