//! Kubernetes YAML plumbing for the deployment import (`modelservice.rs`):
//! multi-document files, Go-template placeholders, path-aware line lookup,
//! and reading containers (command, args, env, GPU resources) with the field
//! and line each value came from, so every warning and error can name it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use super::error::{strip_location, ScenarioError};

/// Where a value came from: file, 1-based line (when found) and dotted field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when the locator finds it.
    pub line: Option<usize>,
    /// Dotted path, e.g. `spec.decode.containers[0].env[1]`.
    pub field: String,
}

impl Origin {
    /// An error at this origin.
    pub fn err(&self, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.clone(),
            line: self.line,
            field: self.field.clone(),
            message: message.into(),
        }
    }
}

/// A warning or a "recognised" record of the import, naming its field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportNote {
    /// Where.
    pub at: Origin,
    /// What was recognised, assumed or not modelled.
    pub message: String,
}

impl fmt::Display for ImportNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.at.file.display())?;
        if let Some(l) = self.at.line {
            write!(f, ":{l}")?;
        }
        if self.at.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.at.field, self.message)
        }
    }
}

/// Warnings (not modelled, assumed, unknown) and recognised fields, in input order.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    /// Everything the simulator cannot model or had to assume.
    pub warnings: Vec<ImportNote>,
    /// Everything read and what it became (or why it does not matter).
    pub recognised: Vec<ImportNote>,
}

impl Notes {
    /// Adds a warning.
    pub fn warn(&mut self, at: &Origin, message: impl Into<String>) {
        self.warnings.push(ImportNote {
            at: at.clone(),
            message: message.into(),
        });
    }

    /// Adds a recognised-field record.
    pub fn ok(&mut self, at: &Origin, message: impl Into<String>) {
        self.recognised.push(ImportNote {
            at: at.clone(),
            message: message.into(),
        });
    }
}

/// One YAML text (a whole file, one `---` document of it, or a string
/// embedded in a ConfigMap) with what is needed to name its fields.
#[derive(Clone, Debug)]
pub struct Src {
    /// The file.
    pub file: PathBuf,
    /// The YAML text of this document.
    pub text: String,
    /// Lines of the file before `text` starts.
    pub line_offset: usize,
    /// Prefix for field paths, e.g. `data.decodeDeployment.`.
    pub prefix: String,
}

impl Src {
    /// Origin of `path` (dotted, with `[i]` indices) inside this text.
    pub fn at(&self, path: &str) -> Origin {
        Origin {
            file: self.file.clone(),
            line: line_of(&self.text, path).map(|l| l + self.line_offset),
            field: format!("{}{path}", self.prefix),
        }
    }

    /// An error at `path`.
    pub fn err(&self, path: &str, message: impl Into<String>) -> ScenarioError {
        self.at(path).err(message)
    }

    /// A nested text (a ConfigMap value holding YAML) found at `path`.
    pub fn embedded(&self, path: &str, text: &str) -> Src {
        // A block scalar's content starts on the line after its key.
        let key_line = line_of(&self.text, path).unwrap_or(0);
        Src {
            file: self.file.clone(),
            text: text.to_string(),
            line_offset: self.line_offset + key_line,
            prefix: format!("{}{path}.", self.prefix),
        }
    }
}

/// Splits a file into its `---` documents, each with its line offset.
pub fn split_documents(file: &Path, text: &str) -> Vec<Src> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut cur = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") || t == "..." {
            if !cur.trim().is_empty() {
                docs.push((start, std::mem::take(&mut cur)));
            }
            cur.clear();
            start = i + 1;
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    if !cur.trim().is_empty() {
        docs.push((start, cur));
    }
    docs.into_iter()
        .map(|(off, t)| Src {
            file: file.to_path_buf(),
            text: t,
            line_offset: off,
            prefix: String::new(),
        })
        .collect()
}

/// Marker replacing a Go template `{{ .Name }}` so the YAML parses; see [`templates_in`].
pub const TEMPLATE_MARK: &str = "__TEMPLATE__";

