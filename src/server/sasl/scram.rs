//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server's side, on ring's HMAC,
//! digests and PBKDF2 (already built for TLS).
//!
//! A credential is what the metadata quorum keeps for a user and mechanism: the salt, the
//! iteration count, `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`; never the password or the salted password.
//!
//! The exchange is two round trips: the client's first message (user and nonce) is answered with
//! the combined nonce, salt and iterations; its final message (the proof) is checked against
//! StoredKey and answered with the server's signature.

use super::{AuthFailure, Step};
use crate::cluster::image::ScramCredential;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;

/// Kafka's iteration bounds for both mechanisms.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// The two SCRAM mechanisms Kafka offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism's number in the credentials APIs (Kafka's `ScramMechanism` type: 1 and 2;
    /// 0 is UNKNOWN).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        hmac::sign(&key, data).as_ref().to_vec()
    }

    fn output_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with the mechanism's HMAC. `iterations` must be positive.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: i32) -> Vec<u8> {
        let rounds = NonZeroU32::new(iterations.max(1) as u32).expect("at least one round");
        let mut out = vec![0; self.output_len()];
        pbkdf2::derive(self.pbkdf2_algorithm(), rounds, salt, password, &mut out);
        out
    }

    /// The stored credential for a salted password (what AlterUserScramCredentials carries).
    pub fn credential_from_salted(
        self,
        salted_password: &[u8],
        salt: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// Whether `password` is the one `credential` was made from (PLAIN checked against the SCRAM
    /// store).
    pub fn verify_password(self, credential: &ScramCredential, password: &[u8]) -> bool {
        let salted = self.salted_password(password, &credential.salt, credential.iterations);
        let client_key = self.hmac(&salted, b"Client Key");
        constant_time_eq(&self.hash(&client_key), &credential.stored_key)
    }
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One SCRAM exchange on one connection.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

enum State {
    /// Waiting for client-first-message.
    First,
    /// Server-first-message sent; waiting for client-final-message.
    Final {
        user: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        credential: ScramCredential,
    },
    Done,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        ScramServer {
            mechanism,
            state: State::First,
        }
    }

    /// Takes the client's next message. `credential_of` looks a user's credential up for this
    /// mechanism; `server_nonce` is fresh randomness for this exchange.
    pub fn step(
        &mut self,
        message: &[u8],
        credential_of: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &[u8],
    ) -> Result<Step, AuthFailure> {
        let text = std::str::from_utf8(message)
            .map_err(|_| AuthFailure::new("Invalid SCRAM message: not UTF-8"))?;
        match std::mem::replace(&mut self.state, State::Done) {
            State::First => self.first(text, credential_of, server_nonce),
            State::Final {
                user,
                client_first_bare,
                server_first,
                nonce,
                credential,
            } => self.last(
                text,
                &user,
                &client_first_bare,
                &server_first,
                &nonce,
                &credential,
            ),
            State::Done => Err(AuthFailure::new(
                "Unexpected SCRAM message after the exchange completed",
            )),
        }
    }

    fn first(
        &mut self,
        text: &str,
        credential_of: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &[u8],
    ) -> Result<Step, AuthFailure> {
        let invalid =
            |why: &str| AuthFailure::new(format!("Invalid SCRAM client first message: {why}"));
        // gs2-header: channel binding flag, then an optional authzid, then the bare message.
        let (flag, rest) = text
            .split_once(',')
            .ok_or_else(|| invalid("no GS2 header"))?;
        match flag {
            "n" | "y" => {}
            _ => return Err(invalid("channel binding is not supported")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| invalid("no GS2 header"))?;
        let authzid = match authzid {
            "" => None,
            a => Some(
                a.strip_prefix("a=")
                    .map(decode_saslname)
                    .ok_or_else(|| invalid("bad authorization id"))??,
            ),
        };
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or_else(|| invalid("no user name"))?;
        let user = decode_saslname(user)?;
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("no nonce"))?;
        for extension in fields {
            // Kafka's only extension is `tokenauth` (delegation tokens), which spool does not
            // issue.
            if extension.starts_with("tokenauth=") && extension != "tokenauth=false" {
                return Err(AuthFailure::new(
                    "Authentication failed: delegation tokens are not supported",
                ));
            }
        }
        if authzid.as_ref().is_some_and(|a| *a != user) {
            return Err(AuthFailure::new(
                "Authentication failed: Client requested an authorization id that is different from username",
            ));
        }
        let Some(credential) = credential_of(&user) else {
            return Err(AuthFailure::new(
                "Authentication failed: Invalid user credentials",
            ));
        };
        let nonce = format!("{client_nonce}{}", URL_SAFE_NO_PAD.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        self.state = State::Final {
            user,
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
            credential,
        };
        Ok(Step::Challenge(reply))
    }

    fn last(
        &mut self,
        text: &str,
        user: &str,
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
        credential: &ScramCredential,
    ) -> Result<Step, AuthFailure> {
        let invalid =
            |why: &str| AuthFailure::new(format!("Invalid SCRAM client final message: {why}"));
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| invalid("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(|| invalid("no channel binding"))?;
        let binding = STANDARD
            .decode(binding)
            .map_err(|_| invalid("channel binding is not base64"))?;
        if !(binding.starts_with(b"n,") || binding.starts_with(b"y,")) {
            return Err(invalid("channel binding is not supported"));
        }
        let their_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| invalid("no nonce"))?;
        if their_nonce != nonce {
            return Err(AuthFailure::new(
                "Invalid SCRAM client final message: nonce does not match",
            ));
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| invalid("proof is not base64"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let m = self.mechanism;
        let signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(AuthFailure::new(
                "Authentication failed: Invalid client final message: bad proof length",
            ));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
            return Err(AuthFailure::new(
                "Authentication failed: Invalid user credentials",
            ));
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok(Step::Done {
            reply: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
            user: user.to_string(),
            expires_at_ms: None,
        })
    }
}

/// A `saslname` with its `=2C` and `=3D` escapes undone.
fn decode_saslname(name: &str) -> Result<String, AuthFailure> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(AuthFailure::new("Invalid SCRAM user name: bad escape")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a client through the exchange (RFC 5802 §3, the client's side written here from the
    /// RFC) and returns the server's final reply.
    fn client_exchange(
        m: ScramMechanism,
        user: &str,
        password: &str,
        client_nonce: &str,
        server_nonce: &[u8],
        credential: ScramCredential,
    ) -> (String, Result<Step, AuthFailure>) {
        let mut server = ScramServer::new(m);
        let bare = format!("n={user},r={client_nonce}");
        let first = format!("n,,{bare}");
        let Step::Challenge(server_first) = server
            .step(first.as_bytes(), |_| Some(credential.clone()), server_nonce)
            .unwrap()
        else {
            panic!("expected a challenge")
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for f in server_first.split(',') {
            if let Some(v) = f.strip_prefix("r=") {
                nonce = v;
            } else if let Some(v) = f.strip_prefix("s=") {
                salt = STANDARD.decode(v).unwrap();
            } else if let Some(v) = f.strip_prefix("i=") {
                iterations = v.parse().unwrap();
            }
        }
        let salted = m.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let last = format!("{without_proof},p={}", STANDARD.encode(proof));
        let server_key = m.hmac(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            STANDARD.encode(m.hmac(&server_key, auth_message.as_bytes()))
        );
        (
            expected,
            server.step(last.as_bytes(), |_| None, server_nonce),
        )
    }

    #[test]
    fn rfc7677_sha256_vector() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096
        // iterations, client nonce rOprNGfwEbeRWgbNEkqO, server nonce part
        // %hvYDpWUa2RaTCAfuxFIlj)hNlF$k0.
        let m = ScramMechanism::Sha256;
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let credential = m.credential_from_salted(&salted, &salt, 4096);
        // The RFC's exchange, with the RFC's combined nonce.
        let bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let final_message = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let mut server = ScramServer::new(m);
        server.state = State::Final {
            user: "user".into(),
            client_first_bare: bare.into(),
            server_first: server_first.into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            credential,
        };
        let Step::Done { reply, user, .. } = server
            .step(final_message.as_bytes(), |_| None, b"")
            .unwrap()
        else {
            panic!("expected success")
        };
        assert_eq!(user, "user");
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn first_message_answers_with_the_combined_nonce_salt_and_iterations() {
        let m = ScramMechanism::Sha256;
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential =
            m.credential_from_salted(&m.salted_password(b"pencil", &salt, 4096), &salt, 4096);
        let mut server = ScramServer::new(m);
        let Step::Challenge(reply) = server
            .step(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                |u| (u == "user").then(|| credential.clone()),
                b"\x01\x02\x03",
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqOAQID,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
    }

    #[test]
    fn both_mechanisms_accept_the_right_password_and_refuse_a_wrong_one() {
        for m in ScramMechanism::ALL {
            let salt = b"0123456789abcdef";
            let credential =
                m.credential_from_salted(&m.salted_password(b"secret", salt, 4096), salt, 4096);
            assert!(m.verify_password(&credential, b"secret"));
            assert!(!m.verify_password(&credential, b"Secret"));
            let (expected, result) =
                client_exchange(m, "alice", "secret", "abc", b"nonce", credential.clone());
            let Ok(Step::Done { reply, user, .. }) = result else {
                panic!("{m:?}: refused")
            };
            assert_eq!(
                (String::from_utf8(reply).unwrap(), user),
                (expected, "alice".into())
            );
            let (_, result) = client_exchange(m, "alice", "wrong", "abc", b"nonce", credential);
            let err = result.expect_err("a wrong password is refused");
            assert_eq!(
                err.message,
                "Authentication failed: Invalid user credentials"
            );
        }
    }

    #[test]
    fn malformed_and_unknown_are_refused() {
        let m = ScramMechanism::Sha512;
        for bad in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=a,r=b",
            b"n,,n=a",
            b"n,,n=a=zz,r=b",
            b"n,a=b,n=a,r=x",
            b"n,,n=a,r=x,tokenauth=true",
            b"\xff",
        ] {
            let mut server = ScramServer::new(m);
            let salt = b"s".to_vec();
            let cred = m.credential_from_salted(&[0; 64], &salt, 4096);
            assert!(
                server.step(bad, |_| Some(cred.clone()), b"n").is_err(),
                "{bad:?}"
            );
        }
        let mut server = ScramServer::new(m);
        let err = server
            .step(b"n,,n=nobody,r=x", |_| None, b"n")
            .err()
            .unwrap();
        assert_eq!(
            err.message,
            "Authentication failed: Invalid user credentials"
        );
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
    }
}
