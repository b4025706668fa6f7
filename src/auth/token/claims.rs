//! The claims the gateway relies on, parsed into strict types.
//!
//! A `serde_json::Value` would keep the last of duplicate keys and accept
//! `"exp": "9999999999"`; these structs refuse both.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The payload of an access token.
#[derive(Debug, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    pub aud: Audience,
    pub exp: NumericDate,
    #[serde(default)]
    pub nbf: Option<NumericDate>,
    #[serde(default)]
    pub iat: Option<NumericDate>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub cnf: Option<Confirmation>,
    /// Everything else, for claim headers.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// The value of any claim, by name, rendered for an HTTP header:
    /// strings as they are, other JSON values as compact JSON text.
    pub fn render(&self, name: &str) -> Option<String> {
        let date = |d: &NumericDate| d.to_string();
        match name {
            "iss" => Some(self.iss.clone()),
            "sub" => self.sub.clone(),
            "aud" => Some(self.aud.values().join(" ")),
            "exp" => Some(date(&self.exp)),
            "nbf" => self.nbf.as_ref().map(date),
            "iat" => self.iat.as_ref().map(date),
            "scope" => self.scope.clone(),
            "cnf" => None,
            other => self.other.get(other).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            }),
        }
    }
}

impl Claims {
    /// The heap these claims hold, as the allocator reserves it (see
    /// [`allocation`]): what caching them costs beyond the struct itself.
    /// The extra claims' map is the bulk of it: a B-tree node for even one
    /// claim is 11 key and value slots.
    pub fn heap_bytes(&self) -> usize {
        let text = |s: &String| allocation(s.capacity());
        let maybe = |s: &Option<String>| s.as_ref().map_or(0, text);
        let audience = match &self.aud {
            Audience::One(a) => text(a),
            Audience::Many(list) => {
                allocation(list.capacity() * size_of::<String>()) + list.iter().map(text).sum::<usize>()
            }
        };
        let cnf = self.cnf.as_ref().map_or(0, |c| maybe(&c.x5t_s256) + maybe(&c.jkt));
        text(&self.iss) + maybe(&self.sub) + audience + maybe(&self.scope) + cnf + map_bytes(&self.other)
    }
}

/// What an allocation of `requested` bytes takes from glibc's malloc: an
/// 8-byte header, rounded up to 16, at least 32 (none for 0: no allocation).
pub const fn allocation(requested: usize) -> usize {
    let chunk = (requested + 8).next_multiple_of(16);
    match requested {
        0 => 0,
        _ if chunk < 32 => 32,
        _ => chunk,
    }
}

fn map_bytes(map: &serde_json::Map<String, serde_json::Value>) -> usize {
    use serde_json::Value;
    // std's B-tree: nodes of up to 11 entries (half full at worst after
    // splits, ~70% on average); internal nodes add 12 child pointers.
    const SLOTS: usize = 11;
    let leaf = allocation(16 + SLOTS * (size_of::<String>() + size_of::<Value>()));
    let internal = leaf + 12 * size_of::<usize>();
    let leaves = match map.len() {
        0 => 0,
        n if n <= SLOTS => 1,
        n => n.div_ceil(7),
    };
    let internals = if leaves > 1 { leaves.div_ceil(7) } else { 0 };
    let entries: usize = map
        .iter()
        .map(|(key, value)| allocation(key.capacity()) + value_bytes(value))
        .sum();
    leaves * leaf + internals * internal + entries
}

fn value_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => allocation(s.capacity()),
        Value::Array(list) => {
            allocation(list.capacity() * size_of::<Value>()) + list.iter().map(value_bytes).sum::<usize>()
        }
        Value::Object(map) => map_bytes(map),
    }
}

/// `aud`: one string or an array of strings (RFC 7519 section 4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn values(&self) -> Vec<&str> {
        match self {
            Audience::One(a) => vec![a.as_str()],
            Audience::Many(list) => list.iter().map(String::as_str).collect(),
        }
    }

    pub fn contains_any(&self, accepted: &[String]) -> bool {
        match self {
            Audience::One(a) => accepted.contains(a),
            Audience::Many(list) => list.iter().any(|a| accepted.contains(a)),
        }
    }
}

/// The confirmation claim (RFC 7800) naming the key the token is bound to.
#[derive(Debug, Deserialize)]
pub struct Confirmation {
    /// RFC 8705: base64url SHA-256 of the client certificate's DER.
    #[serde(rename = "x5t#S256", default)]
    pub x5t_s256: Option<String>,
    /// RFC 9449: JWK SHA-256 thumbprint of the DPoP key.
    #[serde(default)]
    pub jkt: Option<String>,
}

/// Seconds since the epoch; fractional values are valid (RFC 7519 section 2),
/// anything but a JSON number is not. So is a number outside
/// [`NumericDate::MIN`]..=[`NumericDate::MAX`]: a date before 1970 or after
/// the year 9999 is no issuer's intent, and `2^64` or `1e300` read as a
/// float would otherwise make an `exp` that never arrives.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct NumericDate(pub f64);

impl NumericDate {
    /// 1970-01-01T00:00:00Z.
    pub const MIN: f64 = 0.0;
    /// 9999-12-31T23:59:59Z.
    pub const MAX: f64 = 253_402_300_799.0;

