//! What of a record an `events` expression can see: the object keys its
//! answers depend on, found from jaq's parse of the expression, so that the
//! reader ([`super::read`]) skips the rest of the record instead of making
//! jq values of it.
//!
//! Why: a record often carries much that a transform never reads. On the
//! bench's X API pages, `includes.tweets` (the full referenced tweets) is
//! 44% of the bytes, and the tweet extraction in jq reads only `data`,
//! `includes.users`, `matching_rules`, `meta` and `errors`. Checking the
//! rest as JSON without making jq values of it (and dropping them) took
//! that transform from 0.460 to 0.426 s of CPU on the bench's 31 MB. The
//! built-in transform skips unread fields the same way, through serde.
//!
//! The rule this module keeps: running the expression on the record read
//! with its [`Demand`] gives the same answers, in the same order, and the
//! same errors, as on the whole record. It is worked out backwards, from
//! what is needed of an expression's answers to what is needed of its
//! input ([`needed`]), and it is conservative: any form not listed below
//! needs the whole input ([`Demand::All`]). What can be left out:
//!
//! - the keys of an object that are only looked up by name (`.a`, `."a"`,
//!   `.["a"]`, `has("a")`): looking a key up never fails on an object, and
//!   gives null where the key is missing, whatever else the object holds;
//! - the contents of an object whose type alone matters (`type`, `not`,
//!   an `if` or `//` test, `select`'s test, `isobject`, `objects`, ...).
//!
//! Only objects are ever cut down: arrays and scalars are read whole, so an
//! error message that shows a value (`cannot index [1] with "a"`) shows the
//! same text. Every form that could show an object in an error (`+`,
//! comparisons, calls to any other filter) needs its operands whole, as does
//! every value the expression yields: the fields read its events freely.
//! Definitions (`def`), assignments, `..`, destructuring, formats and
//! iteration need the whole input. A test runs a corpus of expressions on
//! records read whole and read with their demand and wants the same
//! answers.

use std::collections::BTreeMap;

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Pattern, Term};
use jaq_core::path::Part;

/// What of a value must be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Demand {
    /// All of it.
    All,
    /// If it is an object, only these keys (each read as its demand says);
    /// any other value whole. No keys: only its type and truthiness.
    Keys(BTreeMap<String, Demand>),
}

/// What is needed of a value: nothing (`None`), or a [`Demand`].
type Need = Option<Demand>;

/// Its type and truthiness: for tests, `type`, `not`.
fn type_only() -> Need {
    Some(Demand::Keys(BTreeMap::new()))
}

fn all() -> Need {
    Some(Demand::All)
}

impl Demand {
    /// What an `events` expression needs of its input, the record (its
    /// answers are events, which the fields read freely).
    pub fn of_events(code: &str) -> Demand {
        match jaq_core::load::parse(code, |p| p.term()) {
            // An expression that needs nothing of the record still reads
            // it (and fails on one that is not JSON).
            Some(term) => needed(&term, all()).unwrap_or(Demand::Keys(BTreeMap::new())),
            None => Demand::All,
        }
    }
}

/// Both needs.
fn join(a: Need, b: Need) -> Need {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(Demand::All), _) | (_, Some(Demand::All)) => all(),
        (Some(Demand::Keys(mut a)), Some(Demand::Keys(b))) => {
            for (key, demand) in b {
                let joined = match a.remove(&key) {
                    Some(mine) => join(Some(mine), Some(demand)),
                    None => Some(demand),
                };
                a.insert(key, joined.expect("a join of demands is a demand"));
            }
            Some(Demand::Keys(a))
        }
    }
}

/// What `.key` needs of its input when `out` is needed of its answer.
fn key(name: String, out: Need) -> Need {
    Some(Demand::Keys(match out {
        Some(demand) => BTreeMap::from([(name, demand)]),
        // Looking a key up in an object never fails: only its type matters.
        None => BTreeMap::new(),
    }))
}

