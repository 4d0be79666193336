//! `secret-in-args`: a credential written literally into a container's command line is readable by anyone
//! who can read the workload, and by anyone on the node who can list processes.
//!
//! Restricted fields:
//! - `spec.containers[*].command[*]` and `spec.containers[*].args[*]` (and `initContainers`,
//!   `ephemeralContainers`), read as one argument list
//!
//! The detectors are `secret-in-env`'s. A value is flagged when it has a credential's shape (`VALUE_PATTERNS`:
//! cloud keys, private keys, tokens, a URL with a password), or when a flag or a variable names a credential
//! (`NAME_PATTERN`, with dashes read as underscores) and its value is not inert: `--password=VALUE`,
//! `--token VALUE`, `DB_PASSWORD=VALUE` inside a script, and `-pVALUE` for the MySQL and MariaDB clients.
//! Arguments are split into words the way a shell would, so a script run by `sh -c` is read word by word.
//! A value holding a `$` reference (`$(VAR)`, `${VAR}`, `$VAR`, `$(cat FILE)`) is not literal. The value
//! itself is never repeated; `redact` replaces it, for the messages that show a command line.

use std::borrow::Cow;
use std::ops::Range;

use super::secret_in_env::{
    credential_shapes, is_credential_name, is_inert, may_name_credential,
    may_start_credential_word, starts_credential_word,
};
use super::{
    Check, CheckContext, DefaultMode, Finding, PodView, Rule, RuleId, RuleProfile, Severity,
};

pub const RULE: Rule = Rule {
    id: RuleId::SecretInArgs,
    severity: Severity::High,
    techniques: &["T1552.001", "T1552.007"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Policy,
    description: "a literal credential in a container's command or args (--password=..., tokens, URLs)",
    about_image: false,
    check: Check::Pod(check),
};

/// What replaces a credential in a command line that a message shows.
pub const REDACTED: &str = "<redacted>";

/// A credential found in an argument list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The argument it is in.
    pub arg: usize,
    /// Where the value is, in bytes of that argument.
    pub span: Range<usize>,
    /// What it looks like, for a message; never the value.
    pub what: String,
}

/// One shell word of an argument.
#[derive(Debug)]
struct Word<'a> {
    arg: usize,
    /// Where the word is in its argument, quotes included.
    raw: Range<usize>,
    /// The word with its quotes and escapes removed; borrowed from the argument when it has none.
    text: Cow<'a, str>,
    /// Whether a new simple command starts at this word.
    starts_command: bool,
}

/// Splits `text` into shell words: whitespace separates, quotes group, and `;`, `&`, `|`, `(`, `)`, a
/// newline and a backquote end a command. Deliberately simple: it only has to find words that name a
/// credential and the value after them.
fn split_words<'a>(arg: usize, text: &'a str, first_starts_command: bool, out: &mut Vec<Word<'a>>) {
    let mut start_next = first_starts_command;
    // The word being read: where it starts, and its text once a quote or an escape has made that differ
    // from the raw text.
    let mut current: Option<(usize, Option<String>)> = None;
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    let finish = |current: &mut Option<(usize, Option<String>)>,
                  end: usize,
                  start_next: &mut bool,
                  out: &mut Vec<Word<'a>>| {
        if let Some((start, unquoted)) = current.take() {
            out.push(Word {
                arg,
                raw: start..end,
                text: unquoted.map_or(Cow::Borrowed(&text[start..end]), Cow::Owned),
                starts_command: std::mem::take(start_next),
            });
        }
    };
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => quote = None,
            Some('"') if c == '"' => quote = None,
            Some('"') if c == '\\' => {
                if let Some(&(_, next)) = chars.peek()
                    && matches!(next, '"' | '\\' | '$' | '`')
                {
                    chars.next();
                    unquoted(text, &mut current, i).push(next);
                } else {
                    unquoted(text, &mut current, i).push(c);
                }
            }
            Some(_) => unquoted(text, &mut current, i).push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    unquoted(text, &mut current, i);
                }
                '\\' => {
                    let word = unquoted(text, &mut current, i);
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                }
                ';' | '&' | '|' | '(' | ')' | '\n' | '`' => {
                    finish(&mut current, i, &mut start_next, out);
                    start_next = true;
                }
                c if c.is_whitespace() => finish(&mut current, i, &mut start_next, out),
                c => match &mut current {
                    Some((_, Some(word))) => word.push(c),
                    Some((_, None)) => {}
                    None => current = Some((i, None)),
                },
            },
        }
    }
    finish(&mut current, text.len(), &mut start_next, out);
}

