//! Reads manifests for `vigil check`: files, directories and stdin; multi-document YAML or JSON; `List`s.
//!
//! Every object keeps where it came from (file, document number, line, and the `# Source:` comment Helm
//! writes), so a result or an error can name it.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::workload::{DecodeError, Workload, WorkloadKind};

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    pub file: String,
    /// 1-based document number within the file.
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    /// The template Helm rendered it from, from a `# Source:` comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The path of the object inside a `List`, such as `items[2]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: document {} (line {})",
            self.file, self.document, self.line
        )?;
        if let Some(item) = &self.item {
            write!(f, " {item}")?;
        }
        if let Some(source) = &self.source {
            write!(f, " [{source}]")?;
        }
        Ok(())
    }
}

/// One object read from a manifest.
#[derive(Debug)]
pub struct Object {
    pub origin: Origin,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    /// The decoded workload, for covered kinds.
    pub workload: Option<Workload>,
}

/// A manifest that could not be read, with where.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Document { origin: Origin, message: String },
    /// A document that is not a Kubernetes object at all (a list, a scalar, or a map with neither
    /// `apiVersion` nor `kind`, such as a Helm `Chart.yaml`). `vigil check` skips these in files it finds by
    /// walking a directory, and reports them in files it was given.
    #[error("{origin}: {message}")]
    NotAnObject { origin: Origin, message: String },
}

/// Kinds of the core, `apps` and `batch` groups. A kind of these groups that is not listed is a typo or a
/// removed kind, and is reported; kinds of other groups (custom resources) are skipped.
const KNOWN_BUILTIN_KINDS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "Binding",
            "ComponentStatus",
            "ConfigMap",
            "Endpoints",
            "Event",
            "LimitRange",
            "Namespace",
            "Node",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "Pod",
            "PodTemplate",
            "ReplicationController",
            "ResourceQuota",
            "Secret",
            "Service",
            "ServiceAccount",
        ],
    ),
    (
        "apps",
        &[
            "ControllerRevision",
            "DaemonSet",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
        ],
    ),
    ("batch", &["CronJob", "Job"]),
];

/// Collects the manifest files under `path`: the file itself, or every `.yaml`, `.yml` and `.json` below
/// a directory, in name order.
pub fn collect_files(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let io = |e| ManifestError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            files.extend(collect_files(&entry)?);
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(entry);
        }
    }
    Ok(files)
}

/// Reads a file, or stdin for `-`.
pub fn read_source(path: &str) -> Result<String, ManifestError> {
    let io = |e| ManifestError::Io {
        path: path.to_owned(),
        source: e,
    };
    if path == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(io)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(io)
    }
}

/// The deepest nesting of YAML flow collections (`[...]`, `{...}`) a text may have before it is parsed.
///
/// Deeper nesting fails anyway (the deserializer stops at 128 levels), but only after libyaml has scanned the
/// whole text, and libyaml's scanner does work proportional to the flow depth for every token: 40,000 nested
/// `[` take seconds, a megabyte of them minutes. [`check_flow_nesting`] refuses such a text in linear time.
pub const MAX_FLOW_DEPTH: usize = 128;

/// A YAML text that nests flow collections deeper than [`MAX_FLOW_DEPTH`], or that is too convoluted to tell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "YAML nests flow collections ([ or {{) more than {MAX_FLOW_DEPTH} deep, from line {line}; refused before parsing"
)]
pub struct FlowNestingError {
    /// The 1-based line of the collection that goes too deep.
    pub line: usize,
}

