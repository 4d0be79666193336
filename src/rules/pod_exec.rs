//! `pod-exec`: `kubectl exec` runs a command in a running container, and `kubectl attach` joins its main
//! process, past every control the pod was created under (T1609): reading mounted tokens, running `pspy`,
//! opening a shell.
//!
//! Restricted requests:
//! - CONNECT on `pods/exec` (PodExecOptions: `container`, `command`, `stdin`, `tty`)
//! - CONNECT on `pods/attach` (PodAttachOptions: `container`, `stdin`, `tty`)
//!
//! Allowed values: none; the catalogue default is `audit`, so that every exec is recorded from the start
//! and an exemption (by group, user, service account or namespace) says who may. The message names the
//! container ("the default container" when kubectl leaves the choice to the API server), stdin and tty,
//! and for exec the command line, shell-quoted, with every credential `secret-in-args` sees replaced by
//! `<redacted>`. The pod is not in the review, so a container name is judged as written, whether the pod
//! has such a container or not.

use super::secret_in_args;
use super::{Check, DefaultMode, Finding, Rule, RuleId, RuleProfile, Severity, connect_finding};
use crate::connect::{Connect, ConnectKind};
use crate::policy::Mode;

pub const RULE: Rule = Rule {
    id: RuleId::PodExec,
    severity: Severity::Medium,
    techniques: &["T1609", "T1552"],
    profile: RuleProfile::Baseline,
    default_mode: DefaultMode::Fixed(Mode::Audit),
    description: "kubectl exec or attach into a running container; records the command, stdin and tty",
    about_image: false,
    check: Check::Connect(check),
};

/// How much of a command line is worth building: the engine cuts messages at 1,024 characters
/// (`alert::MAX_MESSAGE_CHARS`), so a megabyte of arguments is never joined.
const LINE_CHARS: usize = 1024;

/// How far past what is shown the credential detectors read, so that a value cut at the edge of the
/// message is still recognised (a URL's password needs its `@`) and redacted.
const SCAN_MARGIN: usize = 8192;

/// The arguments that can appear in a line of `max` characters, each cut `SCAN_MARGIN` bytes past that:
/// all that the message can show, and enough beyond it to redact what it shows. A CONNECT with a
/// megabyte of command line costs no more than one with a few kilobytes.
fn visible<S: AsRef<str>>(argv: &[S], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut used = 0;
    for arg in argv {
        if used > max {
            break;
        }
        let arg = arg.as_ref();
        let mut cut = (max + SCAN_MARGIN).min(arg.len());
        while !arg.is_char_boundary(cut) {
            cut -= 1;
        }
        used += arg[..cut].chars().count() + 1;
        out.push(arg[..cut].to_owned());
    }
    out
}

