//! `secret-in-env`: a credential written literally into a pod spec is readable by anyone who can read the
//! workload, and lands in every log, backup and `kubectl get -o yaml` of it.
//!
//! Restricted fields:
//! - `spec.containers[*].env[*].value` (and `initContainers`, `ephemeralContainers`)
//!
//! A value is flagged when it matches one of `VALUE_PATTERNS`, or when the variable's name says it holds a
//! credential (`NAME_PATTERN`) and the value is not an obvious non-secret (see `is_inert`). `valueFrom`
//! references a Secret or ConfigMap and is never flagged. The value itself is never repeated in a message.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::SecretInEnv,
    severity: Severity::High,
    techniques: &["T1552.001", "T1552.007"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "a literal env value that looks like a credential (cloud keys, private keys, tokens)",
    about_image: false,
    check: Check::Pod(check),
};

/// The credential shapes recognised in a value: (what it is, regular expression).
pub const VALUE_PATTERNS: &[(&str, &str)] = &[
    (
        "an AWS access key id",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
    ),
    (
        "a private key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    ),
    (
        "a GitHub token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    ),
    (
        "a GitLab token",
        r"\bgl(?:pat|dt|rt|ptt|cbt|imt|soat|ffct)-[A-Za-z0-9_\-]{20,}",
    ),
    ("a Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    (
        "a Slack webhook URL",
        r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}",
    ),
    (
        "a JSON Web Token",
        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}",
    ),
    ("a Google API key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("a Stripe live key", r"\b[sr]k_live_[0-9A-Za-z]{20,}"),
    (
        "a URL with an embedded password",
        r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@$][^/\s@]{2,}@",
    ),
];

/// Env names that say they hold a credential, matched case-insensitively.
pub const NAME_PATTERN: &str = r"(?i)(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIALS?|AUTH_?KEY)";

/// Name suffixes that mark a variable about a credential rather than holding one (`DB_PASSWORD_FILE`).
pub const NAME_EXCEPTIONS: &str = r"(?i)(?:_FILE|_PATH|_DIR|_NAME|_REF|_URL|_URI|_CMD|_COMMAND|_ENABLED|_LENGTH|_TTL|_EXPIRY|_TIMEOUT|_MODE|_TYPE|_KEY_ID|_ID|_HEADER|_FIELD|_POLICY|_FORMAT|INITIAL_CLUSTER_TOKEN)$";

static VALUES: LazyLock<(RegexSet, Vec<Regex>)> = LazyLock::new(|| {
    let set =
        RegexSet::new(VALUE_PATTERNS.iter().map(|(_, re)| re)).expect("value patterns compile");
    let each = VALUE_PATTERNS
        .iter()
        .map(|(_, re)| Regex::new(re).expect("value pattern compiles"))
        .collect();
    (set, each)
});
static NAMES: LazyLock<(Regex, Regex)> = LazyLock::new(|| {
    (
        Regex::new(NAME_PATTERN).expect("name pattern compiles"),
        Regex::new(NAME_EXCEPTIONS).expect("name exceptions compile"),
    )
});

/// Compiles the patterns now rather than on the first review that needs them (about 2 ms).
pub(crate) fn compile_patterns() {
    LazyLock::force(&VALUES);
    LazyLock::force(&NAMES);
}

/// What a literal value that a credential-named variable holds must not be, to be worth flagging: empty,
/// a boolean or a number, a `$(VAR)` reference, a path, a template placeholder, or a `key=value,...`
/// configuration string.
pub(crate) fn is_inert(value: &str) -> bool {
    let v = value.trim();
    v.len() < 4
        || [
            "true",
            "false",
            "yes",
            "no",
            "none",
            "null",
            "enabled",
            "disabled",
            "changeme-in-secret",
        ]
        .iter()
        .any(|word| v.eq_ignore_ascii_case(word))
        || v.bytes().all(|b| b.is_ascii_digit())
        || (v.starts_with("$(") && v.ends_with(')'))
        || (v.starts_with("${") && v.ends_with('}'))
        || (v.starts_with("{{") && v.ends_with("}}"))
        || v.starts_with('/')
        || (v.contains('=') && v.contains(','))
}