/// Replaces every `{{ ... }}` with `__TEMPLATE__<expr>__` (expr reduced to
/// `[A-Za-z0-9_.]`), which is a valid plain scalar quoted or not.
pub fn mask_templates(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let expr: String = rest[open + 2..open + close]
            .trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        out.push_str(TEMPLATE_MARK);
        out.push_str(&expr);
        out.push_str("__");
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

/// Template expressions (e.g. `.HFModelName`) left in `s` by [`mask_templates`].
pub fn templates_in(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(p) = rest.find(TEMPLATE_MARK) {
        let after = &rest[p + TEMPLATE_MARK.len()..];
        let end = after.find("__").unwrap_or(after.len());
        out.push(after[..end].to_string());
        rest = &after[(end + 2).min(after.len())..];
    }
    out
}

/// Replaces masked templates in `s` with `lookup(expr)`; unresolved ones stay masked.
pub fn expand_templates(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = s.to_string();
    for expr in templates_in(s) {
        if let Some(v) = lookup(&expr) {
            out = out.replace(&format!("{TEMPLATE_MARK}{expr}__"), &v);
        }
    }
    out
}

/// Shows a masked template as the user wrote it: `{{ .X }}`.
pub fn unmask(s: &str) -> String {
    expand_templates(s, |e| Some(format!("{{{{ {e} }}}}")))
}

/// Parses one document, mapping YAML errors to the file's line.
pub fn parse(src: &Src) -> Result<Value, ScenarioError> {
    serde_yaml_ng::from_str(&mask_templates(&src.text)).map_err(|e| {
        let msg = strip_location(&e.to_string());
        ScenarioError {
            file: src.file.clone(),
            line: e.location().map(|l| l.line() + src.line_offset),
            field: src.prefix.trim_end_matches('.').to_string(),
            message: format!("malformed YAML: {msg}"),
        }
    })
}

/// A scalar as text (`true`, `1`, `"x"`); `None` for maps, sequences and null.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The value of the key whose text is `k` (keys may be numbers or bools); null when absent.
pub fn field<'a>(m: &'a Mapping, k: &str) -> &'a Value {
    const NULL: Value = Value::Null;
    m.iter()
        .find(|(key, _)| scalar(key).as_deref() == Some(k))
        .map_or(&NULL, |(_, v)| v)
}

/// `m[key]` for a mapping.
pub fn get<'a>(m: &'a Value, key: &str) -> Option<&'a Value> {
    m.as_mapping().and_then(|m| m.get(key))
}

/// String keys of a mapping, in document order.
pub fn keys(m: &Mapping) -> Vec<String> {
    m.keys()
        .map(|k| scalar(k).unwrap_or_else(|| format!("{k:?}")))
        .collect()
}

/// One `env:` entry of a container.
#[derive(Clone, Debug)]
pub struct EnvIn {
    /// Variable name.
    pub name: String,
    /// Literal value (`value:`), as text.
    pub value: Option<String>,
    /// The entry had `valueFrom:` (a secret, field or ConfigMap reference).
    pub value_from: bool,
    /// Where the entry is.
    pub at: Origin,
}

/// A string with where it came from.
#[derive(Clone, Debug)]
pub struct Item {
    /// The value.
    pub v: String,
    /// Where.
    pub at: Origin,
}

/// One container, as much as the import reads of it.
#[derive(Clone, Debug)]
pub struct ContainerIn {
    /// `name`.
    pub name: String,
    /// `image`, when given.
    pub image: Option<Item>,
    /// `command`.
    pub command: Vec<Item>,
    /// `args`.
    pub args: Vec<Item>,
    /// `env`.
    pub env: Vec<EnvIn>,
    /// `nvidia.com/gpu` from limits (else requests).
    pub gpus: Option<(u32, Origin)>,
    /// Where the container is.
    pub at: Origin,
}

/// Container keys that do not affect the simulation.
const IRRELEVANT_CONTAINER_KEYS: &[&str] = &[
    "ports",
    "securityContext",
    "volumeMounts",
    "imagePullPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "restartPolicy",
    "mountModelVolume",
    "workingDir",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "lifecycle",
    "stdin",
    "tty",
];