/// The unquoted text of the word being read, for a quote or an escape at byte `i`: from there on it differs
/// from the raw text, so it is copied out. A word starts at `i` when none is being read.
fn unquoted<'w>(
    text: &str,
    current: &'w mut Option<(usize, Option<String>)>,
    i: usize,
) -> &'w mut String {
    let (start, unquoted) = current.get_or_insert((i, None));
    unquoted.get_or_insert_with(|| text[*start..i].to_owned())
}

/// Whether `arg` is a shell option cluster that takes a script: `-c`, `-ec`, `-xc`, `-euxc`.
fn takes_script(arg: &str) -> bool {
    arg.strip_prefix('-').is_some_and(|opts| {
        !opts.is_empty() && opts.contains('c') && opts.bytes().all(|b| b.is_ascii_alphabetic())
    })
}

/// Whether a value holds a reference that the shell or the kubelet replaces: it is then not a literal.
fn has_reference(value: &str) -> bool {
    value.contains('`')
        || value.as_bytes().windows(2).any(|w| {
            w[0] == b'$'
                && (w[1] == b'(' || w[1] == b'{' || w[1] == b'_' || w[1].is_ascii_alphanumeric())
        })
        || value.trim() == "$"
}

/// Whether a value after a credential's name is worth flagging.
fn is_literal(value: &str) -> bool {
    !is_inert(value) && !has_reference(value) && !value.starts_with('-')
}

/// The name of a `--flag`, a `-flag` or a `VARIABLE` word, without its dashes; `None` for anything else.
fn flag_name(word: &str) -> Option<&str> {
    let bare = word.trim_start_matches('-');
    let dashes = word.len() - bare.len();
    let ok = !bare.is_empty()
        && dashes <= 2
        && bare.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then_some(bare)
}

/// Whether a flag's or a variable's name says it holds a credential, read as the credential-name pattern
/// reads it: with dashes and dots made underscores (which `may_name_credential` does not care about).
fn names_credential(name: &str) -> bool {
    may_name_credential(name) && is_credential_name(&name.replace(['-', '.'], "_"))
}

/// The MySQL and MariaDB clients, whose `-pVALUE` is a password.
fn is_mysql_client(command: &str) -> bool {
    let base = command.rsplit('/').next().unwrap_or(command);
    base.starts_with("mysql") || base.starts_with("mariadb")
}

/// Words that run the command after them, so that the command is the next word.
fn is_prefix_command(word: &str) -> bool {
    matches!(
        word,
        "exec" | "env" | "sudo" | "nohup" | "time" | "command" | "nice"
    )
}

/// Every credential in an argument list (a container's command and args together, or an exec's command).
pub fn find<S: AsRef<str>>(argv: &[S]) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (arg, text) in argv.iter().map(AsRef::as_ref).enumerate() {
        for (what, span) in credential_shapes(text) {
            hits.push(Hit {
                arg,
                span: password_of_url(text, span),
                what: what.to_owned(),
            });
        }
    }
    if argv.iter().any(|arg| may_name_credential_in(arg.as_ref())) {
        find_named(argv, &mut hits);
    }
    // One hit per value: a value with a credential's shape after a credential's name is found twice.
    hits.sort_by_key(|h| (h.arg, h.span.start));
    let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
    for hit in hits {
        match kept.last_mut() {
            Some(last) if last.arg == hit.arg && hit.span.start < last.span.end => {
                last.span.end = last.span.end.max(hit.span.end);
            }
            _ => kept.push(hit),
        }
    }
    kept
}

/// Whether `find_named` can find anything in an argument list with this argument, found cheaply; most
/// arguments name nothing. Each of its hits needs a word that names a credential (and so holds what
/// `may_name_credential` looks for) or that starts with `-p`, and a word is a piece of its argument as
/// written unless a quote or an escape joins it from several. Like `may_name_credential`, this leaves
/// what is not ASCII to the full reading.
fn may_name_credential_in(arg: &str) -> bool {
    let b = arg.as_bytes();
    !arg.is_ascii()
        || (0..b.len()).any(|i| match b[i] {
            b'\'' | b'"' | b'\\' => true,
            b'-' => b.get(i + 1) == Some(&b'p'),
            c => may_start_credential_word(c) && starts_credential_word(&b[i..]),
        })
}

