//! The real `cosign` CLI, as `scripts/test-deps.sh` builds it from its Go module into
//! `~/.cache/vigil/cosign/VERSION/`, signing images in a registry on loopback without a transparency log.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Which of its two forms cosign writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The `sha256-<hex>.sig` tag (`--new-bundle-format=false`).
    Tag,
    /// A Sigstore bundle attached as an OCI referrer (cosign 3's default).
    Bundle,
}

impl Form {
    pub const BOTH: [Form; 2] = [Form::Tag, Form::Bundle];

    /// The name the alert record gives the form.
    pub fn as_alert(self) -> &'static str {
        match self {
            Form::Tag => "sig-tag",
            Form::Bundle => "bundle",
        }
    }
}

/// A cosign CLI with a scratch home, so that it reads and writes nothing of the user's.
pub struct Cosign {
    bin: PathBuf,
    home: tempfile::TempDir,
}

/// A key pair made by `cosign generate-key-pair`.
pub struct KeyPair {
    pub key: PathBuf,
    pub public_pem: String,
}

/// The cosign version `scripts/test-deps.sh` pins.
fn pinned_version() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-deps.sh");
    let text = std::fs::read_to_string(script).expect("scripts/test-deps.sh");
    text.lines()
        .find_map(|l| l.strip_prefix("COSIGN_VERSION=\""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("COSIGN_VERSION in scripts/test-deps.sh")
        .to_owned()
}

impl Cosign {
    /// Finds the CLI that `scripts/test-deps.sh` built, or fails saying how to get it: never skips.
    pub fn find() -> Cosign {
        let version = pinned_version();
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
            });
        let bin = cache.join("vigil/cosign").join(&version).join("cosign");
        assert!(
            bin.is_file(),
            "cosign {version} is not at {}: run ./scripts/test-deps.sh (make test does), which builds it from its Go module",
            bin.display()
        );
        Cosign {
            bin,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("COSIGN_PASSWORD", "")
            .env("HOME", self.home.path())
            .env("TUF_ROOT", self.home.path().join("tuf"))
            .env("DOCKER_CONFIG", self.home.path().join("docker"))
            .current_dir(self.home.path());
        c
    }

    fn run(&self, mut command: Command, what: &str) {
        let out = command.output().expect("cosign runs");
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `cosign generate-key-pair`, with an empty password.
    pub fn key_pair(&self, name: &str) -> KeyPair {
        let mut c = self.command();
        c.args(["generate-key-pair", "--output-key-prefix", name]);
        self.run(c, "cosign generate-key-pair");
        let dir = self.home.path();
        KeyPair {
            key: dir.join(format!("{name}.key")),
            public_pem: std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap(),
        }
    }

    /// `cosign sign --key` of `image` (`host/repo@digest`), in `form`, with no transparency log.
    pub fn sign(&self, key: &Path, image: &str, form: Form) {
        let mut c = self.command();
        c.args(["sign", "--key"]).arg(key).args([
            "--tlog-upload=false",
            "--use-signing-config=false",
            "--allow-http-registry",
            "--allow-insecure-registry",
            "--yes",
        ]);
        if form == Form::Tag {
            c.arg("--new-bundle-format=false");
        }
        c.arg(image);
        self.run(c, &format!("cosign sign ({form:?}) {image}"));
    }
}
