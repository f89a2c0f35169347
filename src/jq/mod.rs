//! jq expressions, the language of the transforms a stack file declares
//! (issue 14): compiled once, when the stack file is loaded, with `jaq` (a
//! maintained Rust implementation of jq, its standard library included),
//! then run on each event. Pure: no network, no clock.
//!
//! A program never stops the processor: a runtime error, and `halt`, are
//! an error of that event (its dead letter's reason), never an exit.

mod demand;
mod natives;
mod plain;
mod read;

use std::ops::Range;
use std::sync::OnceLock;

use aws_sdk_dynamodb::types::AttributeValue;
use jaq_core::compile::Undefined;
use jaq_core::load::parse::Def;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;

pub use demand::Demand;

/// A compiled expression.
pub struct Expression {
    code: String,
    filter: jaq_core::Filter<data::JustLut<Val>>,
    /// The expression's plain form, answered without the interpreter
    /// where jq's answer is certain ([`plain`]).
    plain: Option<plain::Plain>,
}

/// jq's standard library as jaq defines it in jq, parsed once: jaq parses
/// its jq source on every call, and a stack's expressions are compiled
/// one at a time (about half of compiling a small expression).
fn std_defs() -> &'static [Def<&'static str>] {
    static DEFS: OnceLock<Vec<Def<&'static str>>> = OnceLock::new();
    DEFS.get_or_init(|| {
        jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .collect()
    })
}

/// Why an expression does not compile, and where in it (a byte range of its code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub span: Range<usize>,
    pub message: String,
}

/// Why an expression failed on an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("jq error: {0}")]
    Error(String),
    #[error("jq halted (exit code {0})")]
    Halt(i32),
    #[error("jq yielded more than {limit} values")]
    TooMany { limit: usize },
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expression")
            .field("code", &self.code)
            .finish()
    }
}

impl Expression {
    /// Parses and compiles `code` with jq's standard library; every error
    /// found, each with where it is.
    pub fn compile(code: &str) -> Result<Self, Vec<CompileError>> {
        Self::compile_with(code, true)
    }

    /// [`Expression::compile`], with the [`natives`] in place of jaq's
    /// definitions of the same filters, or (for tests) without them.
    fn compile_with(code: &str, with_natives: bool) -> Result<Self, Vec<CompileError>> {
        let defs = std_defs()
            .iter()
            .filter(|def| !(with_natives && natives::replaces(def)))
            .cloned();
        let funs = natives::funs()
            .filter(|_| with_natives)
            .chain(jaq_core::funs())
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let arena = Arena::default();
        let file = File { code, path: () };
        let modules = Loader::new(defs)
            .load(&arena, file)
            .map_err(|errors| load_errors(code, errors))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| {
                errors
                    .into_iter()
                    .flat_map(|(_, undefined)| undefined)
                    .map(|(name, what)| CompileError {
                        span: span_in(code, name),
                        message: match what {
                            Undefined::Filter(arity) => {
                                format!("undefined filter `{name}/{arity}`")
                            }
                            Undefined::Var => format!("undefined variable `{name}`"),
                            Undefined::Label => format!("undefined label `{name}`"),
                            _ => format!("undefined module `{name}`"),
                        },
                    })
                    .collect::<Vec<_>>()
            })?;
        Ok(Self {
            code: code.to_string(),
            filter,
            plain: plain::Plain::of(code),
        })
    }

    /// The expression as written.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Every value the expression yields for `input` (at most `limit`).
    pub fn run(&self, input: Val, limit: usize) -> Result<Vec<Val>, RunError> {
        if let Some(Ok(answer)) = self.plain.as_ref().map(|p| p.run(&input)) {
            return match answer {
                Some(_) if limit == 0 => Err(RunError::TooMany { limit }),
                answer => Ok(answer.into_iter().collect()),
            };
        }
        self.run_interpreted(input, limit)
    }

    /// [`Expression::run`] in jaq's interpreter, whatever the form.
    fn run_interpreted(&self, input: Val, limit: usize) -> Result<Vec<Val>, RunError> {
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut out = Vec::new();
        for value in self.filter.id.run((ctx, input)) {
            match value {
                Ok(v) if out.len() < limit => out.push(v),
                Ok(_) => return Err(RunError::TooMany { limit }),
                Err(exn) => {
                    return Err(match exn.get_err() {
                        Ok(error) => RunError::Error(error.to_string()),
                        Err(exn) => match exn.get_halt() {
                            Ok(code) => RunError::Halt(code),
                            Err(_) => RunError::Error("an unexpected jq exception".into()),
                        },
                    });
                }
            }
        }
        Ok(out)
    }
}