/// Reads a list of containers at `path` (e.g. `spec.decode.containers`).
pub fn read_containers(
    src: &Src,
    path: &str,
    v: &Value,
    notes: &mut Notes,
) -> Result<Vec<ContainerIn>, ScenarioError> {
    let Some(list) = v.as_sequence() else {
        return Err(src.err(path, "expected a list of containers"));
    };
    list.iter()
        .enumerate()
        .map(|(i, c)| read_container(src, &format!("{path}[{i}]"), c, notes))
        .collect()
}

/// One container at `cp` (empty: the document itself is a container spec).
pub fn read_container(
    src: &Src,
    cp: &str,
    c: &Value,
    notes: &mut Notes,
) -> Result<ContainerIn, ScenarioError> {
    let Some(m) = c.as_mapping() else {
        return Err(src.err(cp, "expected a container mapping"));
    };
    let name = get(c, "name").and_then(scalar).unwrap_or_default();
    let mut ci = ContainerIn {
        name,
        image: None,
        command: Vec::new(),
        args: Vec::new(),
        env: Vec::new(),
        gpus: None,
        at: src.at(cp),
    };
    for k in keys(m) {
        let kp = if cp.is_empty() {
            k.clone()
        } else {
            format!("{cp}.{k}")
        };
        let val = field(m, &k);
        match k.as_str() {
            "name" => {}
            "image" => {
                ci.image = scalar(val).map(|s| Item {
                    v: s,
                    at: src.at(&kp),
                })
            }
            "command" | "args" => {
                let items = string_list(src, &kp, val)?;
                if k == "command" {
                    ci.command = items;
                } else {
                    ci.args = items;
                }
            }
            "env" => ci.env = read_env(src, &kp, val, notes)?,
            "resources" => ci.gpus = read_gpus(src, &kp, val, notes)?,
            "envFrom" => notes.warn(
                &src.at(&kp),
                "envFrom not modelled: variables from referenced ConfigMaps/Secrets are not read (give them as env)",
            ),
            other if IRRELEVANT_CONTAINER_KEYS.contains(&other) => {
                notes.ok(&src.at(&kp), "does not affect the simulation")
            }
            other => notes.warn(&src.at(&kp), format!("container field {other} not modelled")),
        }
    }
    Ok(ci)
}

/// A YAML list of scalars (or one scalar) as items.
fn string_list(src: &Src, path: &str, v: &Value) -> Result<Vec<Item>, ScenarioError> {
    match v {
        Value::Sequence(s) => s
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let p = format!("{path}[{i}]");
                scalar(x)
                    .map(|s| Item {
                        v: s,
                        at: src.at(&p),
                    })
                    .ok_or_else(|| src.err(&p, "expected a string"))
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => match scalar(other) {
            Some(s) => Ok(vec![Item {
                v: s,
                at: src.at(path),
            }]),
            None => Err(src.err(path, "expected a list of strings")),
        },
    }
}

/// Reads a container `env:` list; also accepted: a `{NAME: value}` mapping.
pub fn read_env(
    src: &Src,
    path: &str,
    v: &Value,
    notes: &mut Notes,
) -> Result<Vec<EnvIn>, ScenarioError> {
    let mut out = Vec::new();
    match v {
        Value::Sequence(list) => {
            for (i, e) in list.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let Some(name) = get(e, "name").and_then(scalar) else {
                    return Err(src.err(&p, "env entry without `name`"));
                };
                let raw = get(e, "value");
                let value = raw.and_then(scalar);
                let non_string = matches!(raw, Some(Value::Bool(_) | Value::Number(_)));
                let value_from = get(e, "valueFrom").is_some();
                if raw.is_some() && value.is_none() && !matches!(raw, Some(Value::Null)) {
                    return Err(src.err(&p, format!("{name}: value must be a string")));
                }
                let at = src.at(&p);
                if non_string {
                    notes.warn(
                        &at,
                        format!(
                            "{name}: value {} is not a string; Kubernetes rejects non-string env values (quote it); read as \"{}\"",
                            value.as_deref().unwrap_or(""),
                            value.as_deref().unwrap_or("")
                        ),
                    );
                }
                out.push(EnvIn {
                    name,
                    value,
                    value_from,
                    at,
                });
            }
        }
        Value::Mapping(m) => {
            for k in keys(m) {
                let p = format!("{path}.{k}");
                out.push(EnvIn {
                    value: scalar(field(m, &k)),
                    name: k,
                    value_from: false,
                    at: src.at(&p),
                });
            }
        }
        Value::Null => {}
        _ => return Err(src.err(path, "expected an env list of {name, value}")),
    }
    Ok(out)
}