/// What the value of env `name` looks like, if it looks like a credential.
pub fn classify(name: &str, value: &str) -> Option<&'static str> {
    if let Some((what, _)) = credential_shapes(value).next() {
        return Some(what);
    }
    (is_credential_name(name) && !is_inert(value)).then_some("a credential (by its name)")
}

/// Whether a name (of a variable, or of a flag with its dashes made underscores) says it holds a credential.
pub(crate) fn is_credential_name(name: &str) -> bool {
    let (names, exceptions) = &*NAMES;
    may_name_credential(name) && names.is_match(name) && !exceptions.is_match(name)
}

/// Whether `name` can match `NAME_PATTERN`, found cheaply: every match holds `pass`, `secret`, `token`,
/// `key` or `credential` in some case. Most names hold none. A name that is not ASCII is left to the
/// pattern, which folds case the Unicode way (the Kelvin sign is a `k`).
pub(crate) fn may_name_credential(name: &str) -> bool {
    let b = name.as_bytes();
    !name.is_ascii()
        || (0..b.len()).any(|i| may_start_credential_word(b[i]) && starts_credential_word(&b[i..]))
}

/// Whether a credential word (see `starts_credential_word`) can start with this byte: a cheap test that
/// most bytes fail. `| 0x20` lowercases an ASCII letter, and no other byte becomes one of these letters.
#[inline]
pub(crate) fn may_start_credential_word(byte: u8) -> bool {
    matches!(byte | 0x20, b'p' | b's' | b't' | b'k' | b'c')
}

/// Whether `text` starts with `pass`, `secret`, `token`, `key` or `credential`, in any ASCII case.
pub(crate) fn starts_credential_word(text: &[u8]) -> bool {
    let starts = |word: &[u8]| {
        text.get(..word.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(word))
    };
    match text.first().map(|b| b | 0x20) {
        Some(b'p') => starts(b"pass"),
        Some(b's') => starts(b"secret"),
        Some(b't') => starts(b"token"),
        Some(b'k') => starts(b"key"),
        Some(b'c') => starts(b"credential"),
        _ => false,
    }
}

