//! Runs distribution/reference's own test tables (the corpus `imageref/vectors.json`) against
//! `vigil::image`. The corpus's SOURCE.md says where the vectors come from.

mod corpus;

use std::io::Write as _;

use serde_json::Value;
use vigil::image::ImageRef;
use vigil::image::ImageRefError;
use vigil::image::reference::{self, AnyReference, Parser, Reference};

/// Upstream's test binary registers only sha256 (a `sha512` digest is `ErrDigestUnsupported`).
const UPSTREAM: Parser = Parser::SHA256_ONLY;

/// The vectors, or `None` when the corpus is missing (the test then says so by `test`'s name).
fn vectors(test: &str) -> Option<Value> {
    let path = corpus::corpus(test, "imageref/vectors.json")?;
    Some(
        serde_json::from_str(&std::fs::read_to_string(&path).expect("vectors.json reads"))
            .expect("vectors.json parses"),
    )
}

/// Prints past libtest's output capture, so the counts show on every run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn go_error_name(e: &ImageRefError) -> &'static str {
    match e {
        ImageRefError::InvalidFormat(_) => "ErrReferenceInvalidFormat",
        ImageRefError::NameContainsUppercase => "ErrNameContainsUppercase",
        ImageRefError::NameEmpty => "ErrNameEmpty",
        ImageRefError::NameTooLong => "ErrNameTooLong",
        ImageRefError::NameNotCanonical => "ErrNameNotCanonical",
        ImageRefError::AmbiguousIdentifier => "(64-hex identifier error)",
        ImageRefError::TagInvalidFormat => "ErrTagInvalidFormat",
        ImageRefError::DigestUnsupported => "digest.ErrDigestUnsupported",
        ImageRefError::DigestInvalidLength => "digest.ErrDigestInvalidLength",
        ImageRefError::DigestInvalidFormat => "digest.ErrDigestInvalidFormat",
    }
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The asserted-field view of whatever a function returned.
struct View {
    name: Option<String>,
    string: String,
    familiar: String,
    domain: String,
    path: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

impl From<&Reference> for View {
    fn from(r: &Reference) -> Self {
        View {
            name: Some(r.name().to_owned()),
            string: r.as_str().to_owned(),
            familiar: r.familiar_string().to_owned(),
            domain: r.domain().to_owned(),
            path: Some(r.path().to_owned()),
            tag: r.tag().map(str::to_owned),
            digest: r.digest().map(str::to_owned),
        }
    }
}

impl From<&AnyReference> for View {
    fn from(r: &AnyReference) -> Self {
        match r {
            AnyReference::Named(n) => View::from(n),
            AnyReference::Digest(d) => View {
                name: None,
                string: d.clone(),
                familiar: d.clone(),
                domain: String::new(),
                path: None,
                tag: None,
                digest: Some(d.clone()),
            },
        }
    }
}

enum Outcome {
    Held,
    Failed(String),
    NotCovered(String),
}

/// Compares every non-null asserted field of `v` with `view`.
fn check_fields(v: &Value, view: &View, problems: &mut Vec<String>) {
    let mut eq = |what: &str, want: Option<&str>, got: Option<&str>| {
        if let Some(want) = want
            && Some(want) != got
        {
            problems.push(format!("{what}: want {want:?}, got {got:?}"));
        }
    };
    eq("name", field(v, "name"), view.name.as_deref());
    eq("normalized", field(v, "normalized"), Some(&view.string));
    eq("familiar", field(v, "familiar"), Some(&view.familiar));
    eq("domain", field(v, "domain"), Some(&view.domain));
    eq("path", field(v, "path"), view.path.as_deref());
    // "" means asserted absent.
    eq(
        "tag",
        field(v, "tag"),
        Some(view.tag.as_deref().unwrap_or("")),
    );
    eq(
        "digest",
        field(v, "digest"),
        Some(view.digest.as_deref().unwrap_or("")),
    );
}

fn check_result<T>(v: &Value, result: &Result<T, ImageRefError>, problems: &mut Vec<String>)
where
    for<'a> View: From<&'a T>,
{
    let view = |r: &T| View::from(r);
    let valid = v.get("valid").and_then(Value::as_bool);
    match (valid, result) {
        (Some(true), Ok(r)) | (None, Ok(r)) => check_fields(v, &view(r), problems),
        (Some(true), Err(e)) | (None, Err(e)) => problems.push(format!("unexpected error: {e}")),
        (Some(false), Ok(r)) => problems.push(format!("accepted as {:?}", view(r).string)),
        (Some(false), Err(e)) => {
            if let Some(want) = field(v, "error")
                && want != go_error_name(e)
            {
                problems.push(format!(
                    "error: want {want}, got {} ({e})",
                    go_error_name(e)
                ));
            }
        }
    }
}

/// `ImageRef::parse` must agree with `ParseNormalizedNamed`, except that it refuses a result
/// without a domain.
fn cross_check_image_ref(
    input: &str,
    upstream: &Result<Reference, ImageRefError>,
    problems: &mut Vec<String>,
) {
    let ours = ImageRef::parse(input);
    match (upstream, &ours) {
        (Ok(r), Ok(i)) => {
            let latest = if r.tag().is_none() && r.digest().is_none() {
                ":latest"
            } else {
                ""
            };
            let same = i.domain() == r.domain()
                && i.path() == r.path()
                && i.name() == r.name()
                && i.tag() == r.tag()
                && i.digest() == r.digest()
                && i.to_string() == format!("{}{latest}", r.as_str());
            if !same {
                problems.push(format!("ImageRef::parse gave {i:?} / {i}, upstream {r:?}"));
            }
        }
        (Ok(r), Err(_)) if r.domain().is_empty() => {}
        (Ok(r), Err(e)) => problems.push(format!("ImageRef::parse failed ({e}), upstream {r:?}")),
        (Err(_), Ok(i)) => problems.push(format!("ImageRef::parse accepted {i}")),
        (Err(_), Err(_)) => {}
    }
}

fn run_vector(v: &Value) -> Outcome {
    let Some(input) = field(v, "input") else {
        return Outcome::Failed("no input".into());
    };
    let function = field(v, "function").unwrap_or("");
    let test = field(v, "source_test").unwrap_or("");
    let mut problems = Vec::new();

    if function.starts_with("reference.ParseNormalizedNamed") {
        let r = UPSTREAM.parse_normalized_named(input);
        check_result(v, &r, &mut problems);
        cross_check_image_ref(input, &r, &mut problems);
    } else if function.starts_with("reference.Parse (strict")
        || function.starts_with("reference.Field JSON unmarshal")
    {
        let r = UPSTREAM.parse(input);
        check_result(v, &r, &mut problems);
        // Upstream asserts that String() round-trips (and, for Field, the JSON re-encoding).
        if let (Some(true), Ok(r)) = (v.get("valid").and_then(Value::as_bool), &r)
            && r.as_str() != input
        {
            problems.push(format!("String() = {:?}, not the input", r.as_str()));
        }
    } else if function.starts_with("reference.ParseAnyReference") {
        let r = UPSTREAM.parse_any_reference(input);
        check_result(v, &r, &mut problems);
    } else if function.starts_with("reference.ParseDockerRef") {
        let r = UPSTREAM.parse_docker_ref(input);
        check_result(v, &r, &mut problems);
    } else if function.starts_with("reference.ParseNamed") {
        let r = UPSTREAM.parse_named(input);
        check_result(v, &r, &mut problems);
    } else if function.starts_with("reference.WithName + WithTag/WithDigest") {
        // The input is the expected composed String(); name/tag/digest are the parts.
        let (Some(name), tag, digest) = (
            field(v, "name"),
            field(v, "tag").filter(|t| !t.is_empty()),
            field(v, "digest").filter(|d| !d.is_empty()),
        ) else {
            return Outcome::NotCovered(format!("{test}: composition row without a name"));
        };
        let composed = match test {
            "TestWithTag" => reference::with_name(name).and_then(|n| {
                let n = match digest {
                    Some(d) => n.with_digest(d)?,
                    None => n,
                };
                n.with_tag(tag.unwrap_or_default())
            }),
            "TestWithDigest" => reference::with_name(name).and_then(|n| {
                let n = match tag {
                    Some(t) => n.with_tag(t)?,
                    None => n,
                };
                n.with_digest(digest.unwrap_or_default())
            }),
            other => return Outcome::NotCovered(format!("unknown composition test {other}")),
        };
        check_result(v, &composed, &mut problems);
        if let Ok(r) = &composed
            && r.as_str() != input
        {
            problems.push(format!("composed {:?}, want {input:?}", r.as_str()));
        }
    } else if function.starts_with("reference.WithName") {
        let r = reference::with_name(input);
        check_result(v, &r, &mut problems);
    } else {
        return Outcome::NotCovered(format!("no harness for function {function:?}"));
    }

    if problems.is_empty() {
        Outcome::Held
    } else {
        Outcome::Failed(problems.join("; "))
    }
}

#[test]
fn upstream_vectors() {
    let Some(corpus) = vectors("imageref_vectors::upstream_vectors") else {
        return;
    };
    let vectors = corpus["vectors"].as_array().expect("vectors array");
    assert_eq!(vectors.len(), 214, "vectors.json changed size");
    let (mut held, mut failed, mut not_covered) = (0, Vec::new(), Vec::new());
    for v in vectors {
        let at = format!(
            "{}:{} {:?}",
            field(v, "source_test").unwrap_or("?"),
            v["source_line"],
            field(v, "input").unwrap_or("?")
        );
        match run_vector(v) {
            Outcome::Held => held += 1,
            Outcome::Failed(why) => failed.push(format!("{at}: {why}")),
            Outcome::NotCovered(why) => not_covered.push(format!("{at}: {why}")),
        }
    }
    report(&format!(
        "imageref vectors: {} total, {held} held, {} failed, {} not covered",
        vectors.len(),
        failed.len(),
        not_covered.len()
    ));
    for line in &not_covered {
        report(&format!("  not covered: {line}"));
    }
    assert!(
        failed.is_empty() && not_covered.is_empty(),
        "{} vector(s) failed, {} not covered:\n{}",
        failed.len(),
        not_covered.len(),
        failed
            .iter()
            .chain(&not_covered)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn upstream_regexp_cases() {
    let Some(corpus) = vectors("imageref_vectors::upstream_regexp_cases") else {
        return;
    };
    let cases = corpus["regexp"].as_array().expect("regexp array");
    let (mut held, mut failed) = (0, Vec::new());
    for c in cases {
        let input = field(c, "input").unwrap_or_default();
        let want = c["match"].as_bool().expect("match is a bool");
        let subs: Option<Vec<&str>> = c["subs"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap_or_default()).collect());
        let regexp = field(c, "regexp").unwrap_or_default();
        let problem = if regexp.starts_with("^domainAndPort$") {
            let got = reference::is_valid_domain(input);
            (got != want).then(|| format!("is_valid_domain = {got}"))
        } else if regexp.starts_with("anchoredNameRegexp") {
            // WithName is anchoredNameRegexp plus the path length limit.
            match (reference::with_name(input), want) {
                (Ok(r), true) => subs
                    .filter(|s| s[..] != [r.domain(), r.path()])
                    .map(|s| format!("split {:?}/{:?}, want {s:?}", r.domain(), r.path())),
                (Err(_), false) => None,
                (r, _) => Some(format!("with_name = {r:?}")),
            }
        } else if regexp.starts_with("referenceRegexp") {
            // Parse is ReferenceRegexp plus length and digest checks; every digest here that
            // should match is a valid sha256.
            match (UPSTREAM.parse(input), want) {
                (Ok(r), true) => subs
                    .filter(|s| {
                        s[..]
                            != [
                                r.name(),
                                r.tag().unwrap_or_default(),
                                r.digest().unwrap_or_default(),
                            ]
                    })
                    .map(|s| format!("subs {r:?}, want {s:?}")),
                (Err(_), false) => None,
                (r, _) => Some(format!("parse = {r:?}")),
            }
        } else if regexp.starts_with("anchoredIdentifierRegexp") {
            let got = reference::is_identifier(input);
            (got != want).then(|| format!("is_identifier = {got}"))
        } else {
            Some(format!("no harness for regexp {regexp:?}"))
        };
        match problem {
            None => held += 1,
            Some(p) => failed.push(format!(
                "{}:{} {input:?}: {p}",
                field(c, "source_test").unwrap_or("?"),
                c["source_line"]
            )),
        }
    }
    report(&format!(
        "imageref regexp cases: {} total, {held} held, {} failed",
        cases.len(),
        failed.len()
    ));
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Go's `path.Match`, enough for FamiliarMatch: `*` and `?` do not cross `/`; `[...]` classes.
fn go_path_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => {
            let mut i = 0;
            loop {
                if go_path_match(rest, &name[i..]) {
                    return true;
                }
                if i < name.len() && name[i] != b'/' {
                    i += 1;
                } else {
                    return false;
                }
            }
        }
        Some((b'?', rest)) => {
            matches!(name.first(), Some(&c) if c != b'/') && go_path_match(rest, &name[1..])
        }
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().position(|&c| c == b']') else {
                return false;
            };
            let Some((&c, name_rest)) = name.split_first() else {
                return false;
            };
            let (negated, class) = match &rest[..close] {
                [b'^', class @ ..] => (true, class),
                class => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= (class[i]..=class[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negated && go_path_match(&rest[close + 1..], name_rest)
        }
        Some((b'\\', [escaped, rest @ ..])) => {
            name.first() == Some(escaped) && go_path_match(rest, &name[1..])
        }
        Some((&c, rest)) => name.first() == Some(&c) && go_path_match(rest, &name[1..]),
    }
}

/// Upstream `FamiliarMatch`: the pattern against FamiliarString, or FamiliarName when named.
fn familiar_match(pattern: &str, r: &AnyReference) -> bool {
    go_path_match(pattern.as_bytes(), r.familiar_string().as_bytes())
        || matches!(r, AnyReference::Named(n)
            if go_path_match(pattern.as_bytes(), n.familiar_name().as_bytes()))
}

#[test]
fn upstream_familiar_match() {
    let Some(corpus) = vectors("imageref_vectors::upstream_familiar_match") else {
        return;
    };
    let cases = corpus["familiar_match"]
        .as_array()
        .expect("familiar_match array");
    let (mut held, mut failed) = (0, Vec::new());
    for c in cases {
        let (reference, pattern) = (
            field(c, "reference").unwrap_or_default(),
            field(c, "pattern").unwrap_or_default(),
        );
        let want = c["expected"].as_bool().expect("expected is a bool");
        match UPSTREAM.parse_any_reference(reference) {
            Ok(r) if familiar_match(pattern, &r) == want => held += 1,
            Ok(r) => failed.push(format!("{pattern:?} vs {r}: want {want}")),
            Err(e) => failed.push(format!("{reference:?}: {e}")),
        }
    }
    report(&format!(
        "imageref familiar_match: {} total, {held} held, {} failed",
        cases.len(),
        failed.len()
    ));
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