/// A kind of value an expression yields whatever its input, when its form
/// alone says so (an array or object constructor, a comparison): what
/// `validate` can tell of a result's type before any event is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Array,
    Object,
    Boolean,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Array => "an array",
            Shape::Object => "an object",
            Shape::Boolean => "a boolean",
        }
    }
}

/// The kinds of value `code` certainly yields, read from its syntax alone
/// (no input, nothing run): each [`Shape`] some output of it always has.
/// Empty when the form does not tell (a path, a call), or when the code
/// does not parse (compiling reports that).
pub fn certain_shapes(code: &str) -> Vec<Shape> {
    use jaq_core::load::parse::{BinaryOp, Term};
    fn shapes(term: &Term<&str>, out: &mut Vec<Shape>) {
        match term {
            Term::Arr(_) => out.push(Shape::Array),
            Term::Obj(_) => out.push(Shape::Object),
            Term::BinOp(_, BinaryOp::Cmp(_) | BinaryOp::And | BinaryOp::Or, _) => {
                out.push(Shape::Boolean)
            }
            // `a | b` yields what b yields; `def f: ...; b` too.
            Term::BinOp(_, BinaryOp::Pipe(_), right) | Term::Def(_, right) => shapes(right, out),
            // `a, b` yields both.
            Term::BinOp(left, BinaryOp::Comma, right) => {
                shapes(left, out);
                shapes(right, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(term) = jaq_core::load::parse(code, |p| p.term()) {
        shapes(&term, &mut out);
    }
    out.dedup();
    out
}

/// Parses one JSON document into a jq value (the record's bytes, as they
/// are), as jaq reads it ([`read`]).
pub fn parse(bytes: &[u8]) -> Result<Val, String> {
    read::parse(bytes)
}

/// [`parse`], reading only what `demand` needs of the document's objects.
pub fn parse_for(bytes: &[u8], demand: &Demand) -> Result<Val, String> {
    read::parse_for(bytes, demand)
}

/// A jq value as a DynamoDB attribute: strings, numbers (checked against
/// DynamoDB's limits), booleans, lists and maps; `null` at the top is
/// `None` (a field left out), and within a list or map is DynamoDB's NULL.
/// A value nested deeper than DynamoDB stores ([`MAX_NESTING`]) is an
/// error, as DynamoDB's ValidationException would be.
pub fn to_attribute(value: &Val) -> Result<Option<AttributeValue>, String> {
    Ok(match value {
        Val::Null => None,
        other => Some(attribute(other, 1)?),
    })
}

/// Most levels DynamoDB nests an attribute's value: the attribute is level
/// 1, and each list or map adds one (the developer guide's quotas; real
/// DynamoDB takes a scalar inside 31 maps and refuses one inside 32, with
/// "Nesting Levels have exceeded supported limits").
pub const MAX_NESTING: usize = 32;

/// Whether `value` holds lists or maps nested more than `levels` deep (its
/// recursion goes no deeper than `levels`, however deep the value).
pub fn nested_deeper_than(value: &Val, levels: usize) -> bool {
    match value {
        Val::Arr(items) => levels == 0 || items.iter().any(|v| nested_deeper_than(v, levels - 1)),
        Val::Obj(map) => levels == 0 || map.values().any(|v| nested_deeper_than(v, levels - 1)),
        _ => false,
    }
}

fn attribute(value: &Val, level: usize) -> Result<AttributeValue, String> {
    if level > MAX_NESTING {
        return Err(format!(
            "nests lists and maps more than {MAX_NESTING} levels deep; DynamoDB stores at most {MAX_NESTING}"
        ));
    }
    let nested = |v| attribute(v, level + 1);
    Ok(match value {
        Val::Null => AttributeValue::Null(true),
        Val::Bool(b) => AttributeValue::Bool(*b),
        // A machine integer always fits DynamoDB's 38 digits and range.
        Val::Num(jaq_json::Num::Int(i)) => AttributeValue::N(i.to_string()),
        Val::Num(n) => AttributeValue::N(dynamodb_number(&n.to_string())?),
        Val::TStr(s) => AttributeValue::S(String::from_utf8_lossy(s).into_owned()),
        Val::BStr(b) => AttributeValue::B(aws_smithy_types::Blob::new(b.to_vec())),
        Val::Arr(items) => AttributeValue::L(items.iter().map(nested).collect::<Result<_, _>>()?),
        Val::Obj(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| match k {
                    Val::TStr(k) => Ok((String::from_utf8_lossy(k).into_owned(), nested(v)?)),
                    other => Err(format!("a map key must be a string, not {other}")),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Most significant digits a DynamoDB number holds.
pub const MAX_NUMBER_DIGITS: usize = 38;

/// `text` (a decimal, with an optional exponent) when DynamoDB can store
/// it: at most 38 significant digits (leading and trailing zeros do not
/// count), a magnitude from 1E-130 to below 1E+126. Anything else (more
/// digits, NaN, infinities) is an error that says which limit it breaks:
/// DynamoDB would refuse the whole write.
pub fn dynamodb_number(text: &str) -> Result<String, String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
        None => (unsigned, "0"),
    };
    let exponent: i64 = exponent
        .strip_prefix('+')
        .unwrap_or(exponent)
        .parse()
        .map_err(|_| format!("{text} is not a number DynamoDB stores"))?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(format!("{text} is not a number DynamoDB stores"));
    }
    let digits: String = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(text.to_string()); // zero
    }
    let leading_zeros = digits.len() - significant.len();
    let significant_digits = significant.trim_end_matches('0').len();
    if significant_digits > MAX_NUMBER_DIGITS {
        return Err(format!(
            "{text} has {significant_digits} significant digits; DynamoDB stores at most {MAX_NUMBER_DIGITS}"
        ));
    }
    // The power of ten of the first significant digit.
    let magnitude = whole.len() as i64 - 1 - leading_zeros as i64 + exponent;
    if !(-130..=125).contains(&magnitude) {
        return Err(format!(
            "{text} is out of DynamoDB's range (1E-130 to below 1E+126 in magnitude)"
        ));
    }
    Ok(text.to_string())
}

/// Where `part` (a slice of `code`) lies; the end of `code` for anything else.
fn span_in(code: &str, part: &str) -> Range<usize> {
    let (start, end) = (code.as_ptr() as usize, code.as_ptr() as usize + code.len());
    let at = part.as_ptr() as usize;
    if (start..=end).contains(&at) && at + part.len() <= end {
        jaq_core::load::span(code, part)
    } else {
        code.len()..code.len()
    }
}

fn load_errors(code: &str, errors: jaq_core::load::Errors<&str, ()>) -> Vec<CompileError> {
    use jaq_core::load::Error;
    let mut out = Vec::new();
    for (_, error) in errors {
        match error {
            Error::Io(errors) => {
                out.extend(errors.into_iter().map(|(part, message)| CompileError {
                    span: span_in(code, part),
                    message,
                }))
            }
            Error::Lex(errors) => {
                out.extend(errors.into_iter().map(|(expected, part)| CompileError {
                    span: span_in(code, part),
                    message: format!("expected {}", expected.as_str()),
                }))
            }
            Error::Parse(errors) => {
                out.extend(errors.into_iter().map(|(expected, part)| CompileError {
                    span: span_in(code, part),
                    message: if part.is_empty() {
                        format!("expected {}, found the end", expected.as_str())
                    } else {
                        format!("expected {}, found `{part}`", expected.as_str())
                    },
                }))
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(json: &str) -> Val {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn numbers_are_checked_against_dynamodbs_limits() {
        for ok in [
            "0",
            "-0.0",
            "42",
            "-1.5",
            "1e-130",
            "9.9999999999999999999999999999999999999E+125",
            "12345678901234567890123456789012345678",
            "1000000000000000000000000000000000000000000",
            "0.000123",
            "1.5e3",
        ] {
            assert_eq!(dynamodb_number(ok).as_deref(), Ok(ok), "{ok}");
        }
        let too_precise = "123456789012345678901234567890123456789";
        assert!(
            dynamodb_number(too_precise)
                .unwrap_err()
                .contains("39 significant digits")
        );
        for out in ["1e126", "1e-131", "-2E+200"] {
            assert!(dynamodb_number(out).unwrap_err().contains("range"), "{out}");
        }
        for bad in ["NaN", "Infinity", "-Infinity", "", "1.2.3", "e5"] {
            assert!(dynamodb_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jq_values_become_dynamodb_attributes() {
        assert_eq!(to_attribute(&value("null")), Ok(None));
        assert_eq!(
            to_attribute(&value(r#"{"a":[1,"x",true,null],"b":{"c":2.5}}"#)).unwrap(),
            Some(AttributeValue::M(
                [
                    (
                        "a".to_string(),
                        AttributeValue::L(vec![
                            AttributeValue::N("1".into()),
                            AttributeValue::S("x".into()),
                            AttributeValue::Bool(true),
                            AttributeValue::Null(true),
                        ])
                    ),
                    (
                        "b".to_string(),
                        AttributeValue::M(
                            [("c".to_string(), AttributeValue::N("2.5".into()))].into()
                        )
                    ),
                ]
                .into()
            ))
        );
        // A 39-digit number read from an event is refused, not rounded.
        let big = value("123456789012345678901234567890123456789");
        assert!(
            to_attribute(&big)
                .unwrap_err()
                .contains("significant digits")
        );
        // A number beyond DynamoDB's range (here past f64 as well) is refused.
        assert!(to_attribute(&value("1e400")).is_err());
    }

    #[test]
    fn values_nest_at_most_as_deep_as_dynamodb_stores() {
        // A scalar inside `wrappers` lists and maps, in turn.
        let nested = |wrappers: usize| {
            let mut text = "1".to_string();
            for level in 0..wrappers {
                text = if level % 2 == 0 {
                    format!("[{text}]")
                } else {
                    format!(r#"{{"k":{text}}}"#)
                };
            }
            value(&text)
        };
        // DynamoDB takes a scalar inside 31 lists and maps, not 32.
        assert!(to_attribute(&nested(31)).is_ok());
        let refused = to_attribute(&nested(32)).unwrap_err();
        assert!(refused.contains("more than 32 levels"), "{refused}");
        // An empty list is a level of its own: 32 lists are 32 levels.
        let lists = |n: usize| value(&format!("{}{}", "[".repeat(n), "]".repeat(n)));
        assert!(to_attribute(&lists(32)).is_ok());
        assert!(to_attribute(&lists(33)).is_err());
        assert!(!nested_deeper_than(&nested(31), 31));
        assert!(nested_deeper_than(&nested(32), 31));
        assert!(!nested_deeper_than(&value("[1, {}, []]"), 2));
        assert!(nested_deeper_than(&value("[1, {}, [[]]]"), 2));
    }

    fn run(code: &str, input: &str) -> Result<Vec<String>, RunError> {
        let e = Expression::compile(code).expect("compiles");
        Ok(e.run(parse(input.as_bytes()).unwrap(), 100)?
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    #[test]
    fn expressions_run_with_jqs_standard_library() {
        assert_eq!(
            run(".records[] | .id", r#"{"records":[{"id":1},{"id":"b"}]}"#).unwrap(),
            ["1", "\"b\""]
        );
        assert_eq!(
            run(
                "[.labels[]?.name | ascii_downcase]",
                r#"{"labels":[{"name":"Bug"}]}"#
            )
            .unwrap(),
            [r#"["bug"]"#]
        );
        // A missing path is null, as in jq.
        assert_eq!(run(".actor.login", "{}").unwrap(), ["null"]);
    }

    #[test]
    fn a_syntax_error_says_what_was_expected_and_where() {
        let errors = Expression::compile(".a | (.b").unwrap_err();
        assert!(!errors.is_empty());
        assert!(errors[0].message.contains("expected"), "{errors:?}");
        assert!(errors[0].span.start <= 8, "{errors:?}");
    }

    #[test]
    fn an_unknown_filter_is_named_at_its_place() {
        let code = ".a | no_such_filter(1)";
        let errors = Expression::compile(code).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].message.starts_with("undefined")
                && errors[0].message.contains("no_such_filter"),
            "{errors:?}"
        );
        assert_eq!(&code[errors[0].span.clone()], "no_such_filter");
    }

    #[test]
    fn constructors_and_comparisons_have_a_certain_shape() {
        assert_eq!(certain_shapes("[.id]"), [Shape::Array]);
        assert_eq!(certain_shapes(".a | {id}"), [Shape::Object]);
        assert_eq!(certain_shapes(".a == 1"), [Shape::Boolean]);
        assert_eq!(certain_shapes(".id, [.x]"), [Shape::Array]);
        assert!(certain_shapes(".id").is_empty());
        assert!(certain_shapes(".a[] | tostring").is_empty());
        assert!(certain_shapes("if .a then [1] else 2 end").is_empty());
        assert!(certain_shapes("(").is_empty());
    }

    #[test]
    fn runtime_errors_and_halt_are_errors_of_the_event_not_an_exit() {
        assert!(matches!(
            run(".a + 1", r#"{"a":"x"}"#),
            Err(RunError::Error(_))
        ));
        assert!(
            matches!(run("error(\"bad\")", "{}"), Err(RunError::Error(m)) if m.contains("bad"))
        );
        assert_eq!(run("halt", "{}"), Err(RunError::Halt(0)));
        let e = Expression::compile("range(10)").unwrap();
        assert_eq!(
            e.run(Val::Null, 3).unwrap_err(),
            RunError::TooMany { limit: 3 }
        );
    }
}