/// `nvidia.com/gpu` from `resources.limits` (else `requests`); other resources are noted.
fn read_gpus(
    src: &Src,
    path: &str,
    v: &Value,
    notes: &mut Notes,
) -> Result<Option<(u32, Origin)>, ScenarioError> {
    let mut found = None;
    for part in ["requests", "limits"] {
        let Some(m) = get(v, part).and_then(Value::as_mapping) else {
            continue;
        };
        for k in keys(m) {
            let p = format!("{path}.{part}.{k}");
            if k == "nvidia.com/gpu" {
                let text = scalar(field(m, &k)).unwrap_or_default();
                let n: u32 = text.trim().parse().map_err(|_| {
                    src.err(
                        &p,
                        format!("expected a whole number of GPUs, got \"{text}\""),
                    )
                })?;
                // limits win: Kubernetes requires requests == limits for extended resources.
                found = Some((n, src.at(&p)));
            } else {
                notes.ok(&src.at(&p), "does not affect the simulation");
            }
        }
    }
    Ok(found)
}

/// Line (1-based) of a dotted path like `spec.decode.containers[0].args[2]`
/// in block-style YAML; the deepest component found when the rest is inline.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut lo = 0usize;
    let mut hi = lines.len();
    let mut best = None;
    for seg in segments(path) {
        match seg {
            Seg::Key(k) => {
                let Some(child_col) = first_key_col(&lines[lo..hi]) else {
                    return best;
                };
                let mut hit = None;
                for (i, line) in lines.iter().enumerate().take(hi).skip(lo) {
                    if let Some((col, key)) = key_at(line) {
                        if col == child_col && key == k {
                            hit = Some((i, col));
                            break;
                        }
                    }
                }
                let (i, col) = hit?;
                best = Some(i + 1);
                lo = i + 1;
                hi = value_end(&lines, i + 1, hi, col);
            }
            Seg::Index(n) => {
                let item_col = lines[lo..hi]
                    .iter()
                    .find(|l| !is_blank(l))
                    .and_then(|l| dash_col(l))?;
                let starts: Vec<usize> = (lo..hi)
                    .filter(|&i| {
                        dash_col(lines[i]) == Some(item_col) && indent(lines[i]) == item_col
                    })
                    .collect();
                let &s = starts.get(n)?;
                best = Some(s + 1);
                let e = starts.get(n + 1).copied().unwrap_or(hi);
                lo = s;
                hi = e;
                // The item's first key shares its dash line: strip the dash for key search.
            }
        }
    }
    best
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    // Kubernetes keys like `nvidia.com/gpu` contain a dot: rejoin the part
    // before a `/`-part with it.
    let raw: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    let mut parts: Vec<&str> = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        if p.contains('/') && i > 0 && !parts.is_empty() {
            parts.pop();
            let start = raw[..i - 1].iter().map(|x| x.len() + 1).sum::<usize>();
            let end = start + raw[i - 1].len() + 1 + p.len();
            parts.push(&path[start..end]);
        } else {
            parts.push(p);
        }
    }
    let mut out = Vec::new();
    for part in parts {
        let mut it = part.split('[');
        if let Some(k) = it.next() {
            if !k.is_empty() {
                out.push(Seg::Key(k));
            }
        }
        for idx in it {
            if let Ok(n) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(n));
            }
        }
    }
    out
}

