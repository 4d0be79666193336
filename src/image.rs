//! Container image references, parsed and normalized exactly as Go's `distribution/reference` does, and registry patterns.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// Maximum length of the repository path (upstream `RepositoryNameTotalLengthMax`).
///
/// Upstream applies it to the path (the name without its domain), not to the whole name.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// The registry that familiar names such as `nginx` normalize to.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// The tag a runtime pulls when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";

const MALFORMED_NAME: &str = "malformed repository name";
const MALFORMED_TAG: &str = "malformed tag";
const MALFORMED_DIGEST: &str = "malformed digest";
const MALFORMED_HOST: &str = "malformed registry host";

/// Why an image reference was rejected. Each variant mirrors an upstream error value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ImageRefError {
    /// Upstream `ErrReferenceInvalidFormat`; the payload says which part is malformed.
    #[error("invalid reference format: {0}")]
    InvalidFormat(&'static str),
    /// Upstream `ErrNameContainsUppercase`.
    #[error("invalid reference format: repository name must be lowercase")]
    NameContainsUppercase,
    /// Upstream `ErrNameEmpty`.
    #[error("invalid reference format: repository name must have at least one component")]
    NameEmpty,
    /// Upstream `ErrNameTooLong`.
    #[error("invalid reference format: repository name must not be more than 255 characters")]
    NameTooLong,
    /// Upstream `ErrNameNotCanonical` (only from [`reference::parse_named`]).
    #[error("invalid reference format: repository name must be canonical")]
    NameNotCanonical,
    /// Upstream `ParseNormalizedNamed` refuses a bare 64-hex string: it is ambiguous with an image ID.
    #[error("invalid repository name: cannot specify 64-byte hexadecimal strings")]
    AmbiguousIdentifier,
    /// Upstream `ErrTagInvalidFormat` (only from [`reference::Reference::with_tag`]).
    #[error("invalid tag format")]
    TagInvalidFormat,
    /// go-digest `ErrDigestUnsupported`: the digest algorithm is not registered.
    #[error("invalid digest: unsupported digest algorithm")]
    DigestUnsupported,
    /// go-digest `ErrDigestInvalidLength`: wrong number of hex digits for the algorithm.
    #[error("invalid digest: invalid checksum digest length")]
    DigestInvalidLength,
    /// go-digest `ErrDigestInvalidFormat` (and upstream `ErrDigestInvalidFormat`).
    #[error("invalid digest: invalid checksum digest format")]
    DigestInvalidFormat,
}

// ---------------------------------------------------------------------------------------------
// Grammar (hand-written equivalent of upstream regexp.go)
// ---------------------------------------------------------------------------------------------

