//! Scenario errors that name the file, line, field and value.

use std::fmt;
use std::path::{Path, PathBuf};

/// A scenario that cannot be loaded or run.
#[derive(Debug)]
pub struct ScenarioError {
    /// The scenario file.
    pub file: PathBuf,
    /// 1-based line of the offending field, when it can be found.
    pub line: Option<usize>,
    /// Dotted field path, e.g. `pods[0].gpu`.
    pub field: String,
    /// What is wrong, with the value and a suggestion.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Builds errors for one scenario file, finding lines in its text.
#[derive(Clone, Debug)]
pub struct ErrorCtx<'a> {
    /// File path.
    pub file: &'a Path,
    /// File text.
    pub text: &'a str,
}

impl ErrorCtx<'_> {
    /// An error at `field` (dotted path); the line is the first line whose key
    /// is the path's last component and, if given, whose value contains `value`.
    pub fn err(
        &self,
        field: &str,
        value: Option<&str>,
        message: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError {
            file: self.file.to_path_buf(),
            line: locate(self.text, field, value),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Line (1-based) of `key: value` for the last component of `field`:
/// an exact value match first, then a line containing the value, then the key alone.
pub fn locate(text: &str, field: &str, value: Option<&str>) -> Option<usize> {
    let key = field.rsplit('.').next().unwrap_or(field);
    let key = key.split('[').next().unwrap_or(key);
    if key.is_empty() {
        return None;
    }
    // `key: value` in block style or inside a flow mapping `{a: 1, key: v}`.
    let values = || {
        text.lines().enumerate().filter_map(move |(i, line)| {
            let mut from = 0;
            while let Some(pos) = line[from..].find(key) {
                let at = from + pos;
                let before_ok = line[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| " -{,\t".contains(c));
                let rest = line[at + key.len()..].trim_start();
                if before_ok {
                    if let Some(v) = rest.strip_prefix(':') {
                        let v = v.split([',', '}']).next().unwrap_or("").trim();
                        return Some((i + 1, v.trim_matches(|c| c == '"' || c == '\'')));
                    }
                }
                from = at + key.len();
            }
            None
        })
    };
    if let Some(val) = value {
        if let Some((l, _)) = values().find(|(_, v)| *v == val) {
            return Some(l);
        }
        if let Some((l, _)) = values().find(|(_, v)| v.contains(val)) {
            return Some(l);
        }
    }
    values().next().map(|(l, _)| l)
}

/// The valid name closest to `got` (Jaro-Winkler ≥ 0.7), for "did you mean".
pub fn nearest<'a>(got: &str, valid: &[&'a str]) -> Option<&'a str> {
    let g = got.to_ascii_lowercase();
    valid
        .iter()
        .map(|v| (strsim::jaro_winkler(&g, &v.to_ascii_lowercase()), *v))
        .filter(|(s, _)| *s >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v)
}

/// `; did you mean "x"?` for the valid name nearest to `got`, or empty.
pub(crate) fn did_you_mean(got: &str, valid: &[&str]) -> String {
    nearest(got, valid)
        .map(|s| format!("; did you mean \"{s}\"?"))
        .unwrap_or_default()
}

/// A scenario error from serde_yaml_ng's, with the field path in front.
///
/// serde reports an error raised while converting a value (`try_from`, as
/// for `router:` and `workload.arrivals`) at the enclosing mapping and
/// prefixes only that mapping's path: "workload: arrivals.cv: msg" is
/// joined into "workload.arrivals.cv: msg", and a line that does not hold the
/// field's key gives way to the key's own line.
pub(crate) fn from_serde(file: &Path, text: &str, e: &serde_yaml_ng::Error) -> ScenarioError {
    let msg = strip_location(&e.to_string());
    let mut line = e.location().map(|l| l.line());
    let (path, rest) = leading_path(&msg);
    let message = if path.is_empty() {
        msg.clone()
    } else {
        let key = path.rsplit('.').next().unwrap_or(&path);
        let key = key.split('[').next().unwrap_or(key);
        let holds_key = line
            .and_then(|l| text.lines().nth(l.wrapping_sub(1)))
            .is_some_and(|t| t.contains(key));
        if !holds_key {
            // The key's line, or its nearest ancestor's (a missing field).
            let mut p = path.as_str();
            line = loop {
                if let Some(l) = locate(text, p, None) {
                    break Some(l);
                }
                match p.rfind(['.', '[']) {
                    Some(i) => p = &p[..i],
                    None => break line,
                }
            };
        }
        match line.and_then(|l| value_key_below(text, l, rest)) {
            Some((l, key)) => {
                line = Some(l);
                format!("{path}: `{key}`: {rest}")
            }
            None => format!("{path}: {rest}"),
        }
    };
    ScenarioError {
        file: file.to_path_buf(),
        line,
        field: String::new(),
        message: with_suggestion(&message),
    }
}