fn is_blank(l: &str) -> bool {
    let t = l.trim();
    t.is_empty() || t.starts_with('#')
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

/// Column of a leading `- ` (or a lone `-`), if the line is a sequence item.
fn dash_col(l: &str) -> Option<usize> {
    let t = l.trim_start_matches(' ');
    (t.starts_with("- ") || t == "-").then(|| indent(l))
}

/// `(column, key)` of a `key:` line, looking past leading `- ` markers.
fn key_at(l: &str) -> Option<(usize, &str)> {
    if is_blank(l) {
        return None;
    }
    let mut col = indent(l);
    let mut t = &l[col..];
    while let Some(r) = t.strip_prefix("- ") {
        let r2 = r.trim_start_matches(' ');
        col += 2 + (r.len() - r2.len());
        t = r2;
    }
    let t = t.trim_start_matches(['"', '\'']);
    let end = t.find(':')?;
    let key = t[..end].trim_end_matches(['"', '\'']);
    let after = &t[end + 1..];
    (after.is_empty() || after.starts_with(' ')).then_some((col, key))
}

fn first_key_col(lines: &[&str]) -> Option<usize> {
    lines
        .iter()
        .find(|l| !is_blank(l))
        .and_then(|l| key_at(l))
        .map(|(c, _)| c)
}

/// End (exclusive) of the block value of a key at `col` starting at `from`.
fn value_end(lines: &[&str], from: usize, hi: usize, col: usize) -> usize {
    for (i, l) in lines.iter().enumerate().take(hi).skip(from) {
        if is_blank(l) {
            continue;
        }
        let ind = indent(l);
        if ind < col || (ind == col && dash_col(l).is_none()) {
            return i;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: &str = "\
apiVersion: llm-d.ai/v1alpha1
spec:
  prefill:
    replicas: 2
  decode:
    replicas: 3
    containers:
    - name: vllm
      args:
        - \"--block-size\"
        - \"64\"
      env:
      - name: A
        value: \"1\"
      - name: B
        valueFrom: {fieldRef: {fieldPath: status.podIP}}
";

    #[test]
    fn finds_lines_of_nested_paths() {
        assert_eq!(line_of(MS, "spec.prefill.replicas"), Some(4));
        assert_eq!(line_of(MS, "spec.decode.replicas"), Some(6));
        assert_eq!(line_of(MS, "spec.decode.containers[0]"), Some(8));
        assert_eq!(line_of(MS, "spec.decode.containers[0].args[1]"), Some(11));
        assert_eq!(line_of(MS, "spec.decode.containers[0].env[1]"), Some(15));
        // Inline (flow) values: the deepest key found.
        assert_eq!(
            line_of(MS, "spec.decode.containers[0].env[1].valueFrom.fieldRef"),
            Some(16)
        );
        assert_eq!(line_of(MS, "spec.nothing"), None);
        let res = "r:\n  limits:\n    cpu: 1\n    nvidia.com/gpu: \"1\"\n";
        assert_eq!(line_of(res, "r.limits.nvidia.com/gpu"), Some(4));
    }

    #[test]
    fn masks_templates_and_splits_documents() {
        let m = mask_templates("- {{ .InferencePoolName }}\n- \"{{ .HFModelName }}\"\n");
        let v: Value = serde_yaml_ng::from_str(&m).unwrap();
        let s = scalar(&v[1]).unwrap();
        assert_eq!(templates_in(&s), vec![".HFModelName".to_string()]);
        assert_eq!(
            expand_templates(&s, |e| (e == ".HFModelName").then(|| "x/y".into())),
            "x/y"
        );
        assert_eq!(unmask(&scalar(&v[0]).unwrap()), "{{ .InferencePoolName }}");
        let docs = split_documents(Path::new("f"), "a: 1\n---\nb: 2\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].line_offset, 2);
        assert_eq!(docs[1].at("b").line, Some(3));
    }
}