#[inline]
fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[inline]
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &[u8]) -> bool {
    let n = c.len();
    let mut i = 0;
    loop {
        let start = i;
        while i < n && is_lower_alnum(c[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == n {
            return true;
        }
        match c[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < n && c[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < n && c[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `path-component ('/' path-component)*`
fn is_remote_name(p: &[u8]) -> bool {
    !p.is_empty() && p.split(|&b| b == b'/').all(is_path_component)
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn is_domain_name_component(c: &[u8]) -> bool {
    match c {
        [] => false,
        [only] => only.is_ascii_alphanumeric(),
        [first, mid @ .., last] => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && mid.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        }
    }
}

/// `(domain-name | '[' [a-fA-F0-9:]+ ']') (':' [0-9]+)?`
fn is_domain_and_port(d: &[u8]) -> bool {
    let (host_ok, rest) = if d.first() == Some(&b'[') {
        let Some(close) = d.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &d[1..close];
        (
            !inner.is_empty() && inner.iter().all(|&b| b.is_ascii_hexdigit() || b == b':'),
            &d[close + 1..],
        )
    } else {
        let end = d.iter().position(|&b| b == b':').unwrap_or(d.len());
        (
            d[..end].split(|&b| b == b'.').all(is_domain_name_component),
            &d[end..],
        )
    };
    host_ok
        && match rest {
            [] => true,
            [b':', port @ ..] => !port.is_empty() && port.iter().all(u8::is_ascii_digit),
            _ => false,
        }
}

/// `[\w][\w.-]{0,127}`
fn is_tag(t: &[u8]) -> bool {
    match t {
        [first, rest @ ..] => {
            t.len() <= 128
                && is_word(*first)
                && rest.iter().all(|&b| is_word(b) || b == b'.' || b == b'-')
        }
        [] => false,
    }
}

/// `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
fn is_digest_grammar(d: &[u8]) -> bool {
    let mut i = 0;
    loop {
        if i >= d.len() || !d[i].is_ascii_alphabetic() {
            return false;
        }
        i += 1;
        while i < d.len() && d[i].is_ascii_alphanumeric() {
            i += 1;
        }
        match d.get(i) {
            Some(b'-' | b'_' | b'+' | b'.') => i += 1,
            Some(b':') => break,
            _ => return false,
        }
    }
    let hex = &d[i + 1..];
    hex.len() >= 32 && hex.iter().all(u8::is_ascii_hexdigit)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Byte offsets of the parts of a reference string `[domain '/'] path [':' tag] ['@' digest]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Spans {
    /// End of the domain; 0 when there is no domain (a domain is never empty).
    domain_end: usize,
    /// End of the name (domain and path).
    name_end: usize,
    /// End of the tag; equals `name_end` when there is no tag. A digest follows after `'@'`.
    tag_end: usize,
}

impl Spans {
    fn path_start(&self) -> usize {
        if self.domain_end == 0 {
            0
        } else {
            self.domain_end + 1
        }
    }
}

/// Matches `remote-name [':' tag] ['@' digest]` from `start` to the end of `b`.
fn match_remote(b: &[u8], start: usize) -> Result<(usize, usize), &'static str> {
    let len = b.len();
    let name_end = b[start..]
        .iter()
        .position(|&c| c == b':' || c == b'@')
        .map_or(len, |p| start + p);
    if !is_remote_name(&b[start..name_end]) {
        return Err(MALFORMED_NAME);
    }
    let mut tag_end = name_end;
    if name_end < len && b[name_end] == b':' {
        tag_end = b[name_end + 1..]
            .iter()
            .position(|&c| c == b'@')
            .map_or(len, |p| name_end + 1 + p);
        if !is_tag(&b[name_end + 1..tag_end]) {
            return Err(MALFORMED_TAG);
        }
    }
    // Here `b[tag_end]`, if it exists, is '@'.
    if tag_end < len && !is_digest_grammar(&b[tag_end + 1..]) {
        return Err(MALFORMED_DIGEST);
    }
    Ok((name_end, tag_end))
}

/// The grammar of upstream `ReferenceRegexp`, with its leftmost-first choice: the first
/// component is the domain whenever it is a valid `domainAndPort` followed by `/`.
fn match_reference(b: &[u8]) -> Result<Spans, &'static str> {
    if let Some(slash) = b.iter().position(|&c| c == b'/') {
        let first = &b[..slash];
        if is_domain_and_port(first) {
            // If the rest fails here, it fails without a domain too.
            let (name_end, tag_end) = match_remote(b, slash + 1)?;
            return Ok(Spans {
                domain_end: slash,
                name_end,
                tag_end,
            });
        }
        return match match_remote(b, 0) {
            Ok((name_end, tag_end)) => Ok(Spans {
                domain_end: 0,
                name_end,
                tag_end,
            }),
            Err(_) if first.iter().any(|c| matches!(c, b'.' | b':' | b'[' | b']')) => {
                Err(MALFORMED_HOST)
            }
            Err(e) => Err(e),
        };
    }
    let (name_end, tag_end) = match_remote(b, 0)?;
    Ok(Spans {
        domain_end: 0,
        name_end,
        tag_end,
    })
}

/// The grammar of upstream `anchoredNameRegexp`: `[domainAndPort '/'] remote-name`.
fn match_name(b: &[u8]) -> Option<Spans> {
    let len = b.len();
    if let Some(slash) = b.iter().position(|&c| c == b'/')
        && is_domain_and_port(&b[..slash])
    {
        return is_remote_name(&b[slash + 1..]).then_some(Spans {
            domain_end: slash,
            name_end: len,
            tag_end: len,
        });
    }
    is_remote_name(b).then_some(Spans {
        domain_end: 0,
        name_end: len,
        tag_end: len,
    })
}

/// Go's `strings.ToLower(s)`, when the result can possibly match the (ASCII) grammar.
/// Only U+212A KELVIN SIGN and U+0130 (capital I with dot) lower-case to ASCII in Go.
fn go_lowercase_ascii(s: &str) -> Option<String> {
    s.chars()
        .map(|c| match c {
            c if c.is_ascii() => Some(c.to_ascii_lowercase()),
            '\u{212A}' => Some('k'),
            '\u{0130}' => Some('i'),
            _ => None,
        })
        .collect()
}

/// Go's `strings.ToLower(s) != s`.
fn changes_when_lowercased(s: &str) -> bool {
    if s.is_ascii() {
        return s.bytes().any(|b| b.is_ascii_uppercase());
    }
    s.chars().any(|c| {
        let mut lower = c.to_lowercase();
        !(lower.next() == Some(c) && lower.next().is_none())
    })
}

/// Upstream `splitDockerDomain`: returns (domain, remainder, whether to prefix `library/`).
fn split_docker_domain(s: &str) -> (&str, &str, bool) {
    let Some((maybe_domain, maybe_remote)) = s.split_once('/') else {
        return (DEFAULT_DOMAIN, s, true);
    };
    let (domain, remote) = if maybe_domain == "localhost" {
        (maybe_domain, maybe_remote)
    } else if maybe_domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, maybe_remote)
    } else if maybe_domain.contains(['.', ':']) || changes_when_lowercased(maybe_domain) {
        (maybe_domain, maybe_remote)
    } else {
        (DEFAULT_DOMAIN, s)
    };
    let library = domain == DEFAULT_DOMAIN && !remote.contains('/');
    (domain, remote, library)
}

/// Splits a domain into host and port (`[::1]:5000` -> `[::1]`, `5000`).
fn split_host_port(domain: &str) -> (&str, Option<&str>) {
    // Byte searches: a domain is a few bytes long, too short for `str::find` to pay off.
    let find = |s: &str, byte: u8| s.bytes().position(|b| b == byte);
    let from = if domain.starts_with('[') {
        find(domain, b']').unwrap_or(0)
    } else {
        0
    };
    match find(&domain[from..], b':') {
        Some(i) => (&domain[..from + i], Some(&domain[from + i + 1..])),
        None => (domain, None),
    }
}

/// A port compared by number: leading zeros do not matter.
fn canonical_port(p: &str) -> &str {
    let t = p.trim_start_matches('0');
    if t.is_empty() && !p.is_empty() {
        "0"
    } else {
        t
    }
}

pub mod reference {
    //! The upstream `distribution/reference` API (`Parse`, `ParseNamed`, `ParseAnyReference`,
    //! `ParseDockerRef`, `WithName`, ...) on the same hand-written grammar as [`super::ImageRef`],
    //! so that upstream's test vectors can be run against it.

    use super::*;

    /// A parser with a given set of registered digest algorithms.
    ///
    /// Upstream validates digests with go-digest, whose algorithms are "available" only when the
    /// Go binary links the matching `crypto` package. `sha256` always is. `sha384` and `sha512`
    /// are linked by every binary that uses `crypto/tls` (kubelet, containerd, CRI-O), so
    /// [`Parser::STANDARD`] registers all three; [`Parser::SHA256_ONLY`] reproduces upstream's
    /// own test binary, where `sha512` digests are `ErrDigestUnsupported`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Parser {
        sha384: bool,
        sha512: bool,
    }

    impl Default for Parser {
        fn default() -> Self {
            Self::STANDARD
        }
    }

    impl Parser {
        /// `sha256`, `sha384` and `sha512` registered: what a container runtime accepts.
        pub const STANDARD: Parser = Parser {
            sha384: true,
            sha512: true,
        };

        /// Only `sha256` registered: what upstream's test suite runs with.
        pub const SHA256_ONLY: Parser = Parser {
            sha384: false,
            sha512: false,
        };

        /// Number of hex digits of a registered algorithm's digest.
        fn hex_len(&self, algorithm: &str) -> Option<usize> {
            match algorithm {
                "sha256" => Some(64),
                "sha384" if self.sha384 => Some(96),
                "sha512" if self.sha512 => Some(128),
                _ => None,
            }
        }

        /// go-digest `Digest.Validate`, for a digest that already matched the reference grammar.
        fn validate_digest(&self, d: &str) -> Result<(), ImageRefError> {
            let Some((algorithm, encoded)) = d.split_once(':') else {
                return Err(ImageRefError::DigestInvalidFormat);
            };
            match self.hex_len(algorithm) {
                Some(n) if encoded.len() != n => Err(ImageRefError::DigestInvalidLength),
                Some(_) if !is_lower_hex(encoded) => Err(ImageRefError::DigestInvalidFormat),
                Some(_) => Ok(()),
                // go-digest's DigestRegexp wants a lower-case algorithm.
                None if algorithm.bytes().any(|b| b.is_ascii_uppercase()) => {
                    Err(ImageRefError::DigestInvalidFormat)
                }
                None => Err(ImageRefError::DigestUnsupported),
            }
        }

        /// go-digest `Parse(s)` succeeds.
        fn is_valid_digest(&self, s: &str) -> bool {
            match s.split_once(':') {
                Some((algorithm, encoded)) if !algorithm.is_empty() && !encoded.is_empty() => self
                    .hex_len(algorithm)
                    .is_some_and(|n| encoded.len() == n && is_lower_hex(encoded)),
                _ => false,
            }
        }

        fn parse_spans(&self, s: &str) -> Result<Spans, ImageRefError> {
            if s.is_empty() {
                return Err(ImageRefError::NameEmpty);
            }
            let spans = match match_reference(s.as_bytes()) {
                Ok(spans) => spans,
                Err(reason) => {
                    if let Some(lower) = go_lowercase_ascii(s)
                        && lower != s
                        && match_reference(lower.as_bytes()).is_ok()
                    {
                        return Err(ImageRefError::NameContainsUppercase);
                    }
                    return Err(ImageRefError::InvalidFormat(reason));
                }
            };
            if spans.name_end - spans.path_start() > NAME_TOTAL_LENGTH_MAX {
                return Err(ImageRefError::NameTooLong);
            }
            if spans.tag_end < s.len() {
                self.validate_digest(&s[spans.tag_end + 1..])?;
            }
            Ok(spans)
        }

        /// Upstream `Parse`: strict, no normalization (`test.com:5000` is repository `test.com`
        /// with tag `5000`).
        pub fn parse(&self, s: &str) -> Result<Reference, ImageRefError> {
            let spans = self.parse_spans(s)?;
            Ok(Reference::new(s.to_owned(), spans))
        }

        /// Upstream `ParseNormalizedNamed`: adds `docker.io/` and `library/`, maps
        /// `index.docker.io` to `docker.io`.
        ///
        /// Like upstream, the result can lack a domain when the first component has a `.` or `:`
        /// but is not a valid host (`foo_bar.com/x`); [`ImageRef::parse`] rejects that case.
        pub fn parse_normalized_named(&self, s: &str) -> Result<Reference, ImageRefError> {
            if is_identifier(s) {
                return Err(ImageRefError::AmbiguousIdentifier);
            }
            let (domain, remainder, library) = split_docker_domain(s);
            let remote = remainder.split_once(':').map_or(remainder, |(r, _)| r);
            if changes_when_lowercased(remote) {
                return Err(ImageRefError::NameContainsUppercase);
            }
            let prefix = if library { OFFICIAL_REPO_PREFIX } else { "" };
            let mut buf = String::with_capacity(domain.len() + 1 + prefix.len() + remainder.len());
            buf.push_str(domain);
            buf.push('/');
            buf.push_str(prefix);
            buf.push_str(remainder);
            let spans = self.parse_spans(&buf)?;
            Ok(Reference::new(buf, spans))
        }

        /// Upstream `ParseNamed`: like [`Parser::parse_normalized_named`], but the input must
        /// already be in canonical form.
        pub fn parse_named(&self, s: &str) -> Result<Reference, ImageRefError> {
            let named = self.parse_normalized_named(s)?;
            if named.as_str() != s {
                return Err(ImageRefError::NameNotCanonical);
            }
            Ok(named)
        }

        /// Upstream `ParseDockerRef`: normalized; adds `:latest` to a bare name and drops the tag
        /// when a digest is present.
        pub fn parse_docker_ref(&self, s: &str) -> Result<Reference, ImageRefError> {
            let named = self.parse_normalized_named(s)?;
            Ok(match (named.tag(), named.digest()) {
                (Some(_), Some(digest)) => {
                    let name = named.name();
                    let mut buf = String::with_capacity(name.len() + 1 + digest.len());
                    buf.push_str(name);
                    buf.push('@');
                    buf.push_str(digest);
                    Reference::new(
                        buf,
                        Spans {
                            tag_end: named.spans.name_end,
                            ..named.spans
                        },
                    )
                }
                (None, None) => named.with_tag(DEFAULT_TAG)?,
                _ => named,
            })
        }

        /// Upstream `ParseAnyReference`: a bare 64-hex string or a valid digest is a digest-only
        /// reference; anything else is parsed with [`Parser::parse_normalized_named`].
        pub fn parse_any_reference(&self, s: &str) -> Result<AnyReference, ImageRefError> {
            if is_identifier(s) {
                return Ok(AnyReference::Digest(format!("sha256:{s}")));
            }
            if self.is_valid_digest(s) {
                return Ok(AnyReference::Digest(s.to_owned()));
            }
            self.parse_normalized_named(s).map(AnyReference::Named)
        }
    }

    /// Upstream `Parse`, with [`Parser::STANDARD`].
    pub fn parse(s: &str) -> Result<Reference, ImageRefError> {
        Parser::STANDARD.parse(s)
    }

    /// Upstream `ParseNormalizedNamed`, with [`Parser::STANDARD`].
    pub fn parse_normalized_named(s: &str) -> Result<Reference, ImageRefError> {
        Parser::STANDARD.parse_normalized_named(s)
    }

    /// Upstream `ParseNamed`, with [`Parser::STANDARD`].
    pub fn parse_named(s: &str) -> Result<Reference, ImageRefError> {
        Parser::STANDARD.parse_named(s)
    }

    /// Upstream `ParseDockerRef`, with [`Parser::STANDARD`].
    pub fn parse_docker_ref(s: &str) -> Result<Reference, ImageRefError> {
        Parser::STANDARD.parse_docker_ref(s)
    }

    /// Upstream `ParseAnyReference`, with [`Parser::STANDARD`].
    pub fn parse_any_reference(s: &str) -> Result<AnyReference, ImageRefError> {
        Parser::STANDARD.parse_any_reference(s)
    }

    /// Upstream `WithName`: a bare repository name, without tag or digest, not normalized.
    pub fn with_name(name: &str) -> Result<Reference, ImageRefError> {
        let spans =
            match_name(name.as_bytes()).ok_or(ImageRefError::InvalidFormat(MALFORMED_NAME))?;
        if spans.name_end - spans.path_start() > NAME_TOTAL_LENGTH_MAX {
            return Err(ImageRefError::NameTooLong);
        }
        Ok(Reference::new(name.to_owned(), spans))
    }

    /// Whether `s` is a 64-character lower-case hex image ID (upstream `anchoredIdentifierRegexp`).
    pub fn is_identifier(s: &str) -> bool {
        s.len() == 64 && is_lower_hex(s)
    }

    /// Whether `s` is a valid registry host with optional port (upstream `DomainRegexp`, anchored).
    pub fn is_valid_domain(s: &str) -> bool {
        is_domain_and_port(s.as_bytes())
    }

    /// A named reference: `[domain '/'] path [':' tag] ['@' digest]`, stored as one string.
    #[derive(Clone, PartialEq, Eq, Hash)]
    pub struct Reference {
        buf: String,
        spans: Spans,
    }

    impl Reference {
        fn new(buf: String, spans: Spans) -> Self {
            Reference { buf, spans }
        }

        /// Upstream `Name()`: domain and path, `"domain/path"` (just the path without a domain).
        pub fn name(&self) -> &str {
            &self.buf[..self.spans.name_end]
        }

        /// Upstream `Domain()`; empty when the reference has no domain.
        pub fn domain(&self) -> &str {
            &self.buf[..self.spans.domain_end]
        }

        /// Upstream `Path()`: the repository path without the domain.
        pub fn path(&self) -> &str {
            &self.buf[self.spans.path_start()..self.spans.name_end]
        }

        /// The tag, if any.
        pub fn tag(&self) -> Option<&str> {
            (self.spans.tag_end > self.spans.name_end)
                .then(|| &self.buf[self.spans.name_end + 1..self.spans.tag_end])
        }

        /// The digest (`algorithm:hex`), if any.
        pub fn digest(&self) -> Option<&str> {
            (self.spans.tag_end < self.buf.len()).then(|| &self.buf[self.spans.tag_end + 1..])
        }

        /// Upstream `String()`: name, then `:tag` and `@digest` when present.
        pub fn as_str(&self) -> &str {
            &self.buf
        }

        /// Upstream `IsNameOnly`: neither tag nor digest.
        pub fn is_name_only(&self) -> bool {
            self.spans.name_end == self.buf.len()
        }

        fn familiar_start(&self) -> usize {
            if self.domain() != DEFAULT_DOMAIN {
                return 0;
            }
            let start = self.spans.path_start();
            match self.path().strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => start + OFFICIAL_REPO_PREFIX.len(),
                _ => start,
            }
        }

        /// Upstream `FamiliarName`: the name without `docker.io/` and, for official images,
        /// without `library/`.
        pub fn familiar_name(&self) -> &str {
            &self.buf[self.familiar_start()..self.spans.name_end]
        }

        /// Upstream `FamiliarString`: the familiar name with tag and digest.
        pub fn familiar_string(&self) -> &str {
            &self.buf[self.familiar_start()..]
        }

        /// Upstream `WithTag`: replaces the tag, keeps any digest.
        pub fn with_tag(&self, tag: &str) -> Result<Reference, ImageRefError> {
            if !is_tag(tag.as_bytes()) {
                return Err(ImageRefError::TagInvalidFormat);
            }
            let name = self.name();
            let digest = self.digest();
            let mut buf = String::with_capacity(
                name.len() + 1 + tag.len() + digest.map_or(0, |d| d.len() + 1),
            );
            buf.push_str(name);
            buf.push(':');
            buf.push_str(tag);
            let tag_end = buf.len();
            if let Some(d) = digest {
                buf.push('@');
                buf.push_str(d);
            }
            Ok(Reference::new(
                buf,
                Spans {
                    tag_end,
                    ..self.spans
                },
            ))
        }

        /// Upstream `WithDigest`: replaces the digest, keeps any tag. Only the digest grammar is
        /// checked, as upstream does.
        pub fn with_digest(&self, digest: &str) -> Result<Reference, ImageRefError> {
            if !is_digest_grammar(digest.as_bytes()) {
                return Err(ImageRefError::DigestInvalidFormat);
            }
            let head = &self.buf[..self.spans.tag_end];
            let mut buf = String::with_capacity(head.len() + 1 + digest.len());
            buf.push_str(head);
            buf.push('@');
            buf.push_str(digest);
            Ok(Reference::new(buf, self.spans))
        }
    }

    impl fmt::Display for Reference {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.buf)
        }
    }

    impl fmt::Debug for Reference {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Reference")
                .field("domain", &self.domain())
                .field("path", &self.path())
                .field("tag", &self.tag())
                .field("digest", &self.digest())
                .finish()
        }
    }

    /// What upstream `ParseAnyReference` returns: a named reference or a bare digest.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum AnyReference {
        /// A named reference.
        Named(Reference),
        /// A digest-only reference, `algorithm:hex`.
        Digest(String),
    }

    impl AnyReference {
        /// Upstream `String()`.
        pub fn as_str(&self) -> &str {
            match self {
                AnyReference::Named(r) => r.as_str(),
                AnyReference::Digest(d) => d,
            }
        }

        /// Upstream `FamiliarString`.
        pub fn familiar_string(&self) -> &str {
            match self {
                AnyReference::Named(r) => r.familiar_string(),
                AnyReference::Digest(d) => d,
            }
        }
    }

    impl fmt::Display for AnyReference {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.as_str())
        }
    }
}

use reference::Reference;

// ---------------------------------------------------------------------------------------------
// ImageRef
// ---------------------------------------------------------------------------------------------

/// A normalized image reference: it always has a domain (`docker.io` by default).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageRef(Reference);

impl ImageRef {
    /// Parses with upstream `ParseNormalizedNamed` semantics: adds `docker.io` and `library/`;
    /// `index.docker.io` becomes `docker.io`.
    ///
    /// One deliberate difference: where upstream returns a reference without a domain (the first
    /// component has a `.` or `:` but is not a valid host, as in `foo_bar.com/app`), this is an
    /// error, because such a reference cannot be matched against registry patterns.
    pub fn parse(s: &str) -> Result<ImageRef, ImageRefError> {
        let r = reference::Parser::STANDARD.parse_normalized_named(s)?;
        if r.domain().is_empty() {
            return Err(ImageRefError::InvalidFormat(MALFORMED_HOST));
        }
        Ok(ImageRef(r))
    }

    /// The registry, with port if any (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// The registry host without port (`[::1]` keeps its brackets).
    pub fn host(&self) -> &str {
        split_host_port(self.domain()).0
    }

    /// The registry port, if the reference names one.
    pub fn port(&self) -> Option<&str> {
        split_host_port(self.domain()).1
    }

    /// The repository path (`library/nginx`).
    pub fn path(&self) -> &str {
        self.0.path()
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.0.tag()
    }

    /// The digest (`algorithm:hex`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.0.digest()
    }

    /// `"domain/path"`.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// The familiar name, as `docker` prints it (`nginx`, `bitnami/redis`, `ghcr.io/corp/app`).
    pub fn familiar_name(&self) -> &str {
        self.0.familiar_name()
    }

    /// The underlying upstream-style reference (its `as_str` has no implied `:latest`).
    pub fn as_reference(&self) -> &Reference {
        &self.0
    }
}

impl fmt::Display for ImageRef {
    /// The fully-qualified form: name, `:tag`, `@digest`; `:latest` when neither is given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())?;
        if self.0.is_name_only() {
            f.write_str(":")?;
            f.write_str(DEFAULT_TAG)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageRef")
            .field("domain", &self.domain())
            .field("path", &self.path())
            .field("tag", &self.tag())
            .field("digest", &self.digest())
            .finish()
    }
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Registry patterns
// ---------------------------------------------------------------------------------------------

/// What is wrong with a registry pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternErrorKind {
    /// The pattern is the empty string.
    Empty,
    /// The pattern has a non-ASCII character.
    NotAscii,
    /// The pattern has `@digest`.
    Digest,
    /// The pattern has `:tag`.
    Tag,
    /// The pattern has `**`.
    DoubleStar,
    /// `*` other than a leading `*.` label or a trailing `/*`.
    MisplacedWildcard,
    /// The domain part is not a valid `host[:port]`.
    InvalidDomain(String),
    /// The first component is not a domain (no `.`, no `:port`, not `localhost`).
    NotADomain(String),
    /// The repository path has upper-case characters.
    UppercasePath,
    /// The repository path is malformed.
    InvalidPath(String),
}

impl fmt::Display for PatternErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("registry pattern is empty"),
            Self::NotAscii => f.write_str(
                "registry pattern must be ASCII (write internationalized domains in punycode, 'xn--...')",
            ),
            Self::Digest => f.write_str(
                "a pattern cannot contain a digest; tags and digests never take part in matching",
            ),
            Self::Tag => f.write_str(
                "a pattern cannot contain a tag; tags and digests never take part in matching",
            ),
            Self::DoubleStar => f.write_str("'**' is not a pattern"),
            Self::MisplacedWildcard => {
                f.write_str("'*' is only allowed as a leading '*.' label or a trailing '/*'")
            }
            Self::InvalidDomain(d) => write!(f, "'{d}' is not a valid registry domain"),
            Self::NotADomain(d) => write!(
                f,
                "'{d}' is not a registry domain (a domain has a '.' or a ':port', or is 'localhost')"
            ),
            Self::UppercasePath => f.write_str("repository path must be lowercase"),
            Self::InvalidPath(p) => write!(f, "'{p}' is not a valid repository path"),
        }
    }
}

/// A registry pattern that failed to parse, with a suggested fix when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatternError {
    pattern: String,
    kind: PatternErrorKind,
    suggestion: Option<String>,
}

impl PatternError {
    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// What is wrong.
    pub fn kind(&self) -> &PatternErrorKind {
        &self.kind
    }

    /// A valid pattern that is probably what was meant.
    pub fn suggestion(&self) -> Option<&str> {
        self.suggestion.as_deref()
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.pattern, self.kind)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; use '{s}'")?;
        }
        Ok(())
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostPattern {
    /// This host only (lower-case).
    Exact(String),
    /// Any proper subdomain of this domain (lower-case).
    Subdomains(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PathPattern {
    /// Every repository of the registry.
    Any,
    /// This repository only.
    Exact(String),
    /// Any repository below this path, at any depth.
    Below(String),
}

/// An allow/deny-list entry: `DOMAIN`, `*.DOMAIN`, `DOMAIN/PATH` or `DOMAIN/PATH/*`.
///
/// Patterns match the normalized name of an [`ImageRef`]; tags and digests never take part.
/// The domain compares case-insensitively; a port must match exactly (by number). `*.DOMAIN`
/// matches proper subdomains only. `DOMAIN/PATH/*` matches repositories below `PATH` at any depth,
/// and matching stops at `/` boundaries. `index.docker.io` means `docker.io`, `docker.io/nginx`
/// means `docker.io/library/nginx`, and `DOMAIN/*` equals `DOMAIN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryPattern {
    raw: String,
    host: HostPattern,
    port: Option<String>,
    path: PathPattern,
}

impl RegistryPattern {
    /// Parses a pattern; the error says what is wrong and, when it can, what to write instead.
    pub fn parse(s: &str) -> Result<RegistryPattern, PatternError> {
        Self::parse_inner(s).map_err(|kind| {
            let suggestion = match kind {
                PatternErrorKind::Empty | PatternErrorKind::NotAscii => None,
                _ => Some(repair(s)).filter(|r| r != s && Self::parse_inner(r).is_ok()),
            };
            PatternError {
                pattern: s.to_owned(),
                kind,
                suggestion,
            }
        })
    }

    fn parse_inner(s: &str) -> Result<RegistryPattern, PatternErrorKind> {
        if s.is_empty() {
            return Err(PatternErrorKind::Empty);
        }
        if !s.is_ascii() {
            return Err(PatternErrorKind::NotAscii);
        }
        if s.contains('@') {
            return Err(PatternErrorKind::Digest);
        }
        if s.contains("**") {
            return Err(PatternErrorKind::DoubleStar);
        }
        let (domain_part, path_part) = match s.split_once('/') {
            Some((d, p)) => (d, Some(p)),
            None => (s, None),
        };
        match path_part {
            Some(p) if p.contains(':') => return Err(PatternErrorKind::Tag),
            None if looks_like_name_and_tag(domain_part) => return Err(PatternErrorKind::Tag),
            _ => {}
        }

        let (wildcard, host_port) = match domain_part.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, domain_part),
        };
        if host_port.contains('*') {
            return Err(PatternErrorKind::MisplacedWildcard);
        }
        let path = match path_part {
            None | Some("*") => None,
            Some(p) => Some(match p.strip_suffix("/*") {
                Some(below) => (below, true),
                None => (p, false),
            }),
        };
        if path.is_some_and(|(p, _)| p.contains('*')) {
            return Err(PatternErrorKind::MisplacedWildcard);
        }

        if !is_domain_and_port(host_port.as_bytes()) || (wildcard && host_port.starts_with('[')) {
            return Err(PatternErrorKind::InvalidDomain(domain_part.to_owned()));
        }
        let (host, port) = split_host_port(host_port);
        let host = host.to_ascii_lowercase();
        if !(wildcard
            || port.is_some()
            || host.contains('.')
            || host.starts_with('[')
            || host == "localhost")
        {
            return Err(PatternErrorKind::NotADomain(domain_part.to_owned()));
        }

        if let Some((p, _)) = path {
            if p.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(PatternErrorKind::UppercasePath);
            }
            if !is_remote_name(p.as_bytes()) || p.len() > NAME_TOTAL_LENGTH_MAX {
                return Err(PatternErrorKind::InvalidPath(p.to_owned()));
            }
        }

        // Normalize as ParseNormalizedNamed does for images.
        let host = if !wildcard && port.is_none() && host == LEGACY_DEFAULT_DOMAIN {
            DEFAULT_DOMAIN.to_owned()
        } else {
            host
        };
        let docker_hub = !wildcard && port.is_none() && host == DEFAULT_DOMAIN;
        let path = match path {
            None => PathPattern::Any,
            Some((p, true)) => PathPattern::Below(p.to_owned()),
            Some((p, false)) if docker_hub && !p.contains('/') => {
                PathPattern::Exact(format!("{OFFICIAL_REPO_PREFIX}{p}"))
            }
            Some((p, false)) => PathPattern::Exact(p.to_owned()),
        };
        Ok(RegistryPattern {
            raw: s.to_owned(),
            host: if wildcard {
                HostPattern::Subdomains(host)
            } else {
                HostPattern::Exact(host)
            },
            port: port.map(|p| canonical_port(p).to_owned()),
            path,
        })
    }

    /// Allow-list semantics: the host (or subdomain), the port (both absent or equal) and the
    /// path all match.
    pub fn matches(&self, image: &ImageRef) -> bool {
        self.matches_inner(image, false)
    }

    /// Deny-list semantics: like [`RegistryPattern::matches`], but a pattern that names no port
    /// matches the host on any port.
    pub fn matches_any_port(&self, image: &ImageRef) -> bool {
        self.matches_inner(image, true)
    }

    fn matches_inner(&self, image: &ImageRef, any_port: bool) -> bool {
        let (host, port) = split_host_port(image.domain());
        let port_ok = match (&self.port, port) {
            (None, None) => true,
            (None, Some(_)) => any_port,
            (Some(_), None) => false,
            (Some(want), Some(got)) => want == canonical_port(got),
        };
        port_ok && self.host_matches(host) && self.path_matches(image.path())
    }

    fn host_matches(&self, host: &str) -> bool {
        match &self.host {
            HostPattern::Exact(want) => {
                registry_host(host).eq_ignore_ascii_case(registry_host(want)) || ipv6_eq(host, want)
            }
            HostPattern::Subdomains(suffix) => {
                let (h, s) = (host.as_bytes(), suffix.as_bytes());
                h.len() > s.len() + 1
                    && h[h.len() - s.len() - 1] == b'.'
                    && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }

    fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            PathPattern::Any => true,
            PathPattern::Exact(want) => path == want,
            PathPattern::Below(prefix) => {
                path.len() > prefix.len() + 1
                    && path.starts_with(prefix.as_str())
                    && path.as_bytes()[prefix.len()] == b'/'
            }
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The pattern after normalization (`docker.io/nginx` -> `docker.io/library/nginx`,
    /// `GHCR.IO/corp/*` -> `ghcr.io/corp/*`, `ghcr.io/*` -> `ghcr.io`).
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        match &self.host {
            HostPattern::Exact(h) => out.push_str(h),
            HostPattern::Subdomains(h) => {
                out.push_str("*.");
                out.push_str(h);
            }
        }
        if let Some(p) = &self.port {
            out.push(':');
            out.push_str(p);
        }
        match &self.path {
            PathPattern::Any => {}
            PathPattern::Exact(p) => {
                out.push('/');
                out.push_str(p);
            }
            PathPattern::Below(p) => {
                out.push('/');
                out.push_str(p);
                out.push_str("/*");
            }
        }
        out
    }
}

/// A single component `name:tag` whose "port" is not a number, as in `nginx:1.27`.
fn looks_like_name_and_tag(domain_part: &str) -> bool {
    !domain_part.contains('[')
        && domain_part
            .split_once(':')
            .is_some_and(|(_, after)| !after.bytes().all(|b| b.is_ascii_digit()))
}

/// The registry a host names, for matching: `index.docker.io` is Docker Hub in any case and with any port.
///
/// Upstream maps only the exact, lower-case, port-less `index.docker.io` to `docker.io` when it parses a
/// reference, but DNS ignores case and Docker Hub answers on 443: without this, `INDEX.DOCKER.IO/x` or
/// `index.docker.io:443/x` would slip past `deny: [docker.io]`.
fn registry_host(host: &str) -> &str {
    if host.eq_ignore_ascii_case(LEGACY_DEFAULT_DOMAIN) {
        DEFAULT_DOMAIN
    } else {
        host
    }
}

/// Compares two bracketed IPv6 hosts by address (`[::1]` equals `[0:0::1]`).
fn ipv6_eq(a: &str, b: &str) -> bool {
    fn addr(h: &str) -> Option<Ipv6Addr> {
        h.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
    }
    matches!((addr(a), addr(b)), (Some(x), Some(y)) if x == y)
}

/// A best guess at the pattern that was meant; used only if it parses.
fn repair(s: &str) -> String {
    let s = s.split_once('@').map_or(s, |(before, _)| before);
    let mut collapsed = String::with_capacity(s.len());
    for c in s.chars() {
        if !(c == '*' && collapsed.ends_with('*')) {
            collapsed.push(c);
        }
    }
    let (first, rest) = match collapsed.split_once('/') {
        Some((d, p)) => (d.to_owned(), Some(p.to_ascii_lowercase())),
        None => (collapsed.clone(), None),
    };
    let rest = rest.map(|p| match p.rfind(':') {
        Some(i) if !p[i..].contains('/') => p[..i].to_owned(),
        _ => p,
    });
    let first = if rest.is_none() && looks_like_name_and_tag(&first) {
        first[..first.rfind(':').unwrap_or(first.len())].to_owned()
    } else {
        first
    };
    let is_domain = first.starts_with("*.")
        || first.contains(['.', ':', '['])
        || first.eq_ignore_ascii_case("localhost");
    match (is_domain, rest) {
        (false, _) if first.contains('*') => collapsed,
        (true, Some(p)) => format!("{first}/{p}"),
        (true, None) => first,
        (false, Some(p)) => format!("{DEFAULT_DOMAIN}/{}/{p}", first.to_ascii_lowercase()),
        (false, None) => format!(
            "{DEFAULT_DOMAIN}/{OFFICIAL_REPO_PREFIX}{}",
            first.to_ascii_lowercase()
        ),
    }
}

impl fmt::Display for RegistryPattern {
    /// The pattern as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for RegistryPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegistryPattern::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("image {s:?}: {e}"))
    }

    fn pat(s: &str) -> RegistryPattern {
        RegistryPattern::parse(s).unwrap_or_else(|e| panic!("pattern {s:?}: {e}"))
    }

    #[test]
    fn image_ref_basics() {
        // input, domain, path, tag, display
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str, Option<&str>, &str)] = &[
            ("nginx",                         "docker.io",  "library/nginx", None,         "docker.io/library/nginx:latest"),
            ("nginx:1.27",                    "docker.io",  "library/nginx", Some("1.27"), "docker.io/library/nginx:1.27"),
            ("index.docker.io/bitnami/redis", "docker.io",  "bitnami/redis", None,         "docker.io/bitnami/redis:latest"),
            ("docker.io/foo",                 "docker.io",  "library/foo",   None,         "docker.io/library/foo:latest"),
            ("ghcr.io/corp/app:v1",           "ghcr.io",    "corp/app",      Some("v1"),   "ghcr.io/corp/app:v1"),
            ("[::1]:5000/app",                "[::1]:5000", "app",           None,         "[::1]:5000/app:latest"),
            ("localhost/app",                 "localhost",  "app",           None,         "localhost/app:latest"),
        ];
        for &(input, domain, path, tag, display) in cases {
            let r = img(input);
            assert_eq!(r.domain(), domain, "{input}");
            assert_eq!(r.path(), path, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest(), None, "{input}");
            assert_eq!(r.to_string(), display, "{input}");
            assert_eq!(r.name(), format!("{domain}/{path}"), "{input}");
        }
        let d = img(&format!("ghcr.io/corp/app:v1@{SHA}"));
        assert_eq!(d.to_string(), format!("ghcr.io/corp/app:v1@{SHA}"));
        let d = img(&format!("ghcr.io/corp/app@{SHA}"));
        assert_eq!(d.to_string(), format!("ghcr.io/corp/app@{SHA}"));
        assert_eq!(img("localhost:5000/app").host(), "localhost");
        assert_eq!(img("localhost:5000/app").port(), Some("5000"));
        assert_eq!(img("[::1]:5000/app").host(), "[::1]");
        assert_eq!(img("[::1]/app").port(), None);
        assert_eq!(img("nginx").familiar_name(), "nginx");
    }

    #[test]
    fn image_ref_errors() {
        use ImageRefError::*;
        let long = format!("ghcr.io/{}", "a".repeat(256));
        let cases: &[(&str, ImageRefError)] = &[
            ("", InvalidFormat(MALFORMED_NAME)),
            ("Nginx", NameContainsUppercase),
            ("docker/Docker", NameContainsUppercase),
            ("ghcr.io/Corp/app", NameContainsUppercase),
            ("registry.example./x", InvalidFormat(MALFORMED_HOST)),
            ("foo_bar.com/app", InvalidFormat(MALFORMED_HOST)),
            ("ghcr.io/a..b", InvalidFormat(MALFORMED_NAME)),
            ("ghcr.io/é", InvalidFormat(MALFORMED_NAME)),
            ("ghcr.io/É", NameContainsUppercase),
            ("ghcr.io/app:tag\u{e9}", InvalidFormat(MALFORMED_TAG)),
            ("ghcr.io/app@sha256:abc", InvalidFormat(MALFORMED_DIGEST)),
            ("nginx\n", InvalidFormat(MALFORMED_NAME)),
            (
                "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
                AmbiguousIdentifier,
            ),
            (&long, NameTooLong),
            (
                "ghcr.io/app@sha256:ffffffffffffffffffffffffffffffffff",
                DigestInvalidLength,
            ),
            (
                "ghcr.io/app@md5:ffffffffffffffffffffffffffffffff",
                DigestUnsupported,
            ),
            (
                "ghcr.io/app@sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
                DigestInvalidFormat,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ImageRef::parse(input), Err(*want), "{input:?}");
        }
        assert_eq!(
            reference::parse("\u{212A}ubernetes"),
            Err(NameContainsUppercase),
            "Go lower-cases the Kelvin sign to 'k'"
        );
        // sha384 / sha512 are registered in the standard parser, not in the test-binary one.
        let sha512 = format!("ghcr.io/app@sha512:{}", "f".repeat(128));
        assert!(ImageRef::parse(&sha512).is_ok());
        assert_eq!(
            reference::Parser::SHA256_ONLY.parse(&sha512[..]),
            Err(DigestUnsupported)
        );
        let sha384 = format!("ghcr.io/app@sha384:{}", "f".repeat(96));
        assert!(ImageRef::parse(&sha384).is_ok());
        assert_eq!(
            "invalid reference format: repository name must be lowercase",
            NameContainsUppercase.to_string()
        );
    }

    #[test]
    fn pattern_matching_table() {
        let digest_ref = format!("ghcr.io/corp/app@{SHA}");
        let tagged_digest_ref = format!("ghcr.io/corp/app:v1@{SHA}");
        // (pattern, image, matches, matches_any_port)
        #[rustfmt::skip]
        let cases: &[(&str, &str, bool, bool)] = &[
            // DOMAIN: that registry only; no suffix spoofing; ports exact.
            ("registry.corp.example",       "registry.corp.example/app",          true,  true),
            ("registry.corp.example",       "registry.corp.example/a/b/c:v1",     true,  true),
            ("registry.corp.example",       "registry.corp.example.evil.io/app",  false, false),
            ("registry.corp.example",       "evilregistry.corp.example/app",      false, false),
            ("registry.corp.example",       "sub.registry.corp.example/app",      false, false),
            ("registry.corp.example",       "registry.corp.example:5000/app",     false, true),
            ("registry.corp.example",       "registry.corp.example:443/app",      false, true),
            ("registry.corp.example:5000",  "registry.corp.example:5000/app",     true,  true),
            ("registry.corp.example:5000",  "registry.corp.example/app",          false, false),
            ("registry.corp.example:5000",  "registry.corp.example:5001/app",     false, false),
            ("registry.corp.example:5000",  "registry.corp.example:05000/app",    true,  true),
            ("registry.corp.example:443",   "registry.corp.example:443/app",      true,  true),
            ("registry.corp.example:443",   "registry.corp.example/app",          false, false),
            ("registry.corp.example/*",     "registry.corp.example/app",          true,  true),
            ("registry.corp.example/*",     "registry.corp.example.evil.io/app",  false, false),
            // '/' boundaries.
            ("ghcr.io/corp/*",              "ghcr.io/corp/app",                   true,  true),
            ("ghcr.io/corp/*",              "ghcr.io/corp/team/app",              true,  true),
            ("ghcr.io/corp/*",              "ghcr.io/corporate/x",                false, false),
            ("ghcr.io/corp/*",              "ghcr.io/corp",                       false, false),
            ("ghcr.io/corp/*",              "ghcr.io/other/corp/app",             false, false),
            ("ghcr.io/corp/*",              "ghcr.io:5000/corp/app",              false, true),
            ("ghcr.io/corp/app",            "ghcr.io/corp/app",                   true,  true),
            ("ghcr.io/corp/app",            "ghcr.io/corp/app:v1",                true,  true),
            ("ghcr.io/corp/app",            "ghcr.io/corp/app2",                  false, false),
            ("ghcr.io/corp/app",            "ghcr.io/corp/app/sub",               false, false),
            ("ghcr.io/corp",                "ghcr.io/corp/app",                   false, false),
            // Case: the domain compares case-insensitively.
            ("ghcr.io/corp/*",              "GHCR.IO/corp/x",                     true,  true),
            ("GHCR.IO/corp/*",              "ghcr.io/corp/x",                     true,  true),
            ("Registry.Corp.Example",       "registry.corp.example/x",            true,  true),
            // Docker Hub normalization.
            ("docker.io",                   "nginx",                              true,  true),
            ("docker.io/library/*",         "nginx",                              true,  true),
            ("docker.io/library/*",         "nginx:1.27",                         true,  true),
            ("docker.io/library/nginx",     "nginx",                              true,  true),
            ("docker.io/library/nginx",     "docker.io/nginx:1.27",               true,  true),
            ("docker.io/library/nginx",     "index.docker.io/library/nginx",      true,  true),
            ("docker.io/library/nginx",     "nginx-unprivileged",                 false, false),
            ("docker.io/library/nginx",     "bitnami/nginx",                      false, false),
            ("docker.io/nginx",             "nginx",                              true,  true),
            ("docker.io/nginx",             "docker.io/library/nginx",            true,  true),
            ("docker.io/nginx/*",           "nginx",                              false, false),
            ("docker.io/nginx/*",           "nginx/app",                          true,  true),
            ("index.docker.io",             "nginx",                              true,  true),
            ("index.docker.io/nginx",       "nginx",                              true,  true),
            ("index.docker.io/bitnami/*",   "bitnami/redis",                      true,  true),
            ("docker.io/library/*",         "bitnami/redis",                      false, false),
            ("docker.io/bitnami/*",         "bitnami/redis",                      true,  true),
            ("docker.io",                   "ghcr.io/corp/app",                   false, false),
            ("docker.io",                   "docker.io.evil.io/library/nginx",    false, false),
            // index.docker.io is Docker Hub in any case and on any port.
            ("docker.io",                   "INDEX.DOCKER.IO/evil/x",             true,  true),
            ("docker.io",                   "index.docker.io:443/evil/x",         false, true),
            ("docker.io:443",               "index.docker.io:443/evil/x",         true,  true),
            ("index.docker.io:443",         "docker.io:443/evil/x",               true,  true),
            ("docker.io",                   "Docker.IO/evil/x",                   true,  true),
            ("docker.io",                   "index.docker.io.evil.io/x",          false, false),
            ("*.docker.io",                 "INDEX.DOCKER.IO/evil/x",             true,  true),
            // Digests and tags never take part.
            ("ghcr.io/corp/*",              &digest_ref,                          true,  true),
            ("ghcr.io/corp/app",            &digest_ref,                          true,  true),
            ("ghcr.io/corp/*",              &tagged_digest_ref,                   true,  true),
            // Subdomain wildcard.
            ("*.evil.example",              "a.evil.example/x",                   true,  true),
            ("*.evil.example",              "a.b.evil.example/x",                 true,  true),
            ("*.evil.example",              "evil.example/x",                     false, false),
            ("*.evil.example",              "notevil.example/x",                  false, false),
            ("*.evil.example",              "a.evil.example.com/x",               false, false),
            ("*.evil.example",              "A.EVIL.EXAMPLE/x",                   true,  true),
            ("*.evil.example",              "a.evil.example:8443/x",              false, true),
            ("*.evil.example:8443",         "a.evil.example:8443/x",              true,  true),
            ("*.corp.example/team/*",       "a.corp.example/team/app",            true,  true),
            ("*.corp.example/team/*",       "a.corp.example/other/app",           false, false),
            // localhost and IP hosts.
            ("localhost",                   "localhost/app",                      true,  true),
            ("localhost:5000",              "localhost:5000/app",                 true,  true),
            ("localhost",                   "localhost:5000/app",                 false, true),
            ("127.0.0.1:5000",              "127.0.0.1:5000/app",                 true,  true),
            ("[::1]:5000",                  "[::1]:5000/app",                     true,  true),
            ("[::1]:5000",                  "[0:0::1]:5000/app",                  true,  true),
            ("[fd00::1]",                   "[FD00::1]/app",                      true,  true),
            ("[fd00::1]",                   "[fd00::2]/app",                      false, false),
        ];
        let mut failures = Vec::new();
        for &(p, i, want, want_any) in cases {
            let (p_, i_) = (pat(p), img(i));
            if p_.matches(&i_) != want || p_.matches_any_port(&i_) != want_any {
                failures.push(format!(
                    "{p:?} vs {i:?}: matches={} (want {want}), matches_any_port={} (want {want_any})",
                    p_.matches(&i_),
                    p_.matches_any_port(&i_)
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn pattern_display_and_normalized() {
        let cases: &[(&str, &str)] = &[
            ("ghcr.io/corp/*", "ghcr.io/corp/*"),
            ("GHCR.IO/corp/*", "ghcr.io/corp/*"),
            ("ghcr.io/*", "ghcr.io"),
            ("docker.io/nginx", "docker.io/library/nginx"),
            ("index.docker.io/nginx", "docker.io/library/nginx"),
            ("index.docker.io:443/nginx", "index.docker.io:443/nginx"),
            ("docker.io/nginx/*", "docker.io/nginx/*"),
            ("*.Evil.Example", "*.evil.example"),
            ("registry.corp.example:05000", "registry.corp.example:5000"),
        ];
        for &(p, normalized) in cases {
            let parsed = pat(p);
            assert_eq!(parsed.to_string(), p);
            assert_eq!(parsed.as_str(), p);
            assert_eq!(parsed.normalized(), normalized, "{p}");
        }
        // "DOMAIN/*" equals "DOMAIN".
        let (a, b) = (pat("ghcr.io/*"), pat("ghcr.io"));
        assert_eq!(
            (a.host.clone(), a.port.clone(), a.path.clone()),
            (b.host, b.port, b.path)
        );
    }

    #[test]
    fn pattern_errors() {
        use PatternErrorKind as K;
        // (pattern, kind, full message)
        let cases: &[(&str, K, &str)] = &[
            ("", K::Empty, r#""": registry pattern is empty"#),
            (
                "ghcr.io/corp/**",
                K::DoubleStar,
                r#""ghcr.io/corp/**": '**' is not a pattern; use 'ghcr.io/corp/*'"#,
            ),
            (
                "**.corp.example",
                K::DoubleStar,
                r#""**.corp.example": '**' is not a pattern; use '*.corp.example'"#,
            ),
            (
                "nginx",
                K::NotADomain("nginx".into()),
                r#""nginx": 'nginx' is not a registry domain (a domain has a '.' or a ':port', or is 'localhost'); use 'docker.io/library/nginx'"#,
            ),
            (
                "bitnami/redis",
                K::NotADomain("bitnami".into()),
                r#""bitnami/redis": 'bitnami' is not a registry domain (a domain has a '.' or a ':port', or is 'localhost'); use 'docker.io/bitnami/redis'"#,
            ),
            (
                "nginx:1.27",
                K::Tag,
                r#""nginx:1.27": a pattern cannot contain a tag; tags and digests never take part in matching; use 'docker.io/library/nginx'"#,
            ),
            (
                "ghcr.io/corp/app:v1",
                K::Tag,
                r#""ghcr.io/corp/app:v1": a pattern cannot contain a tag; tags and digests never take part in matching; use 'ghcr.io/corp/app'"#,
            ),
            (
                "ghcr.io/corp/app@sha256:abc",
                K::Digest,
                r#""ghcr.io/corp/app@sha256:abc": a pattern cannot contain a digest; tags and digests never take part in matching; use 'ghcr.io/corp/app'"#,
            ),
            (
                "ghcr.io/*/app",
                K::MisplacedWildcard,
                r#""ghcr.io/*/app": '*' is only allowed as a leading '*.' label or a trailing '/*'"#,
            ),
            (
                "ghcr.io/corp*",
                K::MisplacedWildcard,
                r#""ghcr.io/corp*": '*' is only allowed as a leading '*.' label or a trailing '/*'"#,
            ),
            (
                "*",
                K::MisplacedWildcard,
                r#""*": '*' is only allowed as a leading '*.' label or a trailing '/*'"#,
            ),
            (
                "corp.*.example",
                K::MisplacedWildcard,
                r#""corp.*.example": '*' is only allowed as a leading '*.' label or a trailing '/*'"#,
            ),
            (
                "*evil.example",
                K::MisplacedWildcard,
                r#""*evil.example": '*' is only allowed as a leading '*.' label or a trailing '/*'"#,
            ),
            (
                "ghcr.io/Corp/*",
                K::UppercasePath,
                r#""ghcr.io/Corp/*": repository path must be lowercase; use 'ghcr.io/corp/*'"#,
            ),
            (
                "registry.example./x",
                K::InvalidDomain("registry.example.".into()),
                r#""registry.example./x": 'registry.example.' is not a valid registry domain"#,
            ),
            (
                "-bad.example",
                K::InvalidDomain("-bad.example".into()),
                r#""-bad.example": '-bad.example' is not a valid registry domain"#,
            ),
            (
                "ghcr.io:http",
                K::Tag,
                r#""ghcr.io:http": a pattern cannot contain a tag; tags and digests never take part in matching; use 'ghcr.io'"#,
            ),
            (
                "*.",
                K::InvalidDomain("*.".into()),
                r#""*.": '*.' is not a valid registry domain"#,
            ),
            (
                "ghcr.io/",
                K::InvalidPath("".into()),
                r#""ghcr.io/": '' is not a valid repository path"#,
            ),
            (
                "ghcr.io/a..b",
                K::InvalidPath("a..b".into()),
                r#""ghcr.io/a..b": 'a..b' is not a valid repository path"#,
            ),
            (
                "ghcr.io//x",
                K::InvalidPath("/x".into()),
                r#""ghcr.io//x": '/x' is not a valid repository path"#,
            ),
            (
                "régistry.example",
                K::NotAscii,
                r#""régistry.example": registry pattern must be ASCII (write internationalized domains in punycode, 'xn--...')"#,
            ),
            (
                "*.[::1]",
                K::InvalidDomain("*.[::1]".into()),
                r#""*.[::1]": '*.[::1]' is not a valid registry domain"#,
            ),
            (
                "[fe80::1%eth0]",
                K::InvalidDomain("[fe80::1%eth0]".into()),
                r#""[fe80::1%eth0]": '[fe80::1%eth0]' is not a valid registry domain"#,
            ),
        ];
        let mut failures = Vec::new();
        for (p, kind, message) in cases {
            match RegistryPattern::parse(p) {
                Ok(parsed) => failures.push(format!("{p:?}: parsed as {:?}", parsed.normalized())),
                Err(e) => {
                    if e.kind() != kind || e.to_string() != *message || e.pattern() != *p {
                        failures.push(format!("{p:?}: got {:?} / {e}", e.kind()));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn pattern_suggestions_are_valid() {
        for p in [
            "ghcr.io/corp/**",
            "nginx",
            "nginx:1.27",
            "bitnami/redis",
            "ghcr.io/Corp/*",
        ] {
            let e = RegistryPattern::parse(p).unwrap_err();
            let s = e.suggestion().expect(p);
            assert!(RegistryPattern::parse(s).is_ok(), "{p} -> {s}");
        }
    }
}