/// A string constant (`"a"`, `a` as an object key), without escapes.
fn constant(term: &Term<&str>) -> Option<String> {
    match term {
        Term::Str(None, parts) => parts
            .iter()
            .map(|part| match part {
                StrPart::Str(s) if !s.contains('\\') => Some(*s),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// What `term` needs of its input for `out` of each of its answers, and
/// for the same number of answers and the same errors in the same places.
fn needed(term: &Term<&str>, out: Need) -> Need {
    match term {
        Term::Id => out,
        Term::Num(_) | Term::Var(_) | Term::Break(_) => None,
        Term::Str(None, parts) => parts.iter().fold(None, |need, part| match part {
            StrPart::Term(t) => join(need, needed(t, all())),
            _ => need,
        }),
        Term::Arr(None) => None,
        // `[f]` answers one array of f's answers; arrays are read whole.
        Term::Arr(Some(f)) => needed(f, out.map(|_| Demand::All)),
        Term::Obj(entries) => entries.iter().fold(None, |need, (k, v)| {
            join(need, object_entry(k, v.as_ref(), &out))
        }),
        Term::BinOp(l, op, r) => binary(l, op, r, out),
        Term::Label(_, body) => needed(body, out),
        Term::Fold(_, source, _, args) => {
            // The updates run on the accumulator, not on the input.
            join(
                needed(source, all()),
                args.first().and_then(|init| needed(init, all())),
            )
        }
        Term::TryCatch(body, _) => needed(body, out),
        Term::IfThenElse(branches, otherwise) => {
            let need = branches.iter().fold(None, |need, (cond, then)| {
                join(
                    join(need, needed(cond, type_only())),
                    needed(then, out.clone()),
                )
            });
            join(
                need,
                match otherwise {
                    Some(e) => needed(e, out),
                    // No `else`: the input is the answer.
                    None => out,
                },
            )
        }
        Term::Call(name, args) => call(name, args, out),
        Term::Path(base, path) => {
            // Each index of a path runs on the path's input, not on the
            // value it indexes (`.users[.id]`).
            let mut need = out;
            let mut indexes = None;
            for (part, _) in path.0.iter().rev() {
                need = match part {
                    Part::Index(index) => match constant(index) {
                        Some(name) => key(name, need),
                        None => {
                            indexes = join(indexes, needed(index, all()));
                            all()
                        }
                    },
                    Part::Range(from, to) => {
                        for bound in [from, to].into_iter().flatten() {
                            indexes = join(indexes, needed(bound, all()));
                        }
                        all()
                    }
                };
            }
            join(needed(base, need), indexes)
        }
        // `..`, `-f`, `@format "..."`, `def`: the whole input.
        Term::Recurse | Term::Neg(_) | Term::Str(Some(_), _) | Term::Def(..) => all(),
    }
}

/// What `{k: v}` (or `{k}`, `{$x}`) needs of its input for `out` of the
/// object it makes.
fn object_entry(k: &Term<&str>, v: Option<&Term<&str>>, out: &Need) -> Need {
    let name = constant(k);
    // What is needed of this entry's value.
    let of_value = match (&name, out) {
        (_, None) => None,
        (Some(name), Some(Demand::Keys(keys))) => keys.get(name).cloned(),
        _ => all(),
    };
    match (k, v, name) {
        (_, Some(v), Some(_)) => needed(v, of_value),
        // `{(f): v}`: a key made by f, which must be a string.
        (k, Some(v), None) => join(needed(k, all()), needed(v, all())),
        (Term::Var(_), None, _) => None,
        // `{a}` is `{a: .a}`.
        (_, None, Some(name)) => key(name, of_value),
        (_, None, None) => all(),
    }
}

fn binary(l: &Term<&str>, op: &BinaryOp<&str>, r: &Term<&str>, out: Need) -> Need {
    match op {
        // r reads l's answers.
        BinaryOp::Pipe(None) => needed(l, needed(r, out)),
        // r reads the same input, with each of l's answers as `$x`.
        BinaryOp::Pipe(Some(Pattern::Var(x))) => {
            let of_l = if mentions(r, x) { all() } else { None };
            join(needed(l, of_l), needed(r, out))
        }
        BinaryOp::Comma => join(needed(l, out.clone()), needed(r, out)),
        // l's answers are tested, then given.
        BinaryOp::Alt => join(needed(l, join(out.clone(), type_only())), needed(r, out)),
        BinaryOp::Or | BinaryOp::And => join(needed(l, type_only()), needed(r, type_only())),
        // Arithmetic (whose errors show the operands) and comparisons (of
        // whole values): both operands whole.
        BinaryOp::Math(_) | BinaryOp::Cmp(_) => join(needed(l, all()), needed(r, all())),
        // Destructuring and assignments: the whole input.
        BinaryOp::Pipe(Some(_))
        | BinaryOp::Assign
        | BinaryOp::Update
        | BinaryOp::UpdateMath(_)
        | BinaryOp::UpdateAlt => all(),
    }
}

/// What a call of a builtin needs of its input (a whole input for any
/// other filter, which may read all of it or show it in an error).
fn call(name: &str, args: &[Term<&str>], out: Need) -> Need {
    match (name, args) {
        ("empty" | "null" | "true" | "false", []) => None,
        ("error", [message]) => needed(message, all()),
        ("type" | "not" | "isboolean" | "isnumber" | "isstring" | "isarray" | "isobject", []) => {
            type_only()
        }
        // A selection gives its input when its type matches.
        (
            "values" | "nulls" | "booleans" | "numbers" | "strings" | "arrays" | "objects"
            | "iterables" | "scalars",
            [],
        ) => join(type_only(), out),
        ("select", [test]) => join(needed(test, type_only()), join(type_only(), out)),
        ("has", [k]) => match constant(k) {
            Some(name) => Some(Demand::Keys(BTreeMap::from([(
                name,
                Demand::Keys(BTreeMap::new()),
            )]))),
            None => all(),
        },
        _ => all(),
    }
}

/// Whether `term` names the variable `var` anywhere (or binds it: either
/// way its answers are kept whole).
fn mentions(term: &Term<&str>, var: &str) -> bool {
    match term {
        Term::Var(x) => *x == var,
        // A definition may name it in its body: assume it does.
        Term::Def(..) => true,
        Term::BinOp(_, BinaryOp::Pipe(Some(p)), _) | Term::Fold(_, _, p, _)
            if pattern_mentions(p, var) =>
        {
            true
        }
        _ => subterms(term).into_iter().any(|t| mentions(t, var)),
    }
}

/// The terms directly inside `term` (a definition's aside).
fn subterms<'t, 's>(term: &'t Term<&'s str>) -> Vec<&'t Term<&'s str>> {
    match term {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Break(_) | Term::Var(_) | Term::Def(..) => {
            Vec::new()
        }
        Term::Arr(t) => t.iter().map(|t| &**t).collect(),
        Term::Str(_, parts) => parts
            .iter()
            .filter_map(|part| match part {
                StrPart::Term(t) => Some(t),
                _ => None,
            })
            .collect(),
        Term::Neg(t) | Term::Label(_, t) => vec![t],
        Term::Obj(entries) => entries
            .iter()
            .flat_map(|(k, v)| [Some(k), v.as_ref()])
            .flatten()
            .collect(),
        Term::BinOp(l, _, r) => vec![l, r],
        Term::Fold(_, source, _, args) => std::iter::once(&**source).chain(args).collect(),
        Term::TryCatch(body, catch) => std::iter::once(&**body).chain(catch.as_deref()).collect(),
        Term::IfThenElse(branches, otherwise) => branches
            .iter()
            .flat_map(|(c, t)| [c, t])
            .chain(otherwise.as_deref())
            .collect(),
        Term::Call(_, args) => args.iter().collect(),
        Term::Path(base, path) => std::iter::once(&**base)
            .chain(
                path.0
                    .iter()
                    .flat_map(|(part, _)| match part {
                        Part::Index(i) => [Some(i), None],
                        Part::Range(from, to) => [from.as_ref(), to.as_ref()],
                    })
                    .flatten(),
            )
            .collect(),
    }
}

fn pattern_mentions(pattern: &Pattern<&str>, var: &str) -> bool {
    match pattern {
        Pattern::Var(x) => *x == var,
        Pattern::Arr(patterns) => patterns.iter().any(|p| pattern_mentions(p, var)),
        Pattern::Obj(entries) => entries
            .iter()
            .any(|(k, p)| mentions(k, var) || pattern_mentions(p, var)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jq::Expression;
    use crate::jq::read::tests::json;
    use crate::jq::read::{parse, parse_for};
    use proptest::prelude::*;

    /// A demand written shortly: `*` all, `{a: ..., b}` keys (a bare key: its type only).
    fn shown(demand: &Demand) -> String {
        match demand {
            Demand::All => "*".into(),
            Demand::Keys(keys) => format!(
                "{{{}}}",
                keys.iter()
                    .map(|(k, d)| match d {
                        Demand::Keys(inner) if inner.is_empty() => k.clone(),
                        d => format!("{k}: {}", shown(d)),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    #[test]
    fn keys_looked_up_by_name_are_read_and_anything_else_reads_the_whole_value() {
        for (code, demand) in [
            (".a.b", "{a: {b: *}}"),
            (".records[]", "{records: *}"),
            (".a // .b", "{a: *, b: *}"),
            (".a | type", "{a}"),
            (
                "has(\"meta\") and (has(\"errors\") | not)",
                "{errors, meta}",
            ),
            (".a as $x | .b", "{b: *}"),
            (".a as $x | .b, $x", "{a: *, b: *}"),
            ("{x: .a, y: .b.c} | .x", "{a: *, b}"),
            ("{id, at: .t}", "{id: *, t: *}"),
            (".a + .b", "{a: *, b: *}"),
            (
                "if .kind == \"x\" then .x else empty end",
                "{kind: *, x: *}",
            ),
            ("error(\"no\")", "{}"),
            ("empty", "{}"),
            ("select(.a) | .b", "{a, b: *}"),
            ("select(.a)", "*"),
            (".", "*"),
            ("keys", "*"),
            (".[0]", "*"),
            (".[]", "*"),
            ("..", "*"),
            ("tostring", "*"),
            ("def f: .a; f", "*"),
            (". as {a: $x} | $x", "*"),
            (".a |= 1", "*"),
            ("if .a then .b end", "*"),
            (".a | (", "*"),
        ] {
            assert_eq!(shown(&Demand::of_events(code)), demand, "{code}");
        }
    }

    /// Expressions of every form [`needed`] knows, and of forms it does not.
    const EXPRESSIONS: &[&str] = &[
        ".a",
        ".a.b",
        ".a?.b?",
        ".[\"a\"]",
        ".\"ab\"",
        ".\"a\\u0062\"",
        ".a[]?",
        ".a[0]?",
        ".a // .b",
        ".a // empty",
        ".a.b // .b // {}",
        "has(\"a\")",
        "has(\"a\") and (has(\"b\") | not)",
        ".a or .b",
        ".a | type",
        "type",
        ".a | not",
        "if .a then .b elif .c then .a else .ab end",
        "if .a then .b end",
        "if .a.b then 1 else 2 end",
        ".a as $x | .b | [$x, .]",
        ".a as $x | .b",
        "{x: .a, y: .b.c}",
        "{a, b}",
        "{x: .a} | .x",
        "{x: .a, y: .b} | .x | type",
        "[.a, .b] | length",
        ".a + .b",
        ".a == .b",
        ".a < .id",
        "-.a?",
        "select(.a) | .b",
        ".a | select(type == \"object\") | .b",
        ".a | objects | .b",
        ".a | iterables | type",
        ".a | strings",
        ".a | values",
        "error(.a)",
        "try error(.a) catch .",
        "try .a.b catch .",
        "(.a.b)?",
        ".a[.b]?",
        ".a[\"b\"]",
        "keys",
        ".[]?",
        "..",
        "tostring",
        "reduce .a[]? as $x (0; . + 1)",
        "reduce (.a | .[]?) as $x (.b; .)",
        "foreach (.a[]?) as $x (0; . + 1; [$x, .])",
        "def f: .a; f",
        "\"\\(.a) \\(.b.id)\"",
        ".a | has(\"b\")",
        ".a | length",
        "label $out | .a, break $out",
        "to_entries",
        "del(.a)",
        ".a |= 1",
        "[paths]",
        "[.[]?]",
        "(.a, .b) | type",
        ". as {a: $x} | $x",
        "empty",
        "1",
        "null",
        "[.a | ..]",
        "limit(1; .a, .b)",
        "first(.a, .b)",
        "getpath([\"a\"])",
        "{(.a // \"k\" | tostring): .b}",
        ".a as $a | {$a}",
        "@json",
        "@base64 \"\\(.a)\"",
        ".a | error",
        ".a.b | error(.)",
        ".a | .b? // \"none\"",
    ];

    /// Each expression's answers (or error) on the document read whole and
    /// read with the expression's demand.
    fn answers_both_ways(text: &str) -> Vec<(&'static str, String, String)> {
        let answers = |code: &str, read: Result<jaq_json::Val, String>| match read {
            Err(e) => format!("not read: {e}"),
            Ok(value) => format!(
                "{:?}",
                Expression::compile(code)
                    .expect("compiles")
                    .run(value, 100)
                    .map(|vs| vs.iter().map(ToString::to_string).collect::<Vec<_>>())
            ),
        };
        EXPRESSIONS
            .iter()
            .map(|code| {
                let demand = Demand::of_events(code);
                (
                    *code,
                    answers(code, parse(text.as_bytes())),
                    answers(code, parse_for(text.as_bytes(), &demand)),
                )
            })
            .collect()
    }

    #[test]
    fn an_expression_answers_the_same_on_the_record_read_whole_or_as_it_demands() {
        for text in [
            r#"{"a": {"b": {"x": 1}, "c": [1]}, "b": {"id": 5, "c": {"d": []}}, "ab": "s", "z": {"q": [1, {"a": 2}]}}"#,
            r#"{"a": [{"b": 1}, 2], "b": null, "c": false, "id": "x"}"#,
            r#"{"a": {"b": 1}, "a": {"c": 2}, "b": 3}"#,
            r#"{"\u0061": {"\u0062": 2, "z": 1}, "a\u0062": 1, "zz": 1}"#,
            r#"{"a": "str", "b": {}, "c": {"a": 1}}"#,
            r#"{"a": {"id": 1, "z": {"deep": [1, 2]}}, "b": {"z": 1}}"#,
            r#"{"z": 1}"#,
            r#"[{"a": 1}, {"b": 2}]"#,
            r#""a""#,
            "null",
        ] {
            for (code, whole, demanded) in answers_both_ways(text) {
                assert_eq!(whole, demanded, "{code} on {text}");
            }
        }
    }

    #[test]
    fn a_document_is_refused_whether_or_not_its_broken_part_is_read() {
        let deep = format!(
            r#"{{"z": {}1{}, "a": 1}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let wants_a = Demand::of_events(".a");
        for text in [
            r#"{"a": 1, "z": [1,]}"#,
            r#"{"a": 1, "z": {"q" 1}}"#,
            r#"{"a": 1, "z": "\x"}"#,
            r#"{"a": 1, "z": nul}"#,
            r#"{"a": 1, "z": -}"#,
            r#"{"a": 1, "z": {1: 2}}"#,
            &deep,
        ] {
            let whole = parse(text.as_bytes());
            assert_eq!(
                format!("{:?}", parse_for(text.as_bytes(), &wants_a)),
                format!("{whole:?}"),
                "{text}"
            );
        }
    }

    #[test]
    fn what_is_not_demanded_is_checked_and_left_out() {
        let text =
            r#"{"z": [NaN, Infinity, -5e3, "é\"", {"b": {}}], "a": {"b": 1, "c": 2}} # fine"#;
        let read = parse_for(text.as_bytes(), &Demand::of_events(".a.b"));
        assert_eq!(read.unwrap().to_string(), r#"{"a":{"b":1}}"#);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_json_gives_the_same_answers_read_whole_or_as_demanded(text in json()) {
            for (code, whole, demanded) in answers_both_ways(&text) {
                prop_assert_eq!(whole, demanded, "{} on {}", code, text);
            }
        }
    }
}
