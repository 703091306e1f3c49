//! Typed access to a plugin's `parameters` mapping. Every key read is
//! recorded; [`Params::finish`] rejects the keys nobody read, suggesting the
//! nearest known one.

use super::error::{suggest, ConfigError};
use serde_yaml_ng::{Mapping, Value};

/// The parameters of one plugin (or one nested object of them).
pub(crate) struct Params<'a> {
    path: String,
    map: Option<&'a Mapping>,
    known: Vec<&'static str>,
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{s}\""),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

impl<'a> Params<'a> {
    /// Parameters of plugin `path`; `None` or null means none were given.
    pub(crate) fn new(path: &str, value: Option<&'a Value>) -> Result<Self, ConfigError> {
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => Some(m),
            Some(other) => {
                return Err(ConfigError::BadParameter {
                    plugin: path.into(),
                    param: "parameters".into(),
                    expected: "a mapping".into(),
                    got: describe(other),
                })
            }
        };
        Ok(Params {
            path: path.into(),
            map,
            known: Vec::new(),
        })
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, expected: &str, v: &Value) -> ConfigError {
        ConfigError::BadParameter {
            plugin: self.path.clone(),
            param: key.into(),
            expected: expected.into(),
            got: describe(v),
        }
    }

    /// A non-negative integer.
    pub(crate) fn u64(&mut self, key: &'static str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a non-negative integer", v)),
        }
    }

    /// A number.
    pub(crate) fn f64(&mut self, key: &'static str) -> Result<Option<f64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a number", v)),
        }
    }

    /// A boolean.
    pub(crate) fn bool(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.bad(key, "true or false", v)),
        }
    }

    /// A string.
    pub(crate) fn str(&mut self, key: &'static str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a string", v)),
        }
    }

    /// A string out of `choices`.
    pub(crate) fn choice(
        &mut self,
        key: &'static str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, ConfigError> {
        let Some(s) = self.str(key)? else {
            return Ok(None);
        };
        match choices.iter().find(|c| **c == s) {
            Some(c) => Ok(Some(c)),
            None => Err(ConfigError::BadParameter {
                plugin: self.path.clone(),
                param: key.into(),
                expected: format!("one of {}", choices.join(", ")),
                got: format!("\"{s}\""),
            }),
        }
    }

    /// A Go duration (`"2s"`, `"500ms"`, `"2m"`) or an integer of nanoseconds.
    pub(crate) fn duration_ns(&mut self, key: &'static str) -> Result<Option<u64>, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        if let Some(n) = v.as_u64() {
            return Ok(Some(n));
        }
        v.as_str()
            .and_then(parse_go_duration_ns)
            .map(Some)
            .ok_or_else(|| self.bad(key, "a duration such as \"2s\" or \"500ms\"", v))
    }

    /// A nested mapping, as its own `Params`.
    pub(crate) fn nested(&mut self, key: &'static str) -> Result<Option<Params<'a>>, ConfigError> {
        let path = format!("{}.{key}", self.path);
        match self.get(key) {
            None => Ok(None),
            Some(v) => Params::new(&path, Some(v)).map(Some),
        }
    }

    /// A list value.
    pub(crate) fn list(&mut self, key: &'static str) -> Result<Option<&'a [Value]>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Sequence(s)) => Ok(Some(s.as_slice())),
            Some(v) => Err(self.bad(key, "a list", v)),
        }
    }

    /// A key accepted for compatibility whose value is not interpreted.
    pub(crate) fn ignore(&mut self, key: &'static str) {
        let _ = self.get(key);
    }

    /// Fails on any key that no getter asked for.
    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        let Some(map) = self.map else {
            return Ok(());
        };
        for k in map.keys() {
            let name = k.as_str().unwrap_or("<non-string key>");
            if !self.known.contains(&name) {
                return Err(ConfigError::UnknownParameter {
                    plugin: self.path.clone(),
                    param: name.into(),
                    suggestion: suggest(name, &self.known),
                    valid: self.known.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Parses a Go duration of one or more `<number><unit>` terms (ns, us, µs, ms, s, m, h).
pub fn parse_go_duration_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration_ns("2s"), Some(2_000_000_000));
        assert_eq!(parse_go_duration_ns("500ms"), Some(500_000_000));
        assert_eq!(parse_go_duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration_ns("2"), None);
        assert_eq!(parse_go_duration_ns("abc"), None);
    }

    #[test]
    fn unknown_key_is_rejected_with_suggestion() {
        let v: Value =
            serde_yaml_ng::from_str("{maxPrefixBlocksToMatch: 3, lruCapacityPerServr: 5}").unwrap();
        let mut p = Params::new("prefix-cache-scorer", Some(&v)).unwrap();
        assert_eq!(p.u64("maxPrefixBlocksToMatch").unwrap(), Some(3));
        assert_eq!(p.u64("lruCapacityPerServer").unwrap(), None);
        match p.finish() {
            Err(ConfigError::UnknownParameter {
                param, suggestion, ..
            }) => {
                assert_eq!(param, "lruCapacityPerServr");
                assert_eq!(suggestion.as_deref(), Some("lruCapacityPerServer"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_type_names_field() {
        let v: Value = serde_yaml_ng::from_str("{threshold: \"x\"}").unwrap();
        let mut p = Params::new("load-aware-scorer", Some(&v)).unwrap();
        let e = p.u64("threshold").unwrap_err();
        assert!(e.to_string().contains("\"threshold\""), "{e}");
    }
}
