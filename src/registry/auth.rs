//! Registry credentials from a docker `config.json` (`--registry-auth`), as kubelet's image pull secrets
//! hold them.

use std::collections::HashMap;

use base64::Engine as _;
use serde::Deserialize;

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Username and password per registry host.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    by_host: HashMap<String, (String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Credentials")
            .field("registries", &self.by_host.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The registry host a config key or an image domain means: `https://index.docker.io/v1/` is `docker.io`.
pub fn registry_key(raw: &str) -> String {
    let host = raw
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

impl Credentials {
    /// Parses a docker `config.json`. `name` names the file in errors; an error never quotes a secret.
    pub fn parse(text: &str, name: &str) -> Result<Credentials, String> {
        let config: DockerConfig = serde_json::from_str(text)
            .map_err(|e| format!("{name}: not a docker config.json: {e}"))?;
        let mut by_host = HashMap::new();
        for (key, entry) in config.auths {
            let pair = match (entry.username, entry.password, entry.auth) {
                (Some(user), Some(password), _) => (user, password),
                (_, _, Some(auth)) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| {
                            format!("{name}: auths.{key}.auth is not base64 of user:password")
                        })?;
                    let (user, password) = decoded.split_once(':').ok_or_else(|| {
                        format!("{name}: auths.{key}.auth is not base64 of user:password")
                    })?;
                    (user.to_owned(), password.to_owned())
                }
                _ => {
                    return Err(format!(
                        "{name}: auths.{key} has neither auth nor username and password"
                    ));
                }
            };
            by_host.insert(registry_key(&key), pair);
        }
        Ok(Credentials { by_host })
    }

    /// The credentials for an image's registry domain, or anonymous.
    pub fn for_registry(&self, domain: &str) -> oci_client::secrets::RegistryAuth {
        match self.by_host.get(&registry_key(domain)) {
            Some((user, password)) => {
                oci_client::secrets::RegistryAuth::Basic(user.clone(), password.clone())
            }
            None => oci_client::secrets::RegistryAuth::Anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms_and_normalizes_hosts() {
        let text = r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
            "Registry.Corp.Example:5000":{"username":"bob","password":"s3cret"}}}"#;
        let c = Credentials::parse(text, "config.json").unwrap();
        assert!(
            matches!(c.for_registry("docker.io"), oci_client::secrets::RegistryAuth::Basic(u, p) if u == "user" && p == "pass")
        );
        assert!(
            matches!(c.for_registry("registry.corp.example:5000"), oci_client::secrets::RegistryAuth::Basic(u, _) if u == "bob")
        );
        assert!(matches!(
            c.for_registry("ghcr.io"),
            oci_client::secrets::RegistryAuth::Anonymous
        ));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn bad_files_are_errors_without_secrets() {
        let err = Credentials::parse(r#"{"auths":{"r":{"auth":"not base64!"}}}"#, "config.json")
            .unwrap_err();
        assert_eq!(
            err,
            "config.json: auths.r.auth is not base64 of user:password"
        );
        assert!(Credentials::parse("{", "config.json").is_err());
    }
}
