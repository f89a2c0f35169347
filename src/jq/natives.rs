//! jq builtins that jaq defines in jq, given here as native filters with
//! the same answers: `null`, `true`, `false`, `not`, `type` and `empty`;
//! the type tests `isboolean`, `isnumber`, `isstring`, `isarray` and
//! `isobject`; and the selections `values`, `nulls`, `booleans`,
//! `numbers`, `strings`, `arrays`, `objects`, `iterables` and `scalars`.
//!
//! Why: jaq builds them from other definitions (`def null: [][0];`,
//! `def true: 0 == 0;`, `def type: if . == null then "null" elif
//! isboolean then ...`), so each use runs a small program. Measured with
//! cachegrind on the bench's X API pages, one `type` call took about 28,000
//! instructions and `. != null` about 11,000, most of a field's cost: these
//! are in nearly every transform (`select(.x != null)`, `// empty`,
//! `select(type == "string")`). `strings` (`select(. >= "" and . < [])`)
//! took about 8,500 instructions a call. jq itself implements these
//! natively (in C), as constants and builtins.
//!
//! Not a second jq: each is a single step on one value, and a test checks
//! that every one answers as jaq's own definition does, paths and updates
//! included where jq allows them (`path(empty)`, `del(.[] | select(...))`).

use jaq_core::box_iter::box_once;
use jaq_core::load::parse::Def;
use jaq_core::native::{Filter, Fun, run, v};
use jaq_core::{Native, RunPtr, ValT as _, data};
use jaq_json::Val;
use std::sync::OnceLock;

type D = data::JustLut<Val>;

/// The definitions these natives replace (all without arguments): those
/// named by [`funs`].
pub(super) fn replaces(def: &Def<&str>) -> bool {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| funs().map(|(name, ..)| name).collect());
    def.args.is_empty() && names.contains(&def.name)
}

/// A selection (`def strings: select(isstring);`): the input when it
/// matches `$kind`, else nothing; its path likewise; an update changes it
/// when it matches and leaves it as it is otherwise (as `select`'s `if`
/// does, with `empty`'s update in its `else`).
macro_rules! selection {
    ($name:literal, $kind:pat) => {
        (
            $name,
            v(0),
            Native::new(|(_, x)| match x {
                $kind => box_once(Ok(x)),
                _ => Box::new(std::iter::empty()),
            })
            .with_paths(|(_, (x, path))| match x {
                $kind => box_once(Ok((x, path))),
                _ => Box::new(std::iter::empty()),
            })
            .with_update(|(_, x), f| match x {
                $kind => f(x),
                _ => box_once(Ok(x)),
            }),
        )
    };
}

/// A type test (`def isstring: . >= "" and . < [];`): whether the input
/// matches `$kind`. Like jaq's definitions, it has no path.
macro_rules! type_test {
    ($name:literal, $kind:pat) => {
        (
            $name,
            v(0),
            (|(_, x)| box_once(Ok(Val::Bool(matches!(x, $kind))))) as RunPtr<D>,
        )
    };
}

/// The native filters, in place of the definitions [`replaces`] drops.
pub(super) fn funs() -> impl Iterator<Item = Fun<D>> {
    let runs: [Filter<RunPtr<D>>; 10] = [
        ("null", v(0), |_| box_once(Ok(Val::Null))),
        ("true", v(0), |_| box_once(Ok(Val::Bool(true)))),
        ("false", v(0), |_| box_once(Ok(Val::Bool(false)))),
        ("not", v(0), |(_, x)| box_once(Ok(Val::Bool(!x.as_bool())))),
        ("type", v(0), |(_, x)| {
            box_once(Ok(Val::from(type_name(&x).to_string())))
        }),
        type_test!("isboolean", Val::Bool(_)),
        type_test!("isnumber", Val::Num(_)),
        type_test!("isstring", Val::TStr(_) | Val::BStr(_)),
        type_test!("isarray", Val::Arr(_)),
        type_test!("isobject", Val::Obj(_)),
    ];
    // No value and no path; updating no path leaves the input as it is.
    let empty: Fun<D> = (
        "empty",
        v(0),
        Native::new(|_| Box::new(std::iter::empty()))
            .with_paths(|_| Box::new(std::iter::empty()))
            .with_update(|(_, x), _| box_once(Ok(x))),
    );
    let selections: [Fun<D>; 9] = [
        selection!(
            "values",
            Val::Bool(_) | Val::Num(_) | Val::TStr(_) | Val::BStr(_) | Val::Arr(_) | Val::Obj(_)
        ),
        selection!("nulls", Val::Null),
        selection!("booleans", Val::Bool(_)),
        selection!("numbers", Val::Num(_)),
        selection!("strings", Val::TStr(_) | Val::BStr(_)),
        selection!("arrays", Val::Arr(_)),
        selection!("objects", Val::Obj(_)),
        selection!("iterables", Val::Arr(_) | Val::Obj(_)),
        selection!(
            "scalars",
            Val::Null | Val::Bool(_) | Val::Num(_) | Val::TStr(_) | Val::BStr(_)
        ),
    ];
    runs.into_iter()
        .map(run::<D>)
        .chain([empty])
        .chain(selections)
}