    fn checked<E: de::Error>(seconds: f64) -> Result<NumericDate, E> {
        if !seconds.is_finite() {
            return Err(E::custom("NumericDate must be finite"));
        }
        if !(Self::MIN..=Self::MAX).contains(&seconds) {
            return Err(E::custom(format_args!(
                "NumericDate {seconds} is outside 1970-01-01..=9999-12-31"
            )));
        }
        // `-0` is in range; store `0` so that rendering it never shows a sign.
        Ok(NumericDate(seconds + 0.0))
    }
}

impl fmt::Display for NumericDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 1e15 {
            write!(f, "{}", self.0 as i64)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberOnly;
        impl Visitor<'_> for NumberOnly {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate (a JSON number of seconds)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                // Anything a u64 holds beyond MAX is refused; below 2^53 the conversion is exact.
                NumericDate::checked(v.min(1 << 53) as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                NumericDate::checked(v.clamp(-(1 << 53), 1 << 53) as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                NumericDate::checked(v)
            }
        }
        deserializer.deserialize_any(NumberOnly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Claims, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn fractional_dates_are_valid_and_strings_are_not() {
        let c = parse(r#"{"iss":"i","aud":"a","exp":1700000000.5}"#).unwrap();
        assert_eq!(c.exp, NumericDate(1_700_000_000.5));
        assert!(parse(r#"{"iss":"i","aud":"a","exp":"9999999999"}"#).is_err());
        assert!(parse(r#"{"iss":"i","aud":"a","exp":1,"nbf":"0"}"#).is_err());
        assert!(parse(r#"{"iss":"i","aud":"a","exp":true}"#).is_err());
    }

    #[test]
    fn required_claims_must_be_present() {
        assert!(parse(r#"{"aud":"a","exp":1}"#).is_err());
        assert!(parse(r#"{"iss":"i","exp":1}"#).is_err());
        assert!(parse(r#"{"iss":"i","aud":"a"}"#).is_err());
    }

    #[test]
    fn duplicate_claims_are_refused_not_last_wins() {
        assert!(parse(r#"{"iss":"i","aud":"a","exp":1,"cnf":{"x5t#S256":"A"},"cnf":{"x5t#S256":"B"}}"#).is_err());
        assert!(parse(r#"{"iss":"i","aud":"a","exp":1,"cnf":{"x5t#S256":"A","x5t#S256":"B"}}"#).is_err());
        assert!(parse(r#"{"iss":"i","iss":"j","aud":"a","exp":1}"#).is_err());
    }

    #[test]
    fn cnf_of_the_wrong_shape_is_refused() {
        assert!(parse(r#"{"iss":"i","aud":"a","exp":1,"cnf":"x"}"#).is_err());
        assert!(parse(r#"{"iss":"i","aud":"a","exp":1,"cnf":{"x5t#S256":5}}"#).is_err());
    }

    #[test]
    fn audience_is_one_or_many() {
        let one = parse(r#"{"iss":"i","aud":"a","exp":1}"#).unwrap();
        assert!(one.aud.contains_any(&["a".to_string()]));
        let many = parse(r#"{"iss":"i","aud":["x","a"],"exp":1}"#).unwrap();
        assert!(many.aud.contains_any(&["a".to_string()]));
        assert!(!many.aud.contains_any(&["b".to_string()]));
        assert!(parse(r#"{"iss":"i","aud":[1],"exp":1}"#).is_err());
    }

    #[test]
    fn claims_render_for_headers() {
        let c = parse(r#"{"iss":"i","sub":"alice","aud":"a","exp":1,"tenant":7,"client_id":"c1"}"#).unwrap();
        assert_eq!(c.render("sub").as_deref(), Some("alice"));
        assert_eq!(c.render("tenant").as_deref(), Some("7"));
        assert_eq!(c.render("client_id").as_deref(), Some("c1"));
        assert_eq!(c.render("exp").as_deref(), Some("1"));
        assert_eq!(c.render("missing"), None);
    }

    #[test]
    fn numeric_dates_outside_1970_to_9999_are_refused() {
        let exp = |v: &str| parse(&format!(r#"{{"iss":"i","aud":"a","exp":{v}}}"#)).map(|c| c.exp);
        for bad in [
            "18446744073709551616",
            "18446744073709551615",
            "9223372036854775808",
            "1e400",
            "-1e400",
            "1e300",
            "-1",
            "-0.5",
            "-9223372036854775808",
            "253402300800",
            "253402300799.5",
        ] {
            assert!(exp(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(exp("0").unwrap(), NumericDate(0.0));
        let minus_zero = exp("-0").unwrap();
        assert_eq!(minus_zero, NumericDate(0.0));
        assert!(minus_zero.0.is_sign_positive());
        assert_eq!(exp("-0.0").unwrap().to_string(), "0");
        assert_eq!(exp("253402300799").unwrap(), NumericDate(NumericDate::MAX));
        assert_eq!(exp("1700000000.25").unwrap(), NumericDate(1_700_000_000.25));
        assert_eq!(exp("1.7e9").unwrap(), NumericDate(1_700_000_000.0));
        let nbf = parse(r#"{"iss":"i","aud":"a","exp":1,"nbf":18446744073709551616}"#);
        assert!(nbf.is_err());
        let iat = parse(r#"{"iss":"i","aud":"a","exp":1,"iat":-5}"#);
        assert!(iat.is_err());
    }
}
