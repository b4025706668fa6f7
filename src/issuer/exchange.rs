//! RFC 8693 token exchange: what a request asks for, read from its form,
//! and why one is refused. The subject token itself is verified by
//! [`crate::issuer::subject`]; the token endpoint then starts a family.
//!
//! bindgate exchanges an identity provider's token for its own access
//! token, and nothing else: no actor (delegation is not offered), and no
//! `requested_token_type` but an access token.

use crate::issuer::form::Form;
use crate::issuer::subject::{SubjectTokenError, SubjectTokenType};

/// The one token type issued.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A token exchange request, as far as the form says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange<'a> {
    pub subject_token: &'a str,
    pub subject_token_type: SubjectTokenType,
}

/// Why a token exchange is refused. Every one is an `invalid_request`
/// (RFC 8693 section 2.2.2 names no other code for a bad subject token),
/// but keys that are not loaded yet, which is ours to fix: a 503.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("subject_token is missing")]
    SubjectTokenMissing,
    #[error("subject_token_type is missing")]
    SubjectTokenTypeMissing,
    #[error("subject_token_type must be an id_token, access_token or jwt token type URI")]
    SubjectTokenTypeUnsupported,
    #[error("actor_token is not supported: bindgate does not offer delegation")]
    ActorUnsupported,
    #[error("requested_token_type must be urn:ietf:params:oauth:token-type:access_token")]
    RequestedTypeUnsupported,
    #[error("the subject token is not acceptable: {0}")]
    Subject(#[from] SubjectTokenError),
}

impl ExchangeError {
    pub fn code(&self) -> &'static str {
        match self {
            ExchangeError::Subject(SubjectTokenError::KeysUnavailable) => "temporarily_unavailable",
            _ => "invalid_request",
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            ExchangeError::SubjectTokenMissing => "subject_token_missing",
            ExchangeError::SubjectTokenTypeMissing => "subject_token_type_missing",
            ExchangeError::SubjectTokenTypeUnsupported => "subject_token_type_unsupported",
            ExchangeError::ActorUnsupported => "actor_token_unsupported",
            ExchangeError::RequestedTypeUnsupported => "requested_token_type_unsupported",
            ExchangeError::Subject(e) => e.label(),
        }
    }
}

/// Reads a token exchange's own parameters; `scope`, `resource` and
/// `audience` are the grant's, as for any other.
pub fn read(form: &Form) -> Result<Exchange<'_>, ExchangeError> {
    if form.get("actor_token").is_some() || form.get("actor_token_type").is_some() {
        return Err(ExchangeError::ActorUnsupported);
    }
    if form.get("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN_TYPE) {
        return Err(ExchangeError::RequestedTypeUnsupported);
    }
    let subject_token = form.get("subject_token").ok_or(ExchangeError::SubjectTokenMissing)?;
    let type_uri = form
        .get("subject_token_type")
        .ok_or(ExchangeError::SubjectTokenTypeMissing)?;
    let subject_token_type = SubjectTokenType::from_uri(type_uri).ok_or(ExchangeError::SubjectTokenTypeUnsupported)?;
    Ok(Exchange {
        subject_token,
        subject_token_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes()).unwrap()
    }

    const ID_TOKEN: &str = "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token";

    #[test]
    fn an_exchange_names_its_subject_token_and_type() {
        let body = format!("subject_token=abc&subject_token_type={ID_TOKEN}");
        let f = form(&body);
        let exchange = read(&f).unwrap();
        assert_eq!(exchange.subject_token, "abc");
        assert_eq!(exchange.subject_token_type, SubjectTokenType::IdToken);
        let with_type = format!("{body}&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token");
        assert!(read(&form(&with_type)).is_ok());
    }

    #[test]
    fn missing_unknown_and_unsupported_parameters_are_refused_each_with_its_label() {
        let cases = [
            (format!("subject_token_type={ID_TOKEN}"), "subject_token_missing"),
            ("subject_token=abc".to_string(), "subject_token_type_missing"),
            (
                "subject_token=abc&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Asaml2".to_string(),
                "subject_token_type_unsupported",
            ),
            (
                format!("subject_token=abc&subject_token_type={ID_TOKEN}&actor_token=x"),
                "actor_token_unsupported",
            ),
            (
                format!(
                    "subject_token=abc&subject_token_type={ID_TOKEN}&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Arefresh_token"
                ),
                "requested_token_type_unsupported",
            ),
        ];
        for (body, label) in cases {
            let e = read(&form(&body)).unwrap_err();
            assert_eq!((e.code(), e.label()), ("invalid_request", label), "{body}");
        }
        let unavailable = ExchangeError::Subject(SubjectTokenError::KeysUnavailable);
        assert_eq!(unavailable.code(), "temporarily_unavailable");
    }
}