/// Every credential that a name points at: `--password=VALUE`, `--token VALUE`, `PASSWORD=VALUE` in a
/// script, and `-pVALUE` after a MySQL client.
fn find_named<S: AsRef<str>>(argv: &[S], hits: &mut Vec<Hit>) {
    let mut words = Vec::new();
    for (arg, text) in argv.iter().map(AsRef::as_ref).enumerate() {
        let script = arg > 0 && takes_script(argv[arg - 1].as_ref());
        split_words(arg, text, arg == 0 || script, &mut words);
    }
    let mut command = "";
    let mut in_prefix = false;
    for (w, word) in words.iter().enumerate() {
        if word.starts_command {
            command = "";
            in_prefix = true;
        }
        let assignment = word.text.split_once('=');
        if in_prefix {
            let sets_variable = assignment
                .is_some_and(|(name, _)| !name.starts_with('-') && flag_name(name).is_some());
            if word.text.starts_with('-') {
                // A container's args without a command: the first word is already an option.
                in_prefix = false;
            } else if !sets_variable && !is_prefix_command(&word.text) {
                command = &word.text;
                in_prefix = false;
                continue;
            }
        }
        let value_at = |offset_in_raw: usize| word.raw.start + offset_in_raw..word.raw.end;
        if let Some((name, value)) = assignment {
            // `--password=VALUE`, `-password=VALUE`, `PASSWORD=VALUE`.
            if flag_name(name).is_some_and(names_credential) && is_literal(value) {
                let raw = &argv[word.arg].as_ref()[word.raw.clone()];
                let eq = raw.find('=').map_or(0, |i| i + 1);
                hits.push(Hit {
                    arg: word.arg,
                    span: value_at(eq),
                    what: format!("a credential (named by {name})"),
                });
            }
            continue;
        }
        // `-pVALUE` for the MySQL clients.
        if let Some(value) = word.text.strip_prefix("-p")
            && !value.is_empty()
            && is_mysql_client(command)
            && is_literal(value)
        {
            hits.push(Hit {
                arg: word.arg,
                span: value_at(2),
                what: format!("a password (the {command} option -p)"),
            });
            continue;
        }
        // `--token VALUE`: a credential-named flag, then its value as the next word of the same command.
        if word.text.starts_with('-')
            && flag_name(&word.text).is_some_and(names_credential)
            && let Some(next) = words.get(w + 1)
            && !next.starts_command
            && is_literal(&next.text)
        {
            hits.push(Hit {
                arg: next.arg,
                span: next.raw.clone(),
                what: format!("a credential (named by {})", word.text),
            });
        }
    }
}

/// Within a match of a URL with a password (`scheme://user:password@`), just the password; any other match
/// as it is.
fn password_of_url(text: &str, span: Range<usize>) -> Range<usize> {
    let found = &text[span.clone()];
    let Some(authority) = found.find("://").map(|i| i + 3) else {
        return span;
    };
    match (found[authority..].find(':'), found.rfind('@')) {
        (Some(colon), Some(at)) if authority + colon < at => {
            span.start + authority + colon + 1..span.start + at
        }
        _ => span,
    }
}

/// The arguments with every credential `find` sees replaced by `REDACTED`.
pub fn redact<S: AsRef<str>>(argv: &[S]) -> Vec<Cow<'_, str>> {
    let hits = find(argv);
    argv.iter()
        .map(AsRef::as_ref)
        .enumerate()
        .map(|(i, text)| {
            let spans: Vec<Range<usize>> = hits
                .iter()
                .filter(|h| h.arg == i)
                .map(|h| h.span.clone())
                .collect();
            if spans.is_empty() {
                return Cow::Borrowed(text);
            }
            // `find` sorts its hits and merges the ones that overlap.
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for span in spans {
                out.push_str(&text[at..span.start]);
                out.push_str(REDACTED);
                at = span.end;
            }
            out.push_str(&text[at..]);
            Cow::Owned(out)
        })
        .collect()
}

