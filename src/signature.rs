//! Cosign signatures: the two forms `cosign sign --key` writes, read and verified against the policy's keys.
//!
//! - The `sha256-<hex>.sig` tag (cosign 2, and cosign 3 with `--new-bundle-format=false`): each layer is a
//!   "simple signing" JSON payload naming the image's manifest digest and repository; the layer's annotation
//!   `dev.cosignproject.cosign/signature` holds the base64 ECDSA signature over the payload's bytes.
//! - A Sigstore bundle attached as an OCI referrer (cosign 3's default): a DSSE envelope whose payload is an
//!   in-toto statement of predicate type `https://sigstore.dev/cosign/sign/v1` with the image digest as its
//!   subject; the signature is over the DSSE pre-authentication encoding of the payload.
//!
//! This file reads what the registry served and decides; it makes no request. Only ECDSA P-256 keys (what
//! `cosign generate-key-pair` makes) are supported. Keyless signatures (Fulcio, Rekor) are not.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::image::ImageRef;

/// The media type of a `.sig` layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The `.sig` layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type (and layer media type) of a Sigstore bundle referrer, as cosign 3 writes it.
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The `critical.type` of a simple-signing payload.
const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// The predicate type of the statement `cosign sign` puts in a bundle.
const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const IN_TOTO_STATEMENT_TYPES: &[&str] = &[
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

/// The most signatures of one form read for one image: more is no signature anyone needs, and an attacker
/// must not make a review fetch thousands of blobs.
pub const MAX_SIGNATURES: usize = 16;
/// The most bytes of one signature payload or bundle read. cosign's are a few KiB.
pub const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;

/// A public key the policy trusts, by name.
#[derive(Clone)]
pub struct TrustedKey {
    pub name: String,
    key: VerifyingKey,
    /// The first 16 hex digits of the SHA-256 of the key's DER form.
    pub fingerprint: String,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl PartialEq for TrustedKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.key == other.key
    }
}

impl TrustedKey {
    /// Reads a PEM public key as `cosign generate-key-pair` writes it (`cosign.pub`).
    pub fn from_pem(name: &str, pem: &str) -> Result<TrustedKey, String> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
            if pem.contains("BEGIN PUBLIC KEY") {
                format!("not an ECDSA P-256 public key ({e}); only P-256 keys, as `cosign generate-key-pair` makes them, are supported")
            } else {
                "expected a PEM public key (-----BEGIN PUBLIC KEY-----), as in cosign.pub".to_owned()
            }
        })?;
        let der = key
            .to_public_key_der()
            .map_err(|e| format!("cannot encode the key: {e}"))?;
        let hash = Sha256::digest(der.as_bytes());
        let fingerprint = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(TrustedKey {
            name: name.to_owned(),
            key,
            fingerprint,
        })
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        DerSignature::from_bytes(signature).is_ok_and(|sig| self.key.verify(message, &sig).is_ok())
    }
}

/// Which of cosign's two forms a signature came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SignatureForm {
    /// The `sha256-<hex>.sig` tag.
    #[serde(rename = "sig-tag")]
    Tag,
    /// A Sigstore bundle attached as an OCI referrer.
    #[serde(rename = "bundle")]
    Bundle,
}

impl fmt::Display for SignatureForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureForm::Tag => "the .sig tag",
            SignatureForm::Bundle => "a bundle referrer",
        })
    }
}

/// Something the registry served in a signature's place, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// A `.sig` layer: the simple-signing payload, and the signature from the layer's annotation.
    SimpleSigning {
        payload: Vec<u8>,
        signature: Vec<u8>,
    },
    /// A Sigstore bundle, as served.
    Bundle(Vec<u8>),
    /// Something that is not a signature, and why.
    Malformed { form: SignatureForm, why: String },
}