/// Checks, in time linear in the text, that libyaml would never nest flow collections deeper than
/// [`MAX_FLOW_DEPTH`] while scanning `text`. Call it before handing untrusted YAML to serde_yaml_ng.
///
/// It errs on the side of refusing. Every `[` or `{` that could start a flow collection in block context
/// (at the start of a line, after `key: `, `- `, `? `, a tag or an anchor) is followed with a tokenizer for
/// flow context, which mirrors libyaml's (quoted, plain and multi-line scalars, comments, tags, anchors);
/// in flow context there is no indentation to track, so that tokenizer agrees with libyaml's. A start that
/// is really inside a scalar only adds a spurious candidate, never hides a real one. A candidate that a
/// collection followed earlier counted as its own is not followed again. The total work is capped at a few
/// steps per byte; past the cap the text is refused too.
pub fn check_flow_nesting(text: &str) -> Result<(), FlowNestingError> {
    let b = text.as_bytes();
    let mut budget = b.len().saturating_mul(16).saturating_add(1 << 16);
    // The brackets a followed collection already counted as its own: following them again would only
    // measure part of what was measured.
    let mut counted = vec![false; b.len()];
    let mut line_start = 0;
    let mut line = 1;
    for i in 0..b.len() {
        match b[i] {
            b'\n' => {
                line += 1;
                line_start = i + 1;
            }
            b'[' | b'{' if !counted[i] && may_start_flow(&b[line_start..i]) => {
                let deepest = flow_depth_from(b, i, &mut counted, &mut budget);
                if deepest > MAX_FLOW_DEPTH {
                    return Err(FlowNestingError { line });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a `[` or `{` preceded on its line by `before` may start a flow collection in block context.
fn may_start_flow(before: &[u8]) -> bool {
    // libyaml skips a byte order mark at the start of the stream.
    let before = before.strip_prefix("\u{feff}".as_bytes()).unwrap_or(before);
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let trimmed = match before.iter().rposition(|c| !blank(c)) {
        None => return true,
        Some(end) => &before[..=end],
    };
    if trimmed.len() == before.len() {
        // `[` glued to what precedes it, as in `a[b` or `key:[`: part of a plain scalar in block context.
        return false;
    }
    let word_start = trimmed.iter().rposition(blank).map_or(0, |p| p + 1);
    let word = &trimmed[word_start..];
    matches!(word.first(), Some(b'!' | b'&'))
        || word == b"---"
        || matches!(trimmed.last(), Some(b':'))
        || matches!(word, b"-" | b"?")
}

/// Follows a flow collection that starts at `start` as libyaml's scanner would, and returns the deepest
/// nesting reached: as soon as it passes [`MAX_FLOW_DEPTH`], or when the collection closes, or where libyaml
/// would stop with an error. Marks in `counted` every bracket it counts. Each step spends `budget`; an
/// exhausted budget counts as too deep.
fn flow_depth_from(b: &[u8], start: usize, counted: &mut [bool], budget: &mut usize) -> usize {
    const TOO_DEEP: usize = MAX_FLOW_DEPTH + 1;
    // One unit of work; none left means too intricate to follow, which is refused like too deep.
    macro_rules! spend {
        () => {
            if *budget == 0 {
                return TOO_DEEP;
            }
            *budget -= 1;
        };
    }
    let len = b.len();
    let at_line_start = |i: usize| i == 0 || b[i - 1] == b'\n';
    let is_blank = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let is_flow_indicator = |c: u8| matches!(c, b',' | b'[' | b']' | b'{' | b'}');
    let document_marker = |i: usize| {
        at_line_start(i)
            && (b[i..].starts_with(b"---") || b[i..].starts_with(b"..."))
            && b.get(i + 3).is_none_or(|&c| is_blank(c))
    };
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut i = start;
    loop {
        // Between tokens: blanks, line breaks and comments.
        while i < len {
            spend!();
            match b[i] {
                c if is_blank(c) => i += 1,
                b'#' => {
                    while i < len && b[i] != b'\n' {
                        spend!();
                        i += 1;
                    }
                }
                _ => break,
            }
        }
        if i >= len || document_marker(i) {
            return deepest;
        }
        match b[i] {
            b'[' | b'{' => {
                counted[i] = true;
                depth += 1;
                deepest = deepest.max(depth);
                if depth > MAX_FLOW_DEPTH {
                    return deepest;
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return deepest;
                }
                i += 1;
            }
            b',' | b'?' | b':' => i += 1,
            // A block entry in flow context: libyaml's parser stops there with an error.
            b'-' if b.get(i + 1).is_none_or(|&c| is_blank(c)) => return deepest,
            b'*' | b'&' => {
                i += 1;
                while i < len && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'_') {
                    spend!();
                    i += 1;
                }
            }
            b'!' => {
                // A tag: taken to its end, but never over a bracket that may open a collection.
                while i < len && !is_blank(b[i]) && b[i] != b'[' && b[i] != b'{' {
                    spend!();
                    i += 1;
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    spend!();
                    if i >= len || document_marker(i) {
                        return deepest;
                    }
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                loop {
                    spend!();
                    if i >= len || document_marker(i) {
                        return deepest;
                    }
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            // What cannot start a token in flow context: libyaml stops with an error.
            b'|' | b'>' | b'%' | b'@' | b'`' => return deepest,
            _ => {
                // A plain scalar: to a flow indicator, `: ` or `:` before an indicator, or ` #`.
                i += 1;
                while i < len {
                    spend!();
                    let c = b[i];
                    if document_marker(i) || is_flow_indicator(c) {
                        break;
                    }
                    if c == b':'
                        && b.get(i + 1)
                            .is_none_or(|&n| is_blank(n) || is_flow_indicator(n))
                    {
                        break;
                    }
                    if c == b'#' && is_blank(b[i - 1]) {
                        break;
                    }
                    i += 1;
                }
            }
        }
    }
}

/// A document of a YAML stream: its text, where it starts, and its Helm `# Source:`.
struct RawDocument<'a> {
    /// The document's lines; blank lines stand in for leading comments, so line numbers stay right.
    text: String,
    /// The line of the stream where `text` begins.
    text_line: usize,
    /// The first line of the document that is not blank, which is where a reader would look.
    line: usize,
    source: Option<&'a str>,
}

/// Splits a YAML stream at `---` lines, keeping line numbers. Empty documents are dropped.
fn split_documents(text: &str) -> Vec<RawDocument<'_>> {
    let mut docs = Vec::new();
    let mut current = RawDocument {
        text: String::new(),
        text_line: 1,
        line: 0,
        source: None,
    };
    let mut has_content = false;
    for (n, line) in text.lines().enumerate() {
        let is_separator =
            line == "---" || line.starts_with("--- ") || line.starts_with("---\t") || line == "...";
        if is_separator {
            if has_content {
                docs.push(current);
            }
            current = RawDocument {
                text: String::new(),
                text_line: n + 2,
                line: 0,
                source: None,
            };
            has_content = false;
            // Keep what follows `--- ` on the same line (an inline document), blanking the marker.
            if let Some(rest) = line
                .strip_prefix("--- ")
                .filter(|r| !r.trim().is_empty() && !r.trim_start().starts_with('#'))
            {
                current.text_line = n + 1;
                current.line = n + 1;
                current.text.push_str(rest);
                current.text.push('\n');
                has_content = true;
            }
            continue;
        }
        let trimmed = line.trim_start();
        if current.line == 0 && !trimmed.is_empty() {
            current.line = n + 1;
        }
        if let Some(source) = trimmed.strip_prefix("# Source:") {
            current.source.get_or_insert(source.trim());
        }
        if !has_content && !trimmed.is_empty() && !trimmed.starts_with('#') {
            has_content = true;
        }
        if !has_content {
            // Keep line numbers right in parser errors by keeping blank lines for leading comments.
            current.text.push('\n');
            continue;
        }
        current.text.push_str(line);
        current.text.push('\n');
    }
    if has_content {
        docs.push(current);
    }
    docs
}

/// Reads every object in a manifest text. `file` names it in origins and errors.
///
/// Every error is returned; the objects that could be read are returned beside them.
pub fn read_objects(file: &str, text: &str) -> (Vec<Object>, Vec<ManifestError>) {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    // Editors on Windows start files with a byte order mark; the YAML parser would take it for content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in split_documents(text).into_iter().enumerate() {
        let origin = Origin {
            file: file.to_owned(),
            document: i + 1,
            line: raw.line,
            source: raw.source.map(str::to_owned),
            item: None,
        };
        if let Err(e) = check_flow_nesting(&raw.text) {
            let message = format!(
                "not valid YAML: {}",
                FlowNestingError {
                    line: raw.text_line + e.line - 1,
                }
            );
            errors.push(ManifestError::Document { origin, message });
            continue;
        }
        let value: Value = match serde_yaml_ng::from_str(&raw.text) {
            Ok(v) => v,
            Err(e) => {
                let message = match e.location() {
                    Some(loc) => {
                        format!("not valid YAML at line {}: {e}", raw.line + loc.line() - 1)
                    }
                    None => format!("not valid YAML: {e}"),
                };
                errors.push(ManifestError::Document { origin, message });
                continue;
            }
        };
        read_value(value, origin, &mut objects, &mut errors);
    }
    (objects, errors)
}

fn field_str(map: &serde_yaml_ng::Mapping, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn read_value(
    value: Value,
    origin: Origin,
    objects: &mut Vec<Object>,
    errors: &mut Vec<ManifestError>,
) {
    let fail = |origin: Origin, message: String| ManifestError::Document { origin, message };
    let map = match value {
        Value::Null => return,
        Value::Mapping(map) => map,
        other => {
            let what = match other {
                Value::Sequence(_) => "a list",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "not an object",
            };
            errors.push(ManifestError::NotAnObject {
                origin,
                message: format!("the document is {what}, not a Kubernetes object"),
            });
            return;
        }
    };
    if !map.contains_key("apiVersion") && !map.contains_key("kind") {
        errors.push(ManifestError::NotAnObject {
            origin,
            message: "the document has neither apiVersion nor kind: not a Kubernetes object"
                .to_owned(),
        });
        return;
    }
    let (Some(api_version), Some(kind)) = (field_str(&map, "apiVersion"), field_str(&map, "kind"))
    else {
        errors.push(fail(
            origin,
            "apiVersion and kind must both be set to strings".to_owned(),
        ));
        return;
    };
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);

    if kind.ends_with("List") && map.contains_key("items") {
        match map.get("items") {
            Some(Value::Sequence(items)) => {
                let prefix = origin
                    .item
                    .clone()
                    .map_or(String::new(), |p| format!("{p}."));
                for (i, item) in items.iter().enumerate() {
                    let origin = Origin {
                        item: Some(format!("{prefix}items[{i}]")),
                        ..origin.clone()
                    };
                    read_value(item.clone(), origin, objects, errors);
                }
            }
            Some(Value::Null) => {}
            _ => errors.push(fail(origin, format!("{kind}: items must be a list"))),
        }
        return;
    }

    let metadata = map.get("metadata").and_then(Value::as_mapping);
    let name = metadata
        .and_then(|m| {
            field_str(m, "name").or_else(|| field_str(m, "generateName").map(|g| format!("{g}*")))
        })
        .unwrap_or_else(|| "(unnamed)".to_owned());
    let namespace = metadata.and_then(|m| field_str(m, "namespace"));

    let covered = WorkloadKind::from_group_kind(group, &kind);
    if covered.is_none()
        && let Some((_, kinds)) = KNOWN_BUILTIN_KINDS.iter().find(|(g, _)| *g == group)
        && !kinds.iter().any(|k| k.eq_ignore_ascii_case(&kind))
    {
        errors.push(fail(
            origin,
            format!("unknown kind {kind:?} in {api_version}"),
        ));
        return;
    }
    let workload = match covered {
        None => None,
        Some(kind) => match Workload::decode(kind, Value::Mapping(map)) {
            Ok(w) => Some(w),
            Err(e) => {
                let message = match e {
                    DecodeError::Field { path, message } => {
                        format!("{kind} {name}: field {path}: {message}")
                    }
                    other => format!("{kind} {name}: {other}"),
                };
                errors.push(fail(origin, message));
                return;
            }
        },
    };
    objects.push(Object {
        origin,
        api_version,
        kind: covered.map_or(kind, |k| k.as_str().to_owned()),
        name,
        namespace,
        workload,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_lines_and_sources() {
        let text = "---\n# Source: chart/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\n---\n# Source: chart/templates/b.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: nginx}]\n";
        let (objects, errors) = read_objects("x.yaml", text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].origin.document, 2);
        assert_eq!(
            objects[1].origin.line, 9,
            "the first line that is not blank"
        );
        assert_eq!(
            objects[1].origin.source.as_deref(),
            Some("chart/templates/b.yaml")
        );
        assert!(objects[1].workload.is_some());
        assert!(objects[0].workload.is_none());
    }

    #[test]
    fn reads_lists_and_names_items() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"batch/v1","kind":"CronJob",
            "metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[]}}}}}}]}"#;
        let (objects, errors) = read_objects("list.json", text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(objects[0].kind, "CronJob");
        assert_eq!(objects[0].origin.item.as_deref(), Some("items[0]"));
    }

    #[test]
    fn errors_name_file_document_and_field() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    securityContext:\n      privileged: \"yes\"\n---\n- just\n- a list\n---\napiVersion: apps/v1\nkind: Deploymnet\n---\nkey: [unclosed\n";
        let (objects, errors) = read_objects("bad.yaml", text);
        assert!(objects.is_empty());
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(
            messages[0].starts_with("bad.yaml: document 1 (line 1): Pod p: field spec.containers[0].securityContext.privileged:"),
            "{}",
            messages[0]
        );
        assert_eq!(
            messages[1],
            "bad.yaml: document 2 (line 10): the document is a list, not a Kubernetes object"
        );
        assert_eq!(
            messages[2],
            "bad.yaml: document 3 (line 13): unknown kind \"Deploymnet\" in apps/v1"
        );
        assert!(
            messages[3].starts_with("bad.yaml: document 4 (line 16): not valid YAML at line 17"),
            "{}",
            messages[3]
        );
    }

    /// `n` nested flow levels written with `open` and `close` around `inner`.
    fn nested(n: usize, open: &str, close: &str, inner: &str) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn flow_nesting_is_measured_as_libyaml_scans_it() {
        let deep = MAX_FLOW_DEPTH + 1;
        let ok = MAX_FLOW_DEPTH;
        #[rustfmt::skip]
        let cases: Vec<(&str, String, bool)> = vec![
            ("flat document", "a: 1\nb: [1, 2, {c: d}]\n".to_owned(), true),
            ("JSON at the limit", nested(ok, "[", "]", "1"), true),
            ("JSON past the limit", nested(deep, "[", "]", "1"), false),
            ("mappings past the limit", format!("spec: {}", nested(deep, "{a: ", "}", "1")), false),
            ("after a key", format!("x: {}", nested(deep, "[", "]", "")), false),
            ("after a block entry", format!("- - {}", nested(deep, "[", "]", "")), false),
            ("after a tag and an anchor", format!("x: !!seq &a {}", nested(deep, "[", "]", "")), false),
            ("after a document marker", format!("--- {}", nested(deep, "[", "]", "")), false),
            ("after a byte order mark", format!("\u{feff}{}", nested(deep, "[", "]", "")), false),
            ("on the next line", format!("x:\n  {}", nested(deep, "[", "]", "")), false),
            // Closing brackets inside scalars do not close anything.
            ("closers in double-quoted scalars", format!("x: {}", nested(deep, "[ \"]}\", ", "]", "")), false),
            ("closers in single-quoted scalars", format!("x: {}", nested(deep, "[ ''']', ", "]", "")), false),
            ("closers in tagged scalars", format!("x: {}", nested(deep, "[ !t \"]\", ", "]", "")), false),
            ("closers in comments", format!("x: {}", nested(deep, "[ # ]]\n", "]", "")), false),
            ("quotes inside plain scalars", format!("x: {}", nested(deep, "[ a'b, \"c' ]\", ", "]", "")), false),
            ("escaped quotes", format!("x: {}", nested(deep, "[ \"\\\"]\", ", "]", "")), false),
            ("multi-line scalars", format!("x: {}", nested(deep, "[ \"a\n]\", b\n c, ", "]", "")), false),
            ("an apostrophe before", format!("a: don't\nb: \"it's\"\nx: {}", nested(deep, "[", "]", "")), false),
            // Brackets that only look like collections.
            ("brackets in a plain scalar", format!("x: a{}\n", "[".repeat(deep)), true),
            ("brackets in a quoted scalar", format!("x: \"{}\"\n", "[".repeat(deep)), true),
            ("brackets glued to a key", format!("x:{}\n", "[".repeat(deep)), true),
            ("JSON in a block scalar", format!("x: |\n  {}\n", nested(40, "[", "]", "1")), true),
        ];
        let mut failures = Vec::new();
        for (name, text, ok) in &cases {
            if check_flow_nesting(text).is_ok() != *ok {
                failures.push(*name);
            }
        }
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {}\n",
            nested(100_000, "[", "]", "")
        );
        let (objects, errors) = read_objects("deep.yaml", &text);
        assert!(objects.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "deep.yaml: document 1 (line 1): not valid YAML: YAML nests flow collections ([ or {) more than 128 deep, from line 4; refused before parsing"
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_content() {
        let text =
            "\u{feff}apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n";
        let (objects, errors) = read_objects("bom.yaml", text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(objects[0].name, "p");
    }

    #[test]
    fn custom_resources_are_skipped_not_errors() {
        let (objects, errors) = read_objects(
            "cr.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        );
        assert!(errors.is_empty());
        assert!(objects[0].workload.is_none());
    }
}
