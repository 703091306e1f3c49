//! Field-level diagnosis of a JSON line that failed the fast typed parse.
//!
//! Readers deserialize each line straight into a typed struct (fast path).
//! Only when that fails is the line re-parsed as a `serde_json::Value` and
//! checked field by field, so the error names the field and the bad value.

use serde_json::{Map, Value};

use super::error::{suggest, FieldError};

/// The JSON type a field must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Non-negative integer that fits `u32`.
    U32,
    /// Non-negative integer that fits `u64`.
    U64,
    /// Array of non-negative integers that fit `u32`.
    U32Array,
    /// Array of non-negative integers that fit `u64`.
    U64Array,
    /// String.
    Str,
}

/// One field of a line schema.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    /// Field name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Must be present (and not null).
    pub required: bool,
}

/// Finds the first problem of `line` against `schema`; `fallback` is the
/// typed parser's message, used when no field-level problem is found.
pub fn diagnose(
    line: &str,
    schema: &[FieldSpec],
    deny_unknown: bool,
    fallback: &str,
) -> FieldError {
    let obj = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(obj)) => obj,
        Ok(other) => {
            return FieldError::new(
                "line",
                format!("expected a JSON object, got {}", describe(&other)),
            )
        }
        Err(e) => return FieldError::new("line", format!("invalid JSON: {e}")),
    };
    if let Some(e) = check_object(&obj, schema, deny_unknown) {
        return e;
    }
    FieldError::new("line", fallback.to_string())
}

fn check_object(
    obj: &Map<String, Value>,
    schema: &[FieldSpec],
    deny_unknown: bool,
) -> Option<FieldError> {
    for f in schema {
        match obj.get(f.name) {
            None | Some(Value::Null) if f.required => {
                return Some(FieldError::new(f.name, "missing required field"));
            }
            None | Some(Value::Null) => {}
            Some(v) => {
                if let Some(problem) = check_value(v, f.kind) {
                    return Some(FieldError::new(f.name, problem));
                }
            }
        }
    }
    if deny_unknown {
        let names: Vec<&str> = schema.iter().map(|f| f.name).collect();
        // serde_json's Map is a BTreeMap: the first unknown key is deterministic.
        if let Some(k) = obj.keys().find(|k| !names.contains(&k.as_str())) {
            return Some(FieldError::new(
                k.as_str(),
                format!("unknown field{}", suggest(k, &names)),
            ));
        }
    }
    None
}

fn check_value(v: &Value, kind: Kind) -> Option<String> {
    match kind {
        Kind::U32 => check_uint(v, u32::MAX as u64),
        Kind::U64 => check_uint(v, u64::MAX),
        Kind::Str => (!v.is_string()).then(|| format!("expected string, got {}", describe(v))),
        Kind::U32Array | Kind::U64Array => {
            let max = if kind == Kind::U32Array {
                u32::MAX as u64
            } else {
                u64::MAX
            };
            let Value::Array(items) = v else {
                return Some(format!("expected array of integers, got {}", describe(v)));
            };
            items
                .iter()
                .enumerate()
                .find_map(|(i, x)| check_uint(x, max).map(|p| format!("element {i}: {p}")))
        }
    }
}

fn check_uint(v: &Value, max: u64) -> Option<String> {
    match v.as_u64() {
        Some(n) if n <= max => None,
        Some(n) => Some(format!("{n} is out of range (max {max})")),
        None => Some(format!(
            "expected non-negative integer, got {}",
            describe(v)
        )),
    }
}

/// A short rendering of a JSON value for messages (`"abc"`, `-3`, `array`).
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() > 40 => {
            format!("{:?}…", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[FieldSpec] = &[
        FieldSpec {
            name: "a",
            kind: Kind::U32,
            required: true,
        },
        FieldSpec {
            name: "ids",
            kind: Kind::U64Array,
            required: false,
        },
    ];

    #[test]
    fn names_field_and_value() {
        let e = diagnose(r#"{"a": "abc"}"#, SCHEMA, false, "x");
        assert_eq!(
            (e.field.as_str(), e.problem.as_str()),
            ("a", "expected non-negative integer, got \"abc\"")
        );
        let e = diagnose(r#"{"ids": [1]}"#, SCHEMA, false, "x");
        assert_eq!(
            (e.field.as_str(), e.problem.as_str()),
            ("a", "missing required field")
        );
        let e = diagnose(r#"{"a": 1, "ids": [1, -2]}"#, SCHEMA, false, "x");
        assert_eq!(
            e.problem,
            "element 1: expected non-negative integer, got -2"
        );
        let e = diagnose(r#"{"a": 5000000000}"#, SCHEMA, false, "x");
        assert!(e.problem.contains("out of range"));
    }

    #[test]
    fn unknown_fields_and_syntax() {
        let e = diagnose(r#"{"a": 1, "idz": []}"#, SCHEMA, true, "x");
        assert_eq!(e.field, "idz");
        assert!(e.problem.contains("did you mean \"ids\""));
        assert_eq!(diagnose("{", SCHEMA, true, "x").field, "line");
        assert!(diagnose("[1]", SCHEMA, true, "x")
            .problem
            .contains("JSON object"));
    }
}