/// jq's name of a value's type. jaq's byte strings are strings.
fn type_name(value: &Val) -> &'static str {
    match value {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Num(_) => "number",
        Val::TStr(_) | Val::BStr(_) => "string",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Expression, RunError, parse};

    /// Every program's answers (values, or the error's text) on every
    /// input, with the natives and with jaq's own definitions.
    fn answers(with_natives: bool, programs: &[&str], inputs: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for program in programs {
            let expression = Expression::compile_with(program, with_natives)
                .unwrap_or_else(|e| panic!("{program}: {e:?}"));
            for input in inputs {
                let answer: Result<Vec<String>, RunError> = expression
                    .run_interpreted(parse(input.as_bytes()).unwrap(), 100)
                    .map(|values| values.iter().map(|v| v.to_string()).collect());
                out.push(format!("{program} on {input}: {answer:?}"));
            }
        }
        out
    }

    #[test]
    fn the_natives_answer_as_jaqs_definitions_do() {
        let inputs = [
            "null",
            "true",
            "false",
            "0",
            "-1.5",
            "\"\"",
            "\"a\"",
            "[]",
            r#"[null, false, 1, "x", [2], {}]"#,
            r#"{"a": null, "b": 1, "c": {"d": [false, "e"]}}"#,
        ];
        let programs = [
            // The natives themselves.
            "null",
            "true",
            "false",
            "not",
            "type",
            "[empty]",
            "[.[]? | type]",
            "[.[]? | not]",
            ". == null",
            ". != null and . != false",
            // In paths and updates, where jq allows them.
            "[path(empty)]",
            "[path(.[]? | select(. != null))]",
            "del(.[]? | select(. == null))",
            "(.[]? | select(type == \"number\")) |= . + 1",
            "(empty) |= 1",
            "[paths]",
            "path(null)",
            "path(not)",
            // The type tests and selections, on values, paths and updates.
            "[.. | [isboolean, isnumber, isstring, isarray, isobject]]",
            "[.. | values], [.. | nulls], [.. | booleans], [.. | arrays]",
            "[.. | objects], [.. | iterables | length]",
            "[path(.. | strings)], [path(.. | scalars)], [path(.. | values)]",
            "[paths(isnumber)]",
            "(.. | strings) |= ascii_upcase",
            "(.. | numbers) |= . * 2",
            "(.[]? | nulls) |= 0",
            "del(.. | nulls)",
            "del(.[]? | booleans)",
            "(.[]? | values) |= empty",
            "(.[]? | arrays) |= length",
            "[(.[]? | objects) |= keys]",
            "path(isstring)",
            "(isarray) |= 1",
            "(\"a\", [1] | tobytes) | [type, isstring, strings, scalars]",
            // Library filters built on them.
            "[.. | strings]",
            "[.. | numbers]",
            "[.. | scalars]",
            "[.. | iterables | length]",
            "[.[]? | booleans]",
            "[.[]? | values]",
            "[.[]? | nulls]",
            "to_entries? | map(select(.value != null)) | from_entries",
            "any(.[]?; . == null)",
            "all(.[]?; . != null)",
            "isempty(.[]?)",
            "first(.[]?)",
            "[limit(2; .[]?)]",
            "walk(if type == \"number\" then . + 1 else . end)",
            "try error(\"x\") catch type",
            ".[]? // \"none\"",
            "tostring",
            "[splits(\"a\")?]",
            "ascii_downcase? // empty",
            "[.[]? | try (type == \"string\") catch false]",
        ];
        let natives = answers(true, &programs, &inputs);
        let definitions = answers(false, &programs, &inputs);
        for (native, defined) in natives.iter().zip(&definitions) {
            assert_eq!(native, defined);
        }
        assert_eq!(natives.len(), programs.len() * inputs.len());
    }

    #[test]
    fn type_names_every_kind_of_value() {
        let program = Expression::compile("[.[] | type]").unwrap();
        let input = parse(br#"[null, true, 1, 1.5, "s", [], {}]"#).unwrap();
        let names = program.run_interpreted(input, 1).unwrap();
        assert_eq!(
            names[0].to_string(),
            r#"["null","boolean","number","number","string","array","object"]"#
        );
    }
}
