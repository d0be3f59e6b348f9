//! The version suffix grammar shared by topics and schema packages.
//!
//! It follows buf's `PACKAGE_VERSION_SUFFIX` rule: `v1`, `v2`, `v1beta1`, `v1alpha2`, `v1beta`,
//! `v1p1beta1`, `v1test`, `v1test_feature`. The major number is at least 1 and has no leading
//! zero, so `v0`, `v01`, `V1` and `1` are refused.

use std::fmt;

/// How stable a version is, as its suffix after the major number says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stability {
    /// `v1`: a stable major.
    Stable,
    /// `v1beta`, `v1beta2`, `v1p1beta1`: the number after `beta`, 0 when absent.
    Beta(u32),
    /// `v1alpha`, `v1alpha2`, `v1p1alpha1`: the number after `alpha`, 0 when absent.
    Alpha(u32),
    /// `v1test`, `v1test_feature`: a test version.
    Test,
}

/// A parsed version suffix such as `v2` or `v1beta1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// The major number, at least 1.
    pub major: u32,
    /// What follows the major number.
    pub stability: Stability,
}

/// Why a segment is not a version suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionError {
    /// It does not start with a lowercase `v`.
    MissingV,
    /// No digits follow the `v`.
    MissingMajor,
    /// The major number is 0.
    ZeroMajor,
    /// The major number starts with a 0 (`v01`).
    LeadingZero,
    /// The major number does not fit in 32 bits.
    MajorTooLarge,
    /// Something other than `alpha`, `beta`, `pNalpha`, `pNbeta` or `test` follows the major.
    BadSuffix,
}

impl VersionError {
    /// A sentence saying what is wrong, without the offending text.
    pub const fn message(&self) -> &'static str {
        match self {
            VersionError::MissingV => "a version starts with a lowercase `v`",
            VersionError::MissingMajor => "a version needs a major number after the `v`",
            VersionError::ZeroMajor => "the major version starts at 1, `v0` is not a version",
            VersionError::LeadingZero => "the major number has no leading zero",
            VersionError::MajorTooLarge => "the major number does not fit in 32 bits",
            VersionError::BadSuffix => {
                "after the major number only `alpha`, `beta` (each with an optional number), \
                 `pN` followed by one of them, or `test` may follow"
            }
        }
    }
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for VersionError {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.major)?;
        match self.stability {
            Stability::Stable => Ok(()),
            Stability::Beta(0) => f.write_str("beta"),
            Stability::Beta(n) => write!(f, "beta{n}"),
            Stability::Alpha(0) => f.write_str("alpha"),
            Stability::Alpha(n) => write!(f, "alpha{n}"),
            Stability::Test => f.write_str("test"),
        }
    }
}

/// Reads a number at `at`; returns the value and the index after it, or `None` past `u32::MAX`.
const fn number(bytes: &[u8], mut at: usize) -> (Option<u32>, usize) {
    let mut value: u32 = 0;
    while at < bytes.len() && bytes[at].is_ascii_digit() {
        let digit = (bytes[at] - b'0') as u32;
        value = match value.checked_mul(10) {
            Some(v) => match v.checked_add(digit) {
                Some(v) => v,
                None => return (None, at),
            },
            None => return (None, at),
        };
        at += 1;
    }
    (Some(value), at)
}

const fn starts_with_at(bytes: &[u8], at: usize, word: &[u8]) -> bool {
    if at + word.len() > bytes.len() {
        return false;
    }
    let mut i = 0;
    while i < word.len() {
        if bytes[at + i] != word[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Reads `alpha[N]` or `beta[N]` at `at`, which must end the segment.
const fn pre_release(bytes: &[u8], at: usize) -> Result<Stability, VersionError> {
    let (beta, start) = if starts_with_at(bytes, at, b"beta") {
        (true, at + 4)
    } else if starts_with_at(bytes, at, b"alpha") {
        (false, at + 5)
    } else {
        return Err(VersionError::BadSuffix);
    };
    let (n, end) = number(bytes, start);
    let n = match n {
        Some(n) => n,
        None => return Err(VersionError::BadSuffix),
    };
    if end != bytes.len() {
        return Err(VersionError::BadSuffix);
    }
    Ok(if beta {
        Stability::Beta(n)
    } else {
        Stability::Alpha(n)
    })
}

/// Parses one segment as a version suffix (`v1`, `v2beta1`...).
pub const fn parse_version(segment: &str) -> Result<Version, VersionError> {
    let bytes = segment.as_bytes();
    if bytes.is_empty() || bytes[0] != b'v' {
        return Err(VersionError::MissingV);
    }
    if bytes.len() == 1 || !bytes[1].is_ascii_digit() {
        return Err(VersionError::MissingMajor);
    }
    if bytes[1] == b'0' {
        return Err(if bytes.len() > 2 && bytes[2].is_ascii_digit() {
            VersionError::LeadingZero
        } else {
            VersionError::ZeroMajor
        });
    }
    let (major, at) = number(bytes, 1);
    let major = match major {
        Some(m) => m,
        None => return Err(VersionError::MajorTooLarge),
    };
    if at == bytes.len() {
        return Ok(Version {
            major,
            stability: Stability::Stable,
        });
    }
    if starts_with_at(bytes, at, b"test") {
        let mut i = at + 4;
        while i < bytes.len() {
            let b = bytes[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(VersionError::BadSuffix);
            }
            i += 1;
        }
        return Ok(Version {
            major,
            stability: Stability::Test,
        });
    }
    if bytes[at] == b'p' {
        let (point, after) = number(bytes, at + 1);
        if after == at + 1 || point.is_none() {
            return Err(VersionError::BadSuffix);
        }
        return match pre_release(bytes, after) {
            Ok(stability) => Ok(Version { major, stability }),
            Err(e) => Err(e),
        };
    }
    match pre_release(bytes, at) {
        Ok(stability) => Ok(Version { major, stability }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_buf_suffixes() {
        for (text, major, stability) in [
            ("v1", 1, Stability::Stable),
            ("v2", 2, Stability::Stable),
            ("v10", 10, Stability::Stable),
            ("v1beta1", 1, Stability::Beta(1)),
            ("v1beta", 1, Stability::Beta(0)),
            ("v1alpha2", 1, Stability::Alpha(2)),
            ("v3p1beta1", 3, Stability::Beta(1)),
            ("v1test", 1, Stability::Test),
            ("v1test_foo", 1, Stability::Test),
        ] {
            assert_eq!(
                parse_version(text),
                Ok(Version { major, stability }),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_malformed_suffixes() {
        for (text, err) in [
            ("", VersionError::MissingV),
            ("1", VersionError::MissingV),
            ("V1", VersionError::MissingV),
            ("v", VersionError::MissingMajor),
            ("vx", VersionError::MissingMajor),
            ("v0", VersionError::ZeroMajor),
            ("v01", VersionError::LeadingZero),
            ("v1gamma", VersionError::BadSuffix),
            ("v1beta1x", VersionError::BadSuffix),
            ("v1p", VersionError::BadSuffix),
            ("v1p1", VersionError::BadSuffix),
            ("v99999999999", VersionError::MajorTooLarge),
        ] {
            assert_eq!(parse_version(text), Err(err), "{text:?}");
        }
    }

    #[test]
    fn displays_as_parsed() {
        for text in ["v1", "v1beta1", "v1alpha", "v2beta"] {
            assert_eq!(parse_version(text).unwrap().to_string(), text);
        }
    }
}