fn check(pod: &PodView<'_>, _: &CheckContext<'_>, out: &mut Vec<Finding>) {
    for (i, c) in pod.iter() {
        let (command, args) = (&c.container.command, &c.container.args);
        if command.is_empty() && args.is_empty() {
            continue;
        }
        let argv: Vec<&str> = command.iter().chain(args).map(String::as_str).collect();
        let hits = find(&argv);
        let mut k = 0;
        while k < hits.len() {
            let arg = hits[k].arg;
            let same = hits[k..].iter().take_while(|h| h.arg == arg).count();
            let rel = if arg < command.len() {
                format!("command[{arg}]")
            } else {
                format!("args[{}]", arg - command.len())
            };
            let more = match same {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            out.push(pod.container_finding(
                RuleId::SecretInArgs,
                i,
                &rel,
                rel.clone(),
                format!(
                    "container {:?} {rel} holds a literal value that looks like {}{more}",
                    c.name(),
                    hits[k].what
                ),
            ));
            k += same;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| (*s).to_owned()).collect()
    }

    fn redacted(words: &[&str]) -> Vec<String> {
        redact(&argv(words))
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    #[rstest]
    #[case::flag_equals(&["app", "--password=hunter22"], &["app", "--password=<redacted>"])]
    #[case::flag_space(&["app", "--token", "s3cr3t-t0ken"], &["app", "--token", "<redacted>"])]
    #[case::single_dash(&["app", "-db-password=hunter22"], &["app", "-db-password=<redacted>"])]
    #[case::mysql_p(&["mysql", "-uroot", "-phunter22", "app"], &["mysql", "-uroot", "-p<redacted>", "app"])]
    #[case::url(
        &["psql", "postgres://app:s3cr3tpw@db:5432/app"],
        &["psql", "postgres://app:<redacted>@db:5432/app"]
    )]
    #[case::aws_key(&["aws", "--key", "AKIAIOSFODNN7EXAMPLE"], &["aws", "--key", "<redacted>"])]
    #[case::sh_c(
        &["sh", "-c", "export DB_PASSWORD='hunter 22'; mysqladmin -u root -p\"hunter22\" ping"],
        &["sh", "-c", "export DB_PASSWORD=<redacted>; mysqladmin -u root -p<redacted> ping"]
    )]
    #[case::split(&["sh", "-ec", "curl -H x --api-key", "abcd1234efgh"], &["sh", "-ec", "curl -H x --api-key", "<redacted>"])]
    fn flags_and_redacts(#[case] input: &[&str], #[case] expected: &[&str]) {
        assert!(!find(&argv(input)).is_empty(), "{input:?}");
        assert_eq!(redacted(input), expected);
    }

    /// What must not be flagged. The `corpus_` cases are the false positives a first cut flagged on the
    /// chart corpus (`tests/check_corpus.rs`: 18 objects, every one fixed); the rest are the corpus's other
    /// near misses, and shapes like them.
    #[rstest]
    #[case::corpus_shell_reference_in_a_value(&["/bin/bash", "-ec", "redis_credentials=\":$(airflow_encode_url \"$REDIS_PASSWORD\")\""])]
    #[case::corpus_shell_references_in_a_value(&["/bin/bash", "-ec", "[[ -n \"$REDIS_USER\" ]] && redis_credentials=\"$(airflow_encode_url \"$REDIS_USER\")$redis_credentials\""])]
    #[case::corpus_find_print0(&["/bin/bash", "-ec", "find /bitnami/apisix/conf -type f -name *.yaml -print0 | sort -z | xargs -0 yq"])]
    #[case::corpus_secrets_format(&["contour", "certgen", "--kube", "--incluster", "--overwrite", "--secrets-format=compact"])]
    #[case::reference(&["app", "--password=$(DB_PASSWORD)"])]
    #[case::shell_reference(&["sh", "-c", "cqlsh -u $USER -p $CASSANDRA_PASSWORD"])]
    #[case::file(&["app", "--password-file=/run/secrets/pw"])]
    #[case::secret_name(&["app", "--dynamic-serving-ca-secret-name=webhook-ca"])]
    #[case::command_substitution(&["sh", "-c", "export AIRFLOW_DATABASE_PASSWORD=\"$(< $AIRFLOW_DATABASE_PASSWORD_FILE)\""])]
    #[case::nested_substitution(&["sh", "-c", "db_password=\"$(airflow_encode_url \"$AIRFLOW_DATABASE_PASSWORD\")\""])]
    #[case::url_with_references(&["sh", "-c", "x \"postgresql://${db_user}:${db_password}@${HOST}/db\""])]
    #[case::k8s_url_reference(&["mlflow", "--backend-store-uri=postgresql://bn:$(MLFLOW_DATABASE_PASSWORD)@pg:5432/db"])]
    #[case::go_flags_starting_with_p(&["seaweedfs", "-port=8888", "-peers=a:9333", "-publicUrl=127.0.0.1:8080"])]
    #[case::p_outside_mysql(&["tar", "-pcvf", "x.tar", "dir"])]
    #[case::yes(&["sh", "-c", "export CASSANDRA_PASSWORD_SEEDER=yes"])]
    #[case::backquote(&["sh", "-c", "export REDISCLI_AUTH=`cat $REDIS_PASSWORD_FILE`"])]
    #[case::boolean_flag(&["kube-controller-manager", "--use-service-account-credentials", "--v=2"])]
    #[case::mysql_prompt(&["mysql", "-p", "appdb"])]
    #[case::plain(&["nginx", "-g", "daemon off;"])]
    fn ignores(#[case] input: &[&str]) {
        assert_eq!(find(&argv(input)), vec![], "{input:?}");
    }

    /// Argument lists in which `find_named` finds a credential, with other words around them, and with
    /// empty quotes and escapes slipped in: the shell reads the same words, but what is written is broken
    /// up.
    fn argument_lists() -> impl Strategy<Value = Vec<String>> {
        const NAMED: &[&[&str]] = &[
            &["app", "--password=hunter22"],
            &["app", "--token", "s3cr3t-t0ken"],
            &["mysql", "-uroot", "-phunter22"],
            &["sh", "-c", "export DB_PASSWORD=x1y2z3; mysql -phunter22"],
            &["sh", "-ec", "app --api-key", "abcd1234"],
            &["app", "-client.Secret=abcd1234"],
            &["CREDENTIALS=a1b2c3d4", "app"],
        ];
        const OTHER: &[&str] = &[
            "x", "=", "-", "--", ";", "|", " ", "\t", "\n", "'", "\"", "\\", "\u{a0}", "\u{e9}",
            "app", "env",
        ];
        let other = prop_oneof![
            prop::collection::vec(prop::sample::select(OTHER), 0..6).prop_map(|p| p.concat()),
            any::<String>(),
        ];
        let breaks = prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop::sample::select(&["''", "\"\"", "\\"][..]),
            ),
            0..3,
        );
        (
            prop::sample::select(NAMED),
            prop::collection::vec(other, 0..3),
            prop::collection::vec(breaks, 8),
        )
            .prop_map(|(named, other, breaks)| {
                let mut argv: Vec<String> = named.iter().map(|&a| a.to_owned()).collect();
                argv.extend(other);
                for (arg, breaks) in argv.iter_mut().zip(breaks) {
                    for (at, with) in breaks {
                        let at = at.index(arg.len() + 1);
                        if arg.is_char_boundary(at) {
                            arg.insert_str(at, with);
                        }
                    }
                }
                argv
            })
    }

    proptest! {
        /// The cheap test never turns away an argument list in which `find_named` finds something.
        #[test]
        fn only_arguments_that_name_nothing_are_turned_away(argv in argument_lists()) {
            let mut hits = Vec::new();
            find_named(&argv, &mut hits);
            prop_assert!(hits.is_empty() || argv.iter().any(|arg| may_name_credential_in(arg)), "{argv:?}");
        }
    }

    #[test]
    fn arguments_are_turned_away_cheaply_only_when_nothing_is_named() {
        for arg in [
            "--password=x",
            "-pw0rd",
            "--pa''ssword=x",
            "to\\ken",
            "\u{212a}EY=abcd1234",
        ] {
            assert!(may_name_credential_in(arg), "{arg}");
        }
        for arg in [
            "--listen=:8080",
            "--config=/etc/app/config.yaml",
            "daemon off;",
            "--log-format=json",
        ] {
            assert!(!may_name_credential_in(arg), "{arg}");
        }
    }

    #[test]
    fn fails_on_a_literal_password_in_args_without_repeating_it() {
        let f = findings(
            RuleId::SecretInArgs,
            r#"{"containers":[{"name":"db","command":["mysqld"],"args":["--user=mysql","--password=hunter22"]}]}"#,
        );
        assert_eq!(fields(&f), ["spec.containers[0].args[1]"]);
        assert_eq!(
            f[0].message,
            r#"container "db" args[1] holds a literal value that looks like a credential (named by --password)"#
        );
        assert!(!f[0].message.contains("hunter22"));
    }

    #[test]
    fn passes_on_references_and_plain_commands() {
        assert!(
            findings(
                RuleId::SecretInArgs,
                r#"{"containers":[{"name":"db","command":["sh","-c","mysqld --password=\"$DB_PASSWORD\""]},{"name":"web","args":["-g","daemon off;"]}]}"#,
            )
            .is_empty()
        );
    }
}
