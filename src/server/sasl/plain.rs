//! SASL/PLAIN (RFC 4616): `[authzid] NUL authcid NUL password`, checked against the listener's
//! JAAS users (`user_<name>="<password>"`) and, for users not named there, against the SCRAM
//! credentials in the metadata quorum.

use super::scram::{constant_time_eq, ScramMechanism};
use super::{AuthFailure, Step};
use crate::cluster::image::ScramCredential;
use std::collections::BTreeMap;

/// Checks one PLAIN message. `scram_of` gives a user's SCRAM credentials, if any.
pub fn authenticate(
    message: &[u8],
    users: &BTreeMap<String, String>,
    scram_of: impl Fn(&str, ScramMechanism) -> Option<ScramCredential>,
) -> Result<Step, AuthFailure> {
    let parts: Vec<&[u8]> = message.split(|b| *b == 0).collect();
    if parts.len() != 3 {
        return Err(AuthFailure::new(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            parts.len()
        )));
    }
    let text = |b: &[u8]| {
        String::from_utf8(b.to_vec())
            .map_err(|_| AuthFailure::new("Invalid SASL/PLAIN response: not UTF-8"))
    };
    let (authzid, user, password) = (text(parts[0])?, text(parts[1])?, parts[2]);
    if user.is_empty() {
        return Err(AuthFailure::new(
            "Authentication failed: username not specified",
        ));
    }
    if password.is_empty() {
        return Err(AuthFailure::new(
            "Authentication failed: password not specified",
        ));
    }
    let accepted = match users.get(&user) {
        Some(expected) => constant_time_eq(expected.as_bytes(), password),
        None => ScramMechanism::ALL
            .into_iter()
            .rev()
            .any(|m| scram_of(&user, m).is_some_and(|c| m.verify_password(&c, password))),
    };
    if !accepted {
        return Err(AuthFailure::new(
            "Authentication failed: Invalid username or password",
        ));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthFailure::new(
            "Authentication failed: Client requested an authorization id that is different from username",
        ));
    }
    Ok(Step::Done {
        reply: Vec::new(),
        user,
        expires_at_ms: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> BTreeMap<String, String> {
        BTreeMap::from([("alice".to_string(), "alice-secret".to_string())])
    }

    #[test]
    fn jaas_users_and_scram_credentials_are_accepted() {
        let none = |_: &str, _| None;
        let Ok(Step::Done { user, .. }) = authenticate(b"\0alice\0alice-secret", &users(), none)
        else {
            panic!("refused")
        };
        assert_eq!(user, "alice");
        assert!(authenticate(b"alice\0alice\0alice-secret", &users(), none).is_ok());
        let m = ScramMechanism::Sha512;
        let cred =
            m.credential_from_salted(&m.salted_password(b"pw", b"salt", 4096), b"salt", 4096);
        let scram = |u: &str, mech| (u == "bob" && mech == m).then(|| cred.clone());
        assert!(authenticate(b"\0bob\0pw", &users(), scram).is_ok());
        assert!(authenticate(b"\0bob\0pw2", &users(), scram).is_err());
    }

    #[test]
    fn refusals_say_what_kafka_says() {
        let none = |_: &str, _| None;
        let message = |m: &[u8]| authenticate(m, &users(), none).err().unwrap().message;
        assert_eq!(
            message(b"\0alice\0wrong"),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(
            message(b"\0nobody\0x"),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(
            message(b"\0\0x"),
            "Authentication failed: username not specified"
        );
        assert_eq!(
            message(b"\0alice\0"),
            "Authentication failed: password not specified"
        );
        assert_eq!(
            message(b"bob\0alice\0alice-secret"),
            "Authentication failed: Client requested an authorization id that is different from username"
        );
        assert_eq!(
            message(b"alice"),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 1"
        );
    }
}