/// What the signatures of one image digest say, under one set of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// A signature by `key` names this digest and repository.
    Verified {
        key: String,
        form: SignatureForm,
        digest: String,
    },
    /// No signature at all, in either form.
    Unsigned { digest: String },
    /// Signatures, but none that a trusted key made (or none that is a cosign signature); why.
    Untrusted { digest: String, why: String },
    /// A trusted key's signature, for another digest.
    OtherDigest {
        digest: String,
        named: String,
        key: String,
        form: SignatureForm,
    },
    /// A trusted key's signature for this digest, but for another repository.
    OtherRepository {
        digest: String,
        named: String,
        key: String,
        form: SignatureForm,
    },
    /// The registry could not answer; why.
    Unverified(String),
}

/// What one candidate says.
enum Outcome {
    Verified(String, SignatureForm),
    OtherDigest(String, String, SignatureForm),
    OtherRepository(String, String, SignatureForm),
    /// Signed by no trusted key, or not a cosign signature: why.
    Rejected(String),
}

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: ImageClaim,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct ImageClaim {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    #[serde(default)]
    dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    predicate_type: String,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    name: Option<String>,
    digest: BTreeMap<String, String>,
}

/// The DSSE pre-authentication encoding: what a DSSE signature signs.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// The key among `keys` that made `signature` over `message`.
fn signer<'k>(keys: &'k [TrustedKey], message: &[u8], signature: &[u8]) -> Option<&'k TrustedKey> {
    keys.iter().find(|k| k.verifies(message, signature))
}

fn same_repository(named: &str, image: &ImageRef) -> bool {
    ImageRef::parse(named)
        .is_ok_and(|n| n.domain().eq_ignore_ascii_case(image.domain()) && n.path() == image.path())
}

fn check_simple_signing(
    payload: &[u8],
    signature: &[u8],
    keys: &[TrustedKey],
    image: &ImageRef,
    digest: &str,
) -> Outcome {
    let form = SignatureForm::Tag;
    let Some(key) = signer(keys, payload, signature) else {
        return Outcome::Rejected(format!("{form} holds a signature by no trusted key"));
    };
    // Only what a trusted key signed is read; serde rejects a payload with a field twice.
    let claim: SimpleSigning = match serde_json::from_slice(payload) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Rejected(format!(
                "{form} holds a payload signed by {:?} that is not a simple-signing payload ({e})",
                key.name
            ));
        }
    };
    if claim.critical.kind != SIMPLE_SIGNING_TYPE {
        return Outcome::Rejected(format!(
            "{form} holds a payload signed by {:?} of type {:?}, not a cosign image signature",
            key.name, claim.critical.kind
        ));
    }
    let named = claim.critical.image.docker_manifest_digest;
    if !named.eq_ignore_ascii_case(digest) {
        return Outcome::OtherDigest(key.name.clone(), named, form);
    }
    let repository = claim.critical.identity.docker_reference;
    if !same_repository(&repository, image) {
        return Outcome::OtherRepository(key.name.clone(), repository, form);
    }
    Outcome::Verified(key.name.clone(), form)
}