/// `container "NAME"`, or the default container when none is named.
pub(crate) fn target(connect: &Connect) -> String {
    match &connect.container {
        Some(name) => format!("container {name:?}"),
        None => "the default container".to_owned(),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Appends `arg` as a shell would need it written: bare when it is plain, in single quotes otherwise, and
/// in `$'...'` with escapes when it holds control characters (a newline must not start a new log line).
fn push_quoted(arg: &str, out: &mut String) {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b);
    if !arg.is_empty() && arg.bytes().all(plain) {
        out.push_str(arg);
    } else if arg.chars().any(char::is_control) {
        out.push_str("$'");
        for c in arg.chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('\'');
    } else {
        out.push('\'');
        out.push_str(&arg.replace('\'', r"'\''"));
        out.push('\'');
    }
}

/// The command line, shell-quoted and joined with spaces, built only up to about `max` characters (the
/// caller cuts it).
pub(crate) fn shell_line<S: AsRef<str>>(argv: &[S], max: usize) -> String {
    let mut out = String::new();
    for arg in argv {
        if out.len() > max {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let arg = arg.as_ref();
        // Only as much of one huge argument as can be shown.
        let cut = arg
            .char_indices()
            .nth(max + 1)
            .map_or(arg.len(), |(i, _)| i);
        push_quoted(&arg[..cut], &mut out);
    }
    out
}

fn check(connect: &Connect, out: &mut Vec<Finding>) {
    let session = format!(
        "(stdin: {}, tty: {})",
        yes_no(connect.stdin),
        yes_no(connect.tty)
    );
    let message = match connect.kind {
        ConnectKind::Exec if connect.command.is_empty() => {
            format!("exec into {} {session}: no command", target(connect))
        }
        ConnectKind::Exec => format!(
            "exec into {} {session}: {}",
            target(connect),
            shell_line(
                &secret_in_args::redact(&visible(&connect.command, LINE_CHARS)),
                LINE_CHARS
            )
        ),
        ConnectKind::Attach => format!("attach to {} {session}", target(connect)),
        ConnectKind::PortForward => return,
    };
    out.push(connect_finding(
        RuleId::PodExec,
        connect.kind.to_string(),
        message,
    ));
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::exec(
        ConnectKind::Exec,
        r#"{"container":"p","command":["sh","-c","cat /var/run/secrets/kubernetes.io/serviceaccount/token"]}"#,
        "pods/exec",
        r#"exec into container "p" (stdin: no, tty: no): sh -c 'cat /var/run/secrets/kubernetes.io/serviceaccount/token'"#
    )]
    #[case::interactive_default_container(
        ConnectKind::Exec,
        r#"{"stdin":true,"tty":true,"command":["bash"]}"#,
        "pods/exec",
        "exec into the default container (stdin: yes, tty: yes): bash"
    )]
    #[case::credential_redacted(
        ConnectKind::Exec,
        r#"{"container":"db","command":["mysql","-uroot","-phunter22","-e","select 1"]}"#,
        "pods/exec",
        r#"exec into container "db" (stdin: no, tty: no): mysql -uroot '-p<redacted>' -e 'select 1'"#
    )]
    #[case::control_characters(
        ConnectKind::Exec,
        r#"{"container":"p","command":["sh","-c","true\nid"]}"#,
        "pods/exec",
        r#"exec into container "p" (stdin: no, tty: no): sh -c $'true\nid'"#
    )]
    #[case::no_command(
        ConnectKind::Exec,
        r#"{"container":"p"}"#,
        "pods/exec",
        r#"exec into container "p" (stdin: no, tty: no): no command"#
    )]
    #[case::attach(
        ConnectKind::Attach,
        r#"{"container":"p","stdin":true,"stdout":true}"#,
        "pods/attach",
        r#"attach to container "p" (stdin: yes, tty: no)"#
    )]
    fn fails_on_every_exec_and_attach(
        #[case] kind: ConnectKind,
        #[case] options: &str,
        #[case] field: &str,
        #[case] message: &str,
    ) {
        let f = connect_findings(RuleId::PodExec, kind, options);
        assert_eq!(fields(&f), [field]);
        assert_eq!(f[0].message, message);
    }

    #[test]
    fn passes_on_port_forward_and_pods() {
        assert!(
            connect_findings(
                RuleId::PodExec,
                ConnectKind::PortForward,
                r#"{"ports":[80]}"#
            )
            .is_empty()
        );
        assert!(findings(RuleId::PodExec, r#"{"containers":[{"name":"app"}]}"#).is_empty());
    }

    #[test]
    fn huge_command_lines_are_read_and_built_only_as_far_as_shown() {
        let argv: Vec<String> = (0..100_000).map(|i| format!("arg{i}")).collect();
        let line = shell_line(&argv, LINE_CHARS);
        assert!(line.len() < LINE_CHARS + 16, "{}", line.len());
        assert!(visible(&argv, LINE_CHARS).len() < 200);
        let one = vec!["x".repeat(1_000_000)];
        assert!(shell_line(&one, LINE_CHARS).len() <= LINE_CHARS + 1);
        assert_eq!(visible(&one, LINE_CHARS)[0].len(), LINE_CHARS + SCAN_MARGIN);
    }

    #[test]
    fn a_credential_at_the_edge_of_the_message_is_still_redacted() {
        // The password starts inside the shown part; its URL's `@` lies past it.
        let padding = "x".repeat(LINE_CHARS - 30);
        let url = format!("postgres://app:{}@db/app", "s".repeat(100));
        let command = serde_json::json!(["psql", padding, url]);
        let f = connect_findings(
            RuleId::PodExec,
            ConnectKind::Exec,
            &serde_json::json!({ "command": command }).to_string(),
        );
        assert!(
            f[0].message.contains("postgres://app:<redacted>"),
            "{}",
            f[0].message
        );
        assert!(!f[0].message.contains("sss"), "{}", f[0].message);
    }
}
