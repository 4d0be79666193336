//! The review path reads a body with a hand-written JSON reader and falls back to serde for anything the
//! reader gives up on. These tests hold the two to the same answers: every real review is read by the fast
//! reader and decodes exactly as serde decodes it, and no mutation of one makes the fast reader accept what
//! serde refuses or read it differently.

mod corpus;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;

use vigil::admission::decoders_agree;

/// Our recordings and the benchmark's 10-container pod.
fn recorded() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = corpus::review_files(&root.join("tests/data/reviews"));
    files.push(root.join("benches/data/review-pod-10-containers.json"));
    files
}

/// The body as the file has it, and compact as the API server writes it.
fn both_layouts(path: &Path) -> [Vec<u8>; 2] {
    let body = std::fs::read(path).unwrap();
    let value: Value = serde_json::from_slice(&body).unwrap();
    [body, serde_json::to_vec(&value).unwrap()]
}

fn assert_read_fast_and_alike(files: &[PathBuf]) {
    assert!(!files.is_empty());
    for path in files {
        for body in both_layouts(path) {
            assert_eq!(
                decoders_agree(&body),
                Ok(true),
                "{}: the fast reader should read it, as serde does",
                path.display()
            );
        }
    }
}

#[test]
fn recorded_reviews_are_read_fast_and_alike() {
    assert_read_fast_and_alike(&recorded());
}

#[test]
fn captured_reviews_are_read_fast_and_alike() {
    let Some(files) =
        corpus::captured_reviews("decoders::captured_reviews_are_read_fast_and_alike")
    else {
        return;
    };
    assert_read_fast_and_alike(&files);
}

#[test]
fn what_the_fast_reader_leaves_to_serde() {
    let base = std::fs::read_to_string(recorded()[0].clone()).unwrap();
    let gives_up = [
        // A duplicate field: serde names it.
        base.replacen("\"uid\":", "\"uid\": \"x\", \"uid\":", 1),
        // A surrogate pair in a value.
        base.replacen("\"uid\": \"", "\"uid\": \"\\ud83d\\ude00", 1),
        // A trailing comma, and text after the review.
        base.replacen('}', ",}", 1),
        base.clone() + "x",
    ];
    for body in gives_up {
        assert_ne!(base, body, "the edit applies");
        assert_eq!(decoders_agree(body.as_bytes()), Ok(false), "{body}");
    }
}

#[test]
fn integer_fields_are_read_as_serde_reads_them() {
    let pod = std::fs::read_to_string(recorded().pop().unwrap()).unwrap();
    assert!(pod.contains("\"runAsUser\":10001"));
    // Each spelling, and whether the fast reader reads it as `runAsUser` (an i64) and as `hostPort` (an
    // i32); the rest it leaves to serde, which reads or refuses them.
    let spellings = [
        ("0", true, true),
        ("-1", true, true),
        ("10001", true, true),
        ("null", true, true),
        ("2147483648", true, false),
        ("-2147483649", true, false),
        ("9223372036854775807", true, false),
        ("-9223372036854775808", false, false),
        ("9223372036854775808", false, false),
        ("-0", false, false),
        ("1.0", false, false),
        ("1e2", false, false),
        ("1E+2", false, false),
        ("01", false, false),
        ("\"1\"", false, false),
        ("true", false, false),
    ];
    for (n, as_i64, as_i32) in spellings {
        let run_as_user = pod.replace("\"runAsUser\":10001", &format!("\"runAsUser\":{n}"));
        let host_port = pod.replace(
            "\"containerPort\":",
            &format!("\"hostPort\":{n},\"containerPort\":"),
        );
        assert_eq!(
            decoders_agree(run_as_user.as_bytes()),
            Ok(as_i64),
            "runAsUser {n}"
        );
        assert_eq!(
            decoders_agree(host_port.as_bytes()),
            Ok(as_i32),
            "hostPort {n}"
        );
    }
}

/// An edit of a review's JSON value: the node at `at` (in document order) becomes `with`.
fn replace_node(value: &mut Value, at: &mut usize, with: &Value) -> bool {
    if *at == 0 {
        *value = with.clone();
        return true;
    }
    *at -= 1;
    match value {
        Value::Object(map) => map.values_mut().any(|v| replace_node(v, at, with)),
        Value::Array(items) => items.iter_mut().any(|v| replace_node(v, at, with)),
        _ => false,
    }
}

fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        Just(serde_json::json!(-0.0)),
        Just(serde_json::json!(1.5)),
        Just(serde_json::json!(4_294_967_296u64)),
        "[a-z\"\\\\é\u{1}]{0,6}".prop_map(Value::String),
        Just(serde_json::json!([])),
        Just(serde_json::json!([null])),
        Just(serde_json::json!({})),
        Just(serde_json::json!({"name": null, "type": 1})),
    ]
}

/// Text edits: a byte dropped, a byte inserted, a field inserted after an opening brace (which may
/// duplicate one), or a number written another way.
#[derive(Debug, Clone)]
enum Edit {
    Drop(usize),
    Insert(usize, u8),
    Field(usize, &'static str),
    Number(usize, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Drop),
        (
            any::<usize>(),
            prop::sample::select(b"{}[],:\"\\ 0-.etnu".to_vec())
        )
            .prop_map(|(at, b)| Edit::Insert(at, b)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "\"name\":null,",
                "\"spec\":{},",
                "\"kind\":null,",
                "\"object\":null,",
                "\"image\":\"x\",",
                "\"privileged\":true,",
                "\"hostPath\":{\"path\":\"/\"},",
                "\"containers\":[],",
                "\"x\":[1,{\"y\":\"\\n\"}],",
            ])
        )
            .prop_map(|(at, field)| Edit::Field(at, field)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "-0",
                "0",
                "-1",
                "1.0",
                "1e2",
                "1E+2",
                "01",
                "2147483648",
                "9223372036854775808",
                "-9223372036854775808",
                "65536",
            ])
        )
            .prop_map(|(at, number)| Edit::Number(at, number)),
    ]
}

fn apply(body: &[u8], edit: &Edit) -> Vec<u8> {
    let mut out = body.to_vec();
    match *edit {
        Edit::Drop(at) => {
            out.remove(at % out.len());
        }
        Edit::Insert(at, b) => out.insert(at % (out.len() + 1), b),
        Edit::Field(at, field) => {
            let braces: Vec<usize> = (0..out.len()).filter(|&i| out[i] == b'{').collect();
            let at = braces[at % braces.len()] + 1;
            out.splice(at..at, field.bytes());
        }
        Edit::Number(at, number) => {
            // A value that is a run of digits: `:` then digits, up to `,` or `}`.
            let starts: Vec<usize> = (1..out.len())
                .filter(|&i| out[i - 1] == b':' && out[i].is_ascii_digit())
                .collect();
            if let Some(&start) = starts.get(at % starts.len().max(1)) {
                let end = (start..out.len())
                    .find(|&i| !out[i].is_ascii_digit())
                    .unwrap_or(out.len());
                out.splice(start..end, number.bytes());
            }
        }
    }
    out
}

fn sample() -> impl Strategy<Value = Vec<u8>> {
    let bodies: Vec<Vec<u8>> = recorded().iter().flat_map(|p| both_layouts(p)).collect();
    prop::sample::select(bodies)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_changed_value_is_read_alike(body in sample(), at in any::<usize>(), with in replacement()) {
        let mut value: Value = serde_json::from_slice(&body).unwrap();
        let mut nodes = 0usize;
        count(&value, &mut nodes);
        let mut at = at % nodes;
        replace_node(&mut value, &mut at, &with);
        let edited = serde_json::to_vec(&value).unwrap();
        prop_assert_eq!(decoders_agree(&edited).map(|_| ()), Ok(()));
    }

    #[test]
    fn an_edited_text_is_read_alike(body in sample(), edits in prop::collection::vec(edit(), 1..4)) {
        let edited = edits.iter().fold(body, |body, e| apply(&body, e));
        prop_assert_eq!(decoders_agree(&edited).map(|_| ()), Ok(()));
    }
}

fn count(value: &Value, nodes: &mut usize) {
    *nodes += 1;
    match value {
        Value::Object(map) => map.values().for_each(|v| count(v, nodes)),
        Value::Array(items) => items.iter().for_each(|v| count(v, nodes)),
        _ => {}
    }
}
