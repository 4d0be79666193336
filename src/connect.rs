//! What a CONNECT into a running pod asks for: `kubectl exec`, `attach` and `port-forward`.
//!
//! The API server sends these as CONNECT on `pods/exec`, `pods/attach` and `pods/portforward`, before it
//! contacts any kubelet. The object is the PodExecOptions, PodAttachOptions or PodPortForwardOptions; the
//! pod itself is not in the review (only its name), so nothing here knows its containers or images.
//! Decoding follows `workload.rs`: unknown fields are skipped, `null` reads as absent, and a field present
//! with the wrong type is an error.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// The pod subresources whose CONNECT Vigil judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectKind {
    Exec,
    Attach,
    PortForward,
}

impl ConnectKind {
    /// The kind for a subresource name. Compared case-insensitively, as kinds are, so that a spelling
    /// cannot carry a CONNECT past the rules.
    pub fn from_subresource(name: &str) -> Option<ConnectKind> {
        [
            ConnectKind::Exec,
            ConnectKind::Attach,
            ConnectKind::PortForward,
        ]
        .into_iter()
        .find(|k| k.subresource().eq_ignore_ascii_case(name))
    }

    /// The subresource, as the API server names it.
    pub fn subresource(self) -> &'static str {
        match self {
            ConnectKind::Exec => "exec",
            ConnectKind::Attach => "attach",
            ConnectKind::PortForward => "portforward",
        }
    }

    /// The kind of the review's object.
    pub fn options_kind(self) -> &'static str {
        match self {
            ConnectKind::Exec => "PodExecOptions",
            ConnectKind::Attach => "PodAttachOptions",
            ConnectKind::PortForward => "PodPortForwardOptions",
        }
    }
}

impl fmt::Display for ConnectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pods/{}", self.subresource())
    }
}

/// A decoded CONNECT: which subresource, and the options the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub kind: ConnectKind,
    /// The container named by the client; `None` when kubectl leaves the choice to the API server (the
    /// pod's default container). A name that does not exist is kept as it is: the pod is not visible here.
    pub container: Option<String>,
    /// The command of an exec, each argument as sent.
    pub command: Vec<String>,
    pub stdin: bool,
    pub tty: bool,
    /// The ports of a port-forward. kubectl's SPDY port-forward names them in stream headers, not in the
    /// request, so they may be absent.
    pub ports: Vec<i64>,
}

/// Why the object of a CONNECT could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConnectDecodeError {
    pub path: String,
    pub message: String,
}

/// Reads `null` or an absent list as empty, and `null` items as 0, as Go's decoder does.
fn numbers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    let items = Option::<Vec<Option<i64>>>::deserialize(d)?.unwrap_or_default();
    Ok(items.into_iter().map(Option::unwrap_or_default).collect())
}

/// The fields of the three options kinds; each kind reads its own and ignores the rest.
#[derive(Deserialize)]
struct Options {
    #[serde(default)]
    container: Option<String>,
    #[serde(default, deserialize_with = "crate::workload::nullable_strings")]
    command: Vec<String>,
    #[serde(default)]
    stdin: Option<bool>,
    #[serde(default)]
    tty: Option<bool>,
    #[serde(default, deserialize_with = "numbers")]
    ports: Vec<i64>,
}

impl Connect {
    /// Decodes the review's object for a CONNECT on `kind`. An error names the field.
    pub fn from_json(kind: ConnectKind, json: &str) -> Result<Connect, ConnectDecodeError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let options: Options = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            ConnectDecodeError {
                path: if path == "." {
                    "(object)".to_owned()
                } else {
                    path
                },
                message: e.into_inner().to_string(),
            }
        })?;
        de.end().map_err(|e| ConnectDecodeError {
            path: "(object)".to_owned(),
            message: e.to_string(),
        })?;
        let exec = kind == ConnectKind::Exec;
        let session = kind != ConnectKind::PortForward;
        Ok(Connect {
            kind,
            container: if session {
                options.container.filter(|c| !c.is_empty())
            } else {
                None
            },
            command: if exec { options.command } else { Vec::new() },
            stdin: session && options.stdin.unwrap_or(false),
            tty: session && options.tty.unwrap_or(false),
            ports: if session { Vec::new() } else { options.ports },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_kind_of_options() {
        let exec = Connect::from_json(
            ConnectKind::Exec,
            r#"{"kind":"PodExecOptions","apiVersion":"v1","stdin":true,"stdout":true,"tty":true,"container":"app","command":["sh","-c","id"]}"#,
        )
        .unwrap();
        assert_eq!(exec.container.as_deref(), Some("app"));
        assert_eq!(exec.command, ["sh", "-c", "id"]);
        assert!(exec.stdin && exec.tty);

        let attach = Connect::from_json(
            ConnectKind::Attach,
            r#"{"kind":"PodAttachOptions","stdout":true,"command":["ignored"]}"#,
        )
        .unwrap();
        assert_eq!(attach.container, None, "the default container");
        assert!(attach.command.is_empty(), "attach runs no command");

        let forward = Connect::from_json(
            ConnectKind::PortForward,
            r#"{"kind":"PodPortForwardOptions","ports":[80,5432]}"#,
        )
        .unwrap();
        assert_eq!(forward.ports, [80, 5432]);
        assert_eq!(
            Connect::from_json(ConnectKind::PortForward, "{}")
                .unwrap()
                .ports,
            Vec::<i64>::new()
        );
    }

    #[test]
    fn nulls_read_as_absent_and_wrong_types_name_the_field() {
        let c = Connect::from_json(
            ConnectKind::Exec,
            r#"{"container":null,"command":["a",null],"stdin":null}"#,
        )
        .unwrap();
        assert_eq!(c.command, ["a", ""]);
        assert_eq!(c.container, None);
        let e = Connect::from_json(ConnectKind::Exec, r#"{"command":"rm -rf /"}"#).unwrap_err();
        assert_eq!(e.path, "command");
        let e =
            Connect::from_json(ConnectKind::Exec, r#"{"command":[],"command":["x"]}"#).unwrap_err();
        assert!(e.message.contains("duplicate field"), "{e}");
        let e = Connect::from_json(ConnectKind::PortForward, r#"{"ports":["80"]}"#).unwrap_err();
        assert_eq!(e.path, "ports[0]");
    }

    #[test]
    fn subresources_compare_without_case() {
        assert_eq!(
            ConnectKind::from_subresource("EXEC"),
            Some(ConnectKind::Exec)
        );
        assert_eq!(
            ConnectKind::from_subresource("portforward"),
            Some(ConnectKind::PortForward)
        );
        assert_eq!(ConnectKind::from_subresource("proxy"), None);
    }
}