/// Inside a section serde buffers (`step_time:`, tagged by `model:`) an
/// "invalid type/value" error names neither the field nor its line, only
/// the offending value: the first `key: value` line at or below `from_line`
/// holding that value, and its key. None when `from_line` holds the value
/// itself (serde's line is already right) or nothing matches.
fn value_key_below(text: &str, from_line: usize, rest: &str) -> Option<(usize, String)> {
    if !rest.starts_with("invalid ") {
        return None;
    }
    let open = rest.find(['"', '`'])?;
    let close = rest[open + 1..].find(&rest[open..=open])? + open + 1;
    let value = &rest[open + 1..close];
    if value.is_empty() {
        return None;
    }
    let key_at = |line: &str| -> Option<String> {
        let mut from = 0;
        while let Some(i) = line[from..].find(": ") {
            let at = from + i;
            let v = line[at + 2..].trim_start().trim_start_matches(['"', '\'']);
            let ends = v.strip_prefix(value).is_some_and(|tail| {
                tail.is_empty() || tail.starts_with(['"', '\'', ',', '}', ' ', '#'])
            });
            if ends {
                let start = line[..at].rfind([' ', '{', ',', '-']).map_or(0, |j| j + 1);
                return Some(line[start..at].to_string()).filter(|k| !k.is_empty());
            }
            from = at + 2;
        }
        None
    };
    let mut lines = text.lines().enumerate().skip(from_line.saturating_sub(1));
    let (_, first) = lines.next()?;
    if key_at(first).is_some() {
        return None;
    }
    lines.find_map(|(i, l)| key_at(l).map(|k| (i + 1, k)))
}

/// Splits "a.b: c[0].d: message" into ("a.b.c[0].d", "message").
fn leading_path(msg: &str) -> (String, &str) {
    let is_path = |seg: &str| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.[]\"-".contains(c))
    };
    let mut parts: Vec<&str> = Vec::new();
    let mut rest = msg;
    while let Some((seg, tail)) = rest.split_once(": ") {
        if !is_path(seg) {
            break;
        }
        parts.push(seg);
        rest = tail;
    }
    (parts.join("."), rest)
}

/// serde_yaml_ng appends " at line L column C"; the error already carries the line.
pub(crate) fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Adds "did you mean" to a serde "unknown field/variant" message.
pub fn with_suggestion(msg: &str) -> String {
    // serde: "unknown field `x`, expected one of `a`, `b`" / "expected `a` or `b`"
    let Some(start) = msg.find('`') else {
        return msg.to_string();
    };
    let Some(len) = msg[start + 1..].find('`') else {
        return msg.to_string();
    };
    let got = &msg[start + 1..start + 1 + len];
    let rest = &msg[start + 1 + len + 1..];
    let valid: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    match nearest(got, &valid) {
        Some(s) if msg.contains("unknown field") || msg.contains("unknown variant") => {
            format!("{msg}; did you mean `{s}`?")
        }
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_errors_get_their_full_path_and_own_line() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            workload: Workload,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Workload {
            n: u32,
            arrivals: Arrivals,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(try_from = "u32")]
        struct Arrivals;
        impl TryFrom<u32> for Arrivals {
            type Error = &'static str;
            fn try_from(_: u32) -> Result<Arrivals, &'static str> {
                Err("arrivals.rate: must be positive")
            }
        }
        let text = "workload:\n  n: 1\n  arrivals: 0\n";
        let e = serde_yaml_ng::from_str::<Doc>(text).unwrap_err();
        let se = from_serde(Path::new("s.yaml"), text, &e);
        assert_eq!(
            se.to_string(),
            "s.yaml:3: workload.arrivals.rate: must be positive"
        );
        // A plain type error keeps serde's own (right) line and path.
        let text = "workload:\n  n: x\n  arrivals: 0\n";
        let e = serde_yaml_ng::from_str::<Doc>(text).unwrap_err();
        let se = from_serde(Path::new("s.yaml"), text, &e);
        assert!(
            se.to_string()
                .starts_with("s.yaml:2: workload.n: invalid type"),
            "{se}"
        );
    }

    #[test]
    fn a_bad_value_inside_a_buffered_section_is_named_by_its_key_and_line() {
        let text = "pods:\n  - count: 1\n    step_time: {model: roofline, mfu_prefill: abc}\n";
        let rest = "invalid type: string \"abc\", expected f64";
        assert_eq!(
            value_key_below(text, 1, rest),
            Some((3, "mfu_prefill".into()))
        );
        // serde's own line holds the value: nothing to add.
        assert_eq!(value_key_below(text, 3, rest), None);
        assert_eq!(value_key_below(text, 1, "missing field `x`"), None);
        let block = "a:\n  b:\n    t_cpu_us: \"slow\"\n";
        assert_eq!(
            value_key_below(block, 1, "invalid type: string \"slow\", expected f64"),
            Some((3, "t_cpu_us".into()))
        );
    }

    #[test]
    fn locates_fields_and_suggests() {
        let text = "name: x\npods:\n  - gpu: H100\n    model: Llama\n  - gpu: H10\n";
        assert_eq!(locate(text, "pods[1].gpu", Some("H10")), Some(5));
        assert_eq!(locate(text, "pods[0].model", None), Some(4));
        assert_eq!(locate(text, "nothing", None), None);
        assert_eq!(
            nearest("rond-robin", &["round-robin", "random"]),
            Some("round-robin")
        );
        assert_eq!(nearest("zzz", &["round-robin", "random"]), None);
        let m = with_suggestion(
            "unknown field `blok_size`, expected one of `block_size`, `max_num_seqs`",
        );
        assert!(m.ends_with("did you mean `block_size`?"), "{m}");
    }
}
