//! `*` wildcards for namespace, user, group and service-account selectors.

use std::fmt;

/// A name pattern in which `*` stands for any run of characters, including none. Everything else is literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// Makes a pattern. Any string is a valid pattern.
    pub fn new(pattern: &str) -> Glob {
        Glob(pattern.to_owned())
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        glob_match(self.0.as_bytes(), text.as_bytes())
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Linear-time wildcard matching: on a mismatch, retry from the last `*` one character further on.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut retry: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            retry = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, from)) = retry {
            p = star + 1;
            t = from + 1;
            retry = Some((star, from + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::exact("kube-system", "kube-system", true)]
    #[case::exact_differs("kube-system", "kube-public", false)]
    #[case::prefix("monitoring-*", "monitoring-prod", true)]
    #[case::prefix_empty_rest("monitoring-*", "monitoring-", true)]
    #[case::prefix_needs_dash("monitoring-*", "monitoring", false)]
    #[case::suffix("*-debug", "team-a-debug", true)]
    #[case::middle("team-*-prod", "team-a-prod", true)]
    #[case::middle_no_match("team-*-prod", "team-a-dev", false)]
    #[case::star("*", "", true)]
    #[case::two_stars("a*b*c", "axxbyyc", true)]
    #[case::backtrack("a*bc", "abcbc", true)]
    #[case::backtrack_fail("a*bc", "abcb", false)]
    #[case::sa("ops:*", "ops:debugger", true)]
    fn matches(#[case] pattern: &str, #[case] text: &str, #[case] expected: bool) {
        assert_eq!(
            Glob::new(pattern).matches(text),
            expected,
            "{pattern} ~ {text}"
        );
    }
}