fn check_bundle(bytes: &[u8], keys: &[TrustedKey], image: &ImageRef, digest: &str) -> Outcome {
    let form = SignatureForm::Bundle;
    let bundle: Bundle = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(e) => return Outcome::Rejected(format!("{form} is not a Sigstore bundle ({e})")),
    };
    if !bundle
        .media_type
        .starts_with("application/vnd.dev.sigstore.bundle")
    {
        return Outcome::Rejected(format!(
            "{form} has the media type {:?}, not a Sigstore bundle's",
            bundle.media_type
        ));
    }
    let Some(envelope) = bundle.dsse_envelope else {
        return Outcome::Rejected(format!(
            "{form} holds no DSSE envelope, as `cosign sign` writes"
        ));
    };
    let Some(payload) = base64(&envelope.payload) else {
        return Outcome::Rejected(format!("{form} has a payload that is not base64"));
    };
    let message = pae(&envelope.payload_type, &payload);
    let key = envelope
        .signatures
        .iter()
        .take(MAX_SIGNATURES)
        .filter_map(|s| base64(&s.sig))
        .find_map(|sig| signer(keys, &message, &sig));
    let Some(key) = key else {
        return Outcome::Rejected(format!("{form} holds a signature by no trusted key"));
    };
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Outcome::Rejected(format!(
            "{form} signed by {:?} holds a payload of type {:?}, not an in-toto statement",
            key.name, envelope.payload_type
        ));
    }
    let statement: Statement = match serde_json::from_slice(&payload) {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Rejected(format!(
                "{form} signed by {:?} holds no in-toto statement ({e})",
                key.name
            ));
        }
    };
    if !IN_TOTO_STATEMENT_TYPES.contains(&statement.kind.as_str())
        || statement.predicate_type != COSIGN_SIGN_PREDICATE
    {
        return Outcome::Rejected(format!(
            "{form} signed by {:?} is a statement of type {:?}, not a cosign signature ({COSIGN_SIGN_PREDICATE})",
            key.name, statement.predicate_type
        ));
    }
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    let Some(subject) = statement.subject.iter().find(|s| {
        s.digest
            .get(algorithm)
            .is_some_and(|h| h.eq_ignore_ascii_case(hex))
    }) else {
        let named = statement
            .subject
            .first()
            .and_then(|s| s.digest.iter().next())
            .map(|(a, h)| format!("{a}:{h}"))
            .unwrap_or_else(|| "no digest".to_owned());
        return Outcome::OtherDigest(key.name.clone(), named, form);
    };
    // cosign 3 names no repository in the statement; when a subject does name one, it must be this one.
    if let Some(name) = subject.name.as_deref().filter(|n| !n.is_empty())
        && !same_repository(name, image)
    {
        return Outcome::OtherRepository(key.name.clone(), name.to_owned(), form);
    }
    Outcome::Verified(key.name.clone(), form)
}

/// Decides what the `candidates` found for `digest` in `image`'s repository say under `keys`. One
/// signature that verifies suffices; otherwise the most telling reason wins: a trusted signature for
/// another digest, then for another repository, then signatures by no trusted key, then none at all.
pub fn verify(
    candidates: &[Candidate],
    keys: &[TrustedKey],
    image: &ImageRef,
    digest: &str,
) -> SignatureCheck {
    let mut other_digest = None;
    let mut other_repository = None;
    let mut rejected: Option<String> = None;
    for candidate in candidates {
        let outcome = match candidate {
            Candidate::SimpleSigning { payload, signature } => {
                check_simple_signing(payload, signature, keys, image, digest)
            }
            Candidate::Bundle(bytes) => check_bundle(bytes, keys, image, digest),
            Candidate::Malformed { why, .. } => Outcome::Rejected(why.clone()),
        };
        match outcome {
            Outcome::Verified(key, form) => {
                return SignatureCheck::Verified {
                    key,
                    form,
                    digest: digest.to_owned(),
                };
            }
            Outcome::OtherDigest(key, named, form) => {
                other_digest.get_or_insert((key, named, form));
            }
            Outcome::OtherRepository(key, named, form) => {
                other_repository.get_or_insert((key, named, form));
            }
            Outcome::Rejected(why) => {
                rejected.get_or_insert(why);
            }
        }
    }
    let digest = digest.to_owned();
    if let Some((key, named, form)) = other_digest {
        SignatureCheck::OtherDigest {
            digest,
            named,
            key,
            form,
        }
    } else if let Some((key, named, form)) = other_repository {
        SignatureCheck::OtherRepository {
            digest,
            named,
            key,
            form,
        }
    } else if let Some(why) = rejected {
        SignatureCheck::Untrusted { digest, why }
    } else {
        SignatureCheck::Unsigned { digest }
    }
}

