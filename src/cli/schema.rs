//! `streamstack schema`: the stack file's JSON Schema, for editors.

use super::Exit;
use crate::spec::schema::document_schema;

pub fn run() -> Exit {
    println!(
        "{}",
        serde_json::to_string_pretty(document_schema()).expect("a JSON value always serializes")
    );
    Exit::Ok
}
