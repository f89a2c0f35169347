//! The plainest jq expressions, answered without the jq interpreter: a
//! path of object keys (`.`, `.a`, `.a.b`, `."a b"`, `.["a"]`), an
//! alternative of such paths (`.a // .b`), and `// empty`. These are most of
//! a stack file's `key`, `time` and `fields` (`.id`, `.user.login`), and jaq
//! spends about a microsecond on each, as long as the whole event
//! transform of a small event takes in Python.
//!
//! This is not a second jq: a form is recognised from jaq's own parse, and
//! it is answered here only where jq's answer is certain (indexing an
//! object or null). Anything else, such as indexing a string (an error in
//! jq), is [`Undecided`], and the caller runs the expression in jaq, which
//! gives jq's own answer or error.

use std::hash::{Hash, Hasher};

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::path::{Opt, Part};
use jaq_json::Val;

/// A plain expression.
#[derive(Debug, Clone)]
pub(super) enum Plain {
    /// `.k1.k2...` (no keys: `.`).
    Path(Vec<Key>),
    /// `left // right`: left's value unless it is null or false, else right's.
    Alt(Box<Plain>, Box<Plain>),
    /// `empty`, on the right of `//`.
    Empty,
}

/// An object key, looked up in jaq's objects without making a jaq value
/// of it: a value holds `Rc`s, and a compiled program is shared by the
/// shard readers' threads.
#[derive(Debug, Clone)]
pub(super) struct Key(Box<str>);

impl Key {
    /// The key, if it is found in an object as jaq's own string value is
    /// (checked once here: jaq's hash of a string is matched below, and a
    /// jaq whose hash changed leaves the expression to the interpreter).
    fn new(key: &str) -> Option<Key> {
        let key = Key(key.into());
        let mut object = jaq_json::Map::default();
        object.insert(Val::from(key.0.to_string()), Val::Null);
        object.get(&key).is_some().then_some(key)
    }
}

impl Hash for Key {
    /// As jaq hashes a string value (`Val::TStr`): a tag of 5, then its bytes.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(5);
        self.0.as_bytes().hash(state);
    }
}

impl indexmap::Equivalent<Val> for Key {
    /// As jaq compares values: text and byte strings of the same bytes are equal.
    fn equivalent(&self, value: &Val) -> bool {
        match value {
            Val::TStr(bytes) | Val::BStr(bytes) => {
                let bytes: &[u8] = bytes;
                bytes == self.0.as_bytes()
            }
            _ => false,
        }
    }
}

/// The expression's answer needs the interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Undecided;

impl Plain {
    /// The plain form of `code`, if it has one.
    pub(super) fn of(code: &str) -> Option<Plain> {
        let term = jaq_core::load::parse(code, |p| p.term())?;
        Self::of_term(&term, false)
    }

    fn of_term(term: &Term<&str>, right_of_alt: bool) -> Option<Plain> {
        match term {
            Term::Id => Some(Plain::Path(Vec::new())),
            Term::Path(head, path) if matches!(**head, Term::Id) => path
                .0
                .iter()
                .map(|(part, opt)| match (part, opt) {
                    (Part::Index(Term::Str(None, parts)), Opt::Essential) => match parts.as_slice()
                    {
                        // A key with an escape is left to jaq, which decodes it.
                        [StrPart::Str(key)] if !key.contains('\\') => Key::new(key),
                        _ => None,
                    },
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(Plain::Path),
            Term::BinOp(left, BinaryOp::Alt, right) => Some(Plain::Alt(
                Box::new(Self::of_term(left, false)?),
                Box::new(Self::of_term(right, true)?),
            )),
            Term::Call("empty", args) if args.is_empty() && right_of_alt => Some(Plain::Empty),
            _ => None,
        }
    }

    /// The values the expression yields for `input` (none or one), when
    /// certain without the interpreter.
    pub(super) fn run(&self, input: &Val) -> Result<Option<Val>, Undecided> {
        match self {
            Plain::Path(keys) => {
                let mut at = input;
                for key in keys {
                    at = match at {
                        Val::Obj(map) => match map.get(key) {
                            Some(value) => value,
                            None => return Ok(Some(Val::Null)),
                        },
                        Val::Null => return Ok(Some(Val::Null)),
                        // jq's error (or, left of `//`, its alternative).
                        _ => return Err(Undecided),
                    };
                }
                Ok(Some(at.clone()))
            }
            Plain::Alt(left, right) => match left.run(input)? {
                Some(value) if !matches!(value, Val::Null | Val::Bool(false)) => Ok(Some(value)),
                _ => right.run(input),
            },
            Plain::Empty => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jq::Expression;
    use proptest::prelude::*;

    #[test]
    fn paths_alternatives_and_empty_are_plain_and_everything_else_is_not() {
        for code in [
            ".",
            ".a",
            ".a.b.c",
            ".\"a b\"",
            ".[\"a\"]",
            ".a // .b",
            ".a // .b // empty",
            "(.a)",
        ] {
            assert!(Plain::of(code).is_some(), "{code} should be plain");
        }
        for code in [
            ".a?",
            ".a[0]",
            ".a[]",
            "empty",
            ".a // 1",
            ".a | .b",
            "$x",
            ".\"a\\nb\"",
            ".\"\\(.x)\"",
            "def empty: 1; .a // empty",
            ".a // empty | .b",
            "..",
        ] {
            assert!(Plain::of(code).is_none(), "{code} should not be plain");
        }
    }

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            (-5i64..5).prop_map(|n| n.into()),
            "[abc]{0,2}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[abc]|a b", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn code() -> impl Strategy<Value = String> {
        let path = prop::collection::vec(prop_oneof!["[abc]", Just("\"a b\"".to_string())], 0..4)
            .prop_map(|keys| {
                if keys.is_empty() {
                    ".".to_string()
                } else {
                    keys.iter().map(|k| format!(".{k}")).collect()
                }
            });
        (prop::collection::vec(path, 1..4), any::<bool>()).prop_map(|(paths, empty)| {
            let mut code = paths.join(" // ");
            if empty {
                code.push_str(" // empty");
            }
            code
        })
    }

    proptest! {
        /// Where the plain answer is given, it is jaq's, value for value.
        #[test]
        fn a_plain_answer_is_the_interpreters(code in code(), input in json()) {
            let plain = Plain::of(&code).expect("generated codes are plain");
            let value = crate::jq::parse(input.to_string().as_bytes()).unwrap();
            let interpreted = Expression::compile(&code).unwrap().run_interpreted(value.clone(), 10);
            match plain.run(&value) {
                Ok(answer) => prop_assert_eq!(Ok(answer.into_iter().collect::<Vec<_>>()), interpreted),
                // Only where jq would index something that is not an object.
                Err(Undecided) => prop_assert!(
                    interpreted.is_err() || code.contains("//"),
                    "{} on {} is undecided, but jaq gives {:?}", code, input, interpreted
                ),
            }
        }
    }
}