/// A fingerprint of a set of keys, so that a cached verdict is never read under other keys.
pub fn keyset_id(keys: &[TrustedKey]) -> String {
    let mut ids: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
    ids.sort_unstable();
    ids.join(",")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;

    /// A fixed signing key for tests, and its public key as PEM.
    pub fn test_key(seed: u8) -> (SigningKey, String) {
        let signing = SigningKey::from_slice(&[seed; 32]).expect("a valid scalar");
        let pem = signing
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        (signing, pem)
    }

    fn sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = key.sign(message);
        sig.to_der().as_bytes().to_vec()
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn payload(repo: &str, digest: &str) -> Vec<u8> {
        format!(r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#).into_bytes()
    }

    fn simple(key: &SigningKey, repo: &str, digest: &str) -> Candidate {
        let payload = payload(repo, digest);
        Candidate::SimpleSigning {
            signature: sign(key, &payload),
            payload,
        }
    }

    fn bundle(key: &SigningKey, statement: &str, payload_type: &str) -> Candidate {
        let b64 = base64::engine::general_purpose::STANDARD;
        let sig = sign(key, &pae(payload_type, statement.as_bytes()));
        Candidate::Bundle(
            serde_json::json!({
                "mediaType": BUNDLE_ARTIFACT_TYPE,
                "verificationMaterial": {"publicKey": {"hint": "x"}},
                "dsseEnvelope": {"payload": b64.encode(statement), "payloadType": payload_type,
                                 "signatures": [{"sig": b64.encode(sig), "keyid": ""}]}
            })
            .to_string()
            .into_bytes(),
        )
    }

    fn statement(digest: &str) -> String {
        let hex = digest.trim_start_matches("sha256:");
        format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{hex}"}}}}],"predicateType":"{COSIGN_SIGN_PREDICATE}","predicate":{{}}}}"#
        )
    }

    fn keys() -> Vec<TrustedKey> {
        vec![
            TrustedKey::from_pem("release", &test_key(1).1).unwrap(),
            TrustedKey::from_pem("backup", &test_key(2).1).unwrap(),
        ]
    }

    fn image() -> ImageRef {
        ImageRef::parse("registry.example/team/app:v1").unwrap()
    }

    fn kind(check: &SignatureCheck) -> String {
        match check {
            SignatureCheck::Verified { key, form, .. } => format!("verified {key} {form:?}"),
            SignatureCheck::Unsigned { .. } => "unsigned".into(),
            SignatureCheck::Untrusted { why, .. } => format!("untrusted: {why}"),
            SignatureCheck::OtherDigest { named, .. } => format!("other digest {named}"),
            SignatureCheck::OtherRepository { named, .. } => format!("other repository {named}"),
            SignatureCheck::Unverified(why) => format!("unverified {why}"),
        }
    }

    #[test]
    fn simple_signing_payloads() {
        let (release, _) = test_key(1);
        let (backup, _) = test_key(2);
        let (stranger, _) = test_key(3);
        let repo = "registry.example/team/app";
        let cases: Vec<(&str, Vec<Candidate>, &str)> = vec![
            ("none", vec![], "unsigned"),
            (
                "trusted",
                vec![simple(&release, repo, D1)],
                "verified release Tag",
            ),
            (
                "second key",
                vec![simple(&backup, repo, D1)],
                "verified backup Tag",
            ),
            (
                "untrusted",
                vec![simple(&stranger, repo, D1)],
                "untrusted: the .sig tag holds a signature by no trusted key",
            ),
            (
                "one good among bad",
                vec![simple(&stranger, repo, D1), simple(&release, repo, D1)],
                "verified release Tag",
            ),
            (
                "other digest",
                vec![simple(&release, repo, D2)],
                "other digest sha256:2222",
            ),
            (
                "other repository",
                vec![simple(&release, "registry.example/team/other", D1)],
                "other repository registry.example/team/other",
            ),
            (
                "other registry",
                vec![simple(&release, "registry.evil/team/app", D1)],
                "other repository registry.evil/team/app",
            ),
            (
                "digest case",
                vec![simple(
                    &release,
                    repo,
                    &D1.to_uppercase().replace("SHA256", "sha256"),
                )],
                "verified release Tag",
            ),
        ];
        for (name, candidates, want) in cases {
            let got = kind(&verify(&candidates, &keys(), &image(), D1));
            assert!(got.starts_with(want), "{name}: {got}");
        }
    }

    #[test]
    fn docker_hub_references_are_normalized() {
        let (release, _) = test_key(1);
        let nginx = ImageRef::parse("nginx:1.27").unwrap();
        let c = [simple(&release, "index.docker.io/library/nginx", D1)];
        assert!(matches!(
            verify(&c, &keys(), &nginx, D1),
            SignatureCheck::Verified { .. }
        ));
    }

    #[test]
    fn tampered_and_malformed_simple_signing() {
        let (release, _) = test_key(1);
        let repo = "registry.example/team/app";
        let mut tampered = payload(repo, D1);
        let signature = sign(&release, &tampered);
        tampered[10] ^= 1;
        let duplicate = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{D2}","docker-manifest-digest":"{D1}"}},"type":"cosign container image signature"}}}}"#
        );
        let wrong_type = String::from_utf8(payload(repo, D1))
            .unwrap()
            .replace("cosign container image signature", "attestation");
        let signed = |p: &[u8]| Candidate::SimpleSigning {
            payload: p.to_vec(),
            signature: sign(&release, p),
        };
        let cases: Vec<(&str, Candidate, &str)> = vec![
            (
                "tampered",
                Candidate::SimpleSigning {
                    payload: tampered,
                    signature,
                },
                "by no trusted key",
            ),
            (
                "not DER",
                Candidate::SimpleSigning {
                    payload: payload(repo, D1),
                    signature: vec![0; 64],
                },
                "by no trusted key",
            ),
            (
                "duplicate field",
                signed(duplicate.as_bytes()),
                "duplicate field",
            ),
            (
                "wrong type",
                signed(wrong_type.as_bytes()),
                "not a cosign image signature",
            ),
            ("not json", signed(b"hello"), "not a simple-signing payload"),
        ];
        for (name, candidate, want) in cases {
            let got = kind(&verify(&[candidate], &keys(), &image(), D1));
            assert!(
                got.starts_with("untrusted") && got.contains(want),
                "{name}: {got}"
            );
        }
    }

    #[test]
    fn bundles() {
        let (release, _) = test_key(1);
        let (stranger, _) = test_key(3);
        let named = |name: &str| {
            statement(D1).replace(
                r#""subject":[{"#,
                &format!(r#""subject":[{{"name":"{name}","#),
            )
        };
        let attestation =
            statement(D1).replace(COSIGN_SIGN_PREDICATE, "https://slsa.dev/provenance/v1");
        let cases: Vec<(&str, Candidate, &str)> = vec![
            ("trusted", bundle(&release, &statement(D1), IN_TOTO_PAYLOAD_TYPE), "verified release Bundle"),
            ("stranger", bundle(&stranger, &statement(D1), IN_TOTO_PAYLOAD_TYPE), "untrusted: a bundle referrer holds a signature by no trusted key"),
            ("other digest", bundle(&release, &statement(D2), IN_TOTO_PAYLOAD_TYPE), "other digest sha256:2222"),
            ("named here", bundle(&release, &named("registry.example/team/app"), IN_TOTO_PAYLOAD_TYPE), "verified release Bundle"),
            ("named elsewhere", bundle(&release, &named("registry.example/x"), IN_TOTO_PAYLOAD_TYPE), "other repository registry.example/x"),
            ("attestation", bundle(&release, &attestation, IN_TOTO_PAYLOAD_TYPE), "untrusted: a bundle referrer signed by \"release\" is a statement of type"),
            ("payload type", bundle(&release, &statement(D1), "text/plain"), "untrusted: a bundle referrer signed by \"release\" holds a payload of type"),
            ("not json", Candidate::Bundle(b"{".to_vec()), "untrusted: a bundle referrer is not a Sigstore bundle"),
            ("message signature", Candidate::Bundle(br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{}}"#.to_vec()), "untrusted: a bundle referrer holds no DSSE envelope"),
        ];
        for (name, candidate, want) in cases {
            let got = kind(&verify(&[candidate], &keys(), &image(), D1));
            assert!(got.starts_with(want), "{name}: {got}");
        }
    }

    #[test]
    fn the_most_telling_reason_wins() {
        let (release, _) = test_key(1);
        let (stranger, _) = test_key(3);
        let repo = "registry.example/team/app";
        let c = [
            simple(&stranger, repo, D1),
            simple(&release, "registry.example/x", D1),
            simple(&release, repo, D2),
        ];
        assert!(kind(&verify(&c, &keys(), &image(), D1)).starts_with("other digest"));
        assert!(kind(&verify(&c[..2], &keys(), &image(), D1)).starts_with("other repository"));
    }

    #[test]
    fn keys_parse_only_as_p256_pem() {
        assert!(TrustedKey::from_pem("k", &test_key(1).1).is_ok());
        let e = TrustedKey::from_pem("k", "hello").unwrap_err();
        assert!(e.contains("PEM public key"), "{e}");
        // An Ed25519 key, as `openssl genpkey -algorithm ed25519 | openssl pkey -pubout` writes it.
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let e = TrustedKey::from_pem("k", ed).unwrap_err();
        assert!(e.contains("only P-256"), "{e}");
        let a = TrustedKey::from_pem("a", &test_key(1).1).unwrap();
        assert_eq!(a.fingerprint.len(), 16);
        assert_ne!(
            a.fingerprint,
            TrustedKey::from_pem("b", &test_key(2).1)
                .unwrap()
                .fingerprint
        );
    }

    /// What the real cosign CLI wrote: see `tests/data/cosign/README.md`.
    #[test]
    fn real_cosign_output_verifies_in_both_forms() {
        let data = |name: &str| {
            std::fs::read(format!(
                "{}/tests/data/cosign/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let pem = String::from_utf8(data("cosign.pub")).unwrap();
        let keys = vec![TrustedKey::from_pem("cosign", &pem).unwrap()];
        let image = ImageRef::parse("127.0.0.1:5077/team/app:v1").unwrap();
        let digest = "sha256:5fa486b20327d82898f2c6701287a5b16cdec4e9ff5f268793ec8cb8b2f72e60";
        let manifest: serde_json::Value =
            serde_json::from_slice(&data("sig-tag-manifest.json")).unwrap();
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], SIMPLE_SIGNING_MEDIA_TYPE);
        let signature =
            base64(layer["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap()).unwrap();
        let tag = Candidate::SimpleSigning {
            payload: data("sig-tag-payload.json"),
            signature,
        };
        let bundle = Candidate::Bundle(data("bundle.json"));
        for (candidate, form) in [(tag, SignatureForm::Tag), (bundle, SignatureForm::Bundle)] {
            let candidates = [candidate];
            assert_eq!(
                verify(&candidates, &keys, &image, digest),
                SignatureCheck::Verified {
                    key: "cosign".into(),
                    form,
                    digest: digest.into()
                }
            );
            let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
            assert!(matches!(
                verify(&candidates, &keys, &image, other),
                SignatureCheck::OtherDigest { .. }
            ));
            assert!(matches!(
                verify(&candidates, &self::keys(), &image, digest),
                SignatureCheck::Untrusted { .. }
            ));
        }
        // The `.sig` payload names its repository; the bundle's statement names none.
        let elsewhere = ImageRef::parse("127.0.0.1:5077/team/copy:v1").unwrap();
        let tag = Candidate::SimpleSigning {
            payload: data("sig-tag-payload.json"),
            signature: base64(
                manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION]
                    .as_str()
                    .unwrap(),
            )
            .unwrap(),
        };
        assert!(matches!(
            verify(&[tag], &keys, &elsewhere, digest),
            SignatureCheck::OtherRepository { .. }
        ));
    }

    #[test]
    fn pae_matches_the_dsse_spec() {
        // The example of the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