/// Every place in `text` that has a credential's shape (`VALUE_PATTERNS`): what it looks like, and where.
pub(crate) fn credential_shapes(
    text: &str,
) -> impl Iterator<Item = (&'static str, std::ops::Range<usize>)> + '_ {
    let (set, each) = &*VALUES;
    // Most texts have no such shape; `is_match` says so without the allocation of `matches`.
    let found = set.is_match(text).then(|| set.matches(text));
    found.into_iter().flatten().flat_map(move |i| {
        each[i]
            .find_iter(text)
            .map(move |m| (VALUE_PATTERNS[i].0, m.range()))
    })
}

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        for (e, env) in c.container.env.iter().enumerate() {
            let Some(value) = env.value.as_deref() else {
                continue;
            };
            if let Some(what) = classify(&env.name, value) {
                out.push(pod.container_finding(
                    RuleId::SecretInEnv,
                    i,
                    &format!("env[{e}].value"),
                    env.name.clone(),
                    format!(
                        "container {:?} env {} holds a literal value that looks like {what}",
                        c.name(),
                        env.name
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use proptest::prelude::*;
    use proptest::string::string_regex;
    use rstest::rstest;

    #[rstest]
    #[case::aws("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", "an AWS access key id")]
    #[case::private_key("TLS_KEY", "-----BEGIN RSA PRIVATE KEY-----\nMIIE...", "a private key")]
    #[case::openssh_key("KEY", "-----BEGIN OPENSSH PRIVATE KEY-----", "a private key")]
    #[case::github("GH", "ghp_0123456789abcdefghijABCDEFGHIJ012345", "a GitHub token")]
    #[case::github_pat(
        "GH",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "a GitHub token"
    )]
    #[case::gitlab("CI", "glpat-abcdefghij0123456789", "a GitLab token")]
    #[case::slack("NOTIFY", "xoxb-123456789012-abcdefghijkl", "a Slack token")]
    #[case::slack_hook(
        "HOOK",
        "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "a Slack webhook URL"
    )]
    #[case::jwt(
        "AUTH",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "a JSON Web Token"
    )]
    #[case::url_password(
        "DATABASE",
        "postgres://app:s3cr3tpw@db:5432/app",
        "a URL with an embedded password"
    )]
    #[case::password_name("DB_PASSWORD", "hunter22", "a credential (by its name)")]
    #[case::secret_name("client_secret", "abcd1234", "a credential (by its name)")]
    #[case::token_name("SLACK_TOKEN", "not-a-known-shape", "a credential (by its name)")]
    fn flags(#[case] name: &str, #[case] value: &str, #[case] what: &str) {
        assert_eq!(classify(name, value), Some(what), "{name}={value}");
    }

    #[rstest]
    #[case::flag_value("ALLOW_EMPTY_PASSWORD", "yes")]
    #[case::file_path("MARIADB_PASSWORD_FILE", "/opt/bitnami/secrets/pw")]
    #[case::reference("DB_PASSWORD", "$(DB_PASSWORD_FROM_SECRET)")]
    #[case::name_suffix("SECRET_NAME", "my-secret")]
    #[case::number("TOKEN_TTL", "3600")]
    #[case::plain("LOG_LEVEL", "debug")]
    #[case::url_without_password("ENDPOINT", "https://example.com:8443/path")]
    #[case::url_with_reference("DB_URI", "postgresql://app:$(DB_PASSWORD)@db:5432/app")]
    #[case::command("API_SECRET_KEY_CMD", "cat /run/secrets/key")]
    #[case::config_string("ETCD_AUTH_TOKEN", "jwt,priv-key=/certs/jwt.pem,sign-method=RS256")]
    #[case::cluster_token("ETCD_INITIAL_CLUSTER_TOKEN", "etcd-cluster-k8s")]
    #[case::format("SECRETS_FORMAT", "compact")]
    fn ignores(#[case] name: &str, #[case] value: &str) {
        assert_eq!(classify(name, value), None, "{name}={value}");
    }

    /// Names like `NAME_PATTERN`'s matches, in any case (Unicode's too), amid other text.
    fn names() -> impl Strategy<Value = String> {
        let credential = string_regex(NAME_PATTERN).expect("the name pattern generates");
        let around = || string_regex(r"(?i)[a-z0-9_.\-]{0,6}").expect("generates");
        prop_oneof![
            (around(), credential, around()).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
            any::<String>(),
            "[ -~]{0,24}",
        ]
    }

    proptest! {
        /// The cheap test never turns away a name that the pattern matches.
        #[test]
        fn only_names_the_pattern_cannot_match_are_turned_away(name in names()) {
            let (pattern, _) = &*NAMES;
            prop_assert!(may_name_credential(&name) || !pattern.is_match(&name), "{name:?}");
        }
    }

    #[test]
    fn names_are_turned_away_cheaply_only_when_nothing_names_a_credential() {
        for name in [
            "DB_PASSWORD",
            "client_secret",
            "x-Api-Key",
            "TOKEN",
            "Credentials",
            "\u{212a}EY",
        ] {
            assert!(may_name_credential(name), "{name}");
        }
        for name in ["APP_NAME", "LOG_LEVEL", "listen", "log_format", "PASWORD"] {
            assert!(!may_name_credential(name), "{name}");
        }
    }

    #[test]
    fn flags_literal_values_never_value_from() {
        let f = findings(
            RuleId::SecretInEnv,
            r#"{"containers":[{"name":"a","env":[{"name":"LOG","value":"info"},
                {"name":"DB_PASSWORD","valueFrom":{"secretKeyRef":{"name":"db","key":"pw"}}},
                {"name":"KEY","value":"AKIAIOSFODNN7EXAMPLE"}]}]}"#,
        );
        assert_eq!(fields(&f), ["spec.containers[0].env[2].value"]);
        assert!(
            !f[0].message.contains("AKIA"),
            "the message must not leak the value"
        );
    }
}
