//! SASL on SASL_PLAINTEXT and SASL_SSL listeners, as Kafka's server authenticator does it.
//!
//! Before a client has authenticated it may send only ApiVersions, SaslHandshake and then
//! SaslAuthenticate, each frame at most `sasl.server.max.receive.size` bytes; anything else
//! closes the connection. SaslHandshake v0 switches the connection to raw SASL tokens (each a
//! size-prefixed frame with no Kafka header, answered the same way), v1 to tokens carried in
//! SaslAuthenticate requests. A failed authentication is answered with
//! SASL_AUTHENTICATION_FAILED and its reason after `connection.failed.authentication.delay.ms`,
//! then the connection is closed.
//!
//! With `connections.max.reauth.ms` set, a session lasts that long (KIP-368): clients that
//! speak SaslAuthenticate v1+ are told the lifetime and re-authenticate in place (a new
//! SaslHandshake and SaslAuthenticate on the same connection, as the same principal and with
//! the same mechanism); a request after the session expired closes the connection.

pub mod jaas;
pub mod plain;
pub mod scram;

use crate::cluster::image::{MetadataImage, ScramCredential};
use crate::protocol::codec::{self, RawHeader};
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use scram::{ScramMechanism, ScramServer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a mechanism says to a client's message.
#[derive(Debug)]
pub enum Step {
    /// A challenge; the exchange goes on.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; `reply` is the last server message (may be empty).
    Done {
        reply: Vec<u8>,
        user: String,
        /// When the credential itself expires (a token), in ms since the Unix epoch.
        expires_at_ms: Option<i64>,
    },
}

/// Why an authentication failed, in the words the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub message: String,
}

impl AuthFailure {
    pub fn new(message: impl Into<String>) -> Self {
        AuthFailure {
            message: message.into(),
        }
    }
}

/// A SASL mechanism spool serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            other => ScramMechanism::from_name(other).map(Mechanism::Scram),
        }
    }
}

/// One SASL listener's settings, resolved from the configuration at start-up.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`, in the order given.
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN's users and passwords, from the PLAIN login module's `user_<name>` options.
    pub plain_users: BTreeMap<String, String>,
    /// `connections.max.reauth.ms`; zero: sessions do not expire.
    pub max_reauth: Duration,
    /// `sasl.server.max.receive.size`.
    pub max_receive: usize,
    /// `connection.failed.authentication.delay.ms`.
    pub failure_delay: Duration,
}

/// The principal of a connection that has not authenticated, or needs not.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A SASL step's response: in Kafka framing, or (`raw`, after a v0 handshake) the bare token.
pub struct Answer {
    pub key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub body: ResponseKind,
    pub raw: bool,
}

/// What the session does with a frame.
pub enum Admission {
    /// Serve it as a request, as the authenticated principal.
    Serve,
    /// Answer it with a SASL step.
    Answer(Answer),
    /// Close the connection, logging `reason`, after answering with `answer` (if any) once
    /// `delay` has passed.
    Close {
        reason: String,
        answer: Option<Answer>,
        delay: Duration,
    },
}

enum State {
    /// Waiting for SaslHandshake (first, or a re-authentication once authenticated).
    Handshake,
    /// Exchanging tokens for `mechanism`; `raw` after a v0 handshake.
    Exchange {
        mechanism: Mechanism,
        server: MechanismServer,
        raw: bool,
    },
}

enum MechanismServer {
    Plain,
    Scram(ScramServer),
}

/// One connection's authentication.
pub struct Authenticator {
    settings: Arc<SaslSettings>,
    state: State,
    /// The authenticated user and mechanism, once authenticated.
    session: Option<(String, Mechanism)>,
    /// When the session ends (`connections.max.reauth.ms`, or the credential's own expiry).
    expires: Option<Instant>,
}

impl Authenticator {
    pub fn new(settings: Arc<SaslSettings>) -> Self {
        Authenticator {
            settings,
            state: State::Handshake,
            session: None,
            expires: None,
        }
    }

    /// Whether requests are served: authenticated, and not in a re-authentication.
    pub fn serving(&self) -> bool {
        self.session.is_some() && matches!(self.state, State::Handshake)
    }

    /// The principal requests are served as.
    pub fn principal(&self) -> Option<String> {
        self.session.as_ref().map(|(u, _)| format!("User:{u}"))
    }

    /// The largest frame to read next: small until authenticated.
    pub fn max_frame(&self, normal: usize) -> usize {
        if self.serving() {
            normal
        } else {
            self.settings.max_receive.min(normal)
        }
    }

    /// Whether the next frame is a raw token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Exchange { raw: true, .. })
    }

    /// Decides what a frame is: a request to serve, a SASL step to answer, or a reason to close.
    /// `image` gives the SCRAM credentials; it is asked only for a SASL step, never for a
    /// request that is served.
    pub fn admit(
        &mut self,
        frame: &Bytes,
        image: impl FnOnce() -> Arc<MetadataImage>,
    ) -> Admission {
        if self.expects_raw_token() {
            return self.authenticate(frame, 0, 0, image, true);
        }
        let Some(header) = RawHeader::peek(frame) else {
            return close(format!(
                "frame of {} bytes before authentication",
                frame.len()
            ));
        };
        let key = ApiKey::try_from(header.api_key).ok();
        match key {
            Some(ApiKey::SaslHandshake) | Some(ApiKey::SaslAuthenticate) => {}
            Some(ApiKey::ApiVersions) if self.session.is_none() => return Admission::Serve,
            _ if self.serving() => {
                if self.expires.is_some_and(|e| Instant::now() >= e) {
                    return close(format!(
                        "session of User:{} expired (connections.max.reauth.ms)",
                        self.session.as_ref().map(|(u, _)| u.as_str()).unwrap_or("")
                    ));
                }
                return Admission::Serve;
            }
            _ => {
                return Admission::Close {
                    reason: format!(
                        "Unexpected Kafka request of type {} during SASL handshake.",
                        key.map(codec::api_name).unwrap_or("unknown")
                    ),
                    answer: None,
                    delay: self.settings.failure_delay,
                }
            }
        }
        let decoded = match codec::decode(frame.clone()) {
            Ok(d) => d,
            Err(e) => return close(format!("bad SASL request: {e}")),
        };
        let (version, correlation_id) = (header.api_version, header.correlation_id);
        match decoded.body {
            RequestKind::SaslHandshake(r) => {
                self.handshake(r.mechanism.as_str(), version, correlation_id)
            }
            RequestKind::SaslAuthenticate(r) => {
                self.authenticate(&r.auth_bytes, version, correlation_id, image, false)
            }
            _ => close("unexpected request during SASL authentication".into()),
        }
    }

    fn handshake(&mut self, requested: &str, version: i16, correlation_id: i32) -> Admission {
        let enabled: Vec<StrBytes> = self
            .settings
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let answer = |code: i16| {
            ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default()
                    .with_error_code(code)
                    .with_mechanisms(enabled.clone()),
            )
        };
        if !matches!(self.state, State::Handshake) {
            return Admission::Close {
                reason: "SaslHandshake during an exchange".into(),
                answer: Some(Answer {
                    key: ApiKey::SaslHandshake,
                    version,
                    correlation_id,
                    body: answer(ResponseError::IllegalSaslState.code()),
                    raw: false,
                }),
                delay: Duration::ZERO,
            };
        }
        let mechanism =
            Mechanism::from_name(requested).filter(|m| self.settings.mechanisms.contains(m));
        let reauth_mismatch = match (&self.session, mechanism) {
            (Some((_, was)), Some(m)) => *was != m,
            _ => false,
        };
        let Some(mechanism) = mechanism.filter(|_| !reauth_mismatch) else {
            let reason = match &self.session {
                Some((_, was)) => format!(
                    "SASL mechanism '{requested}' requested by client is not supported for re-authentication of mechanism '{}'",
                    was.name()
                ),
                None => format!("Unsupported SASL mechanism {requested}"),
            };
            return Admission::Close {
                reason,
                answer: Some(Answer {
                    key: ApiKey::SaslHandshake,
                    version,
                    correlation_id,
                    body: answer(ResponseError::UnsupportedSaslMechanism.code()),
                    raw: false,
                }),
                delay: self.settings.failure_delay,
            };
        };
        let server = match mechanism {
            Mechanism::Plain => MechanismServer::Plain,
            Mechanism::Scram(m) => MechanismServer::Scram(ScramServer::new(m)),
        };
        self.state = State::Exchange {
            mechanism,
            server,
            raw: version == 0,
        };
        Admission::Answer(Answer {
            key: ApiKey::SaslHandshake,
            version,
            correlation_id,
            body: answer(0),
            raw: false,
        })
    }

    fn authenticate(
        &mut self,
        token: &[u8],
        version: i16,
        correlation_id: i32,
        image: impl FnOnce() -> Arc<MetadataImage>,
        raw: bool,
    ) -> Admission {
        // Raw-token clients are told nothing: the connection closes.
        let refusal = |error: ResponseError, reason: &str| {
            (!raw).then(|| Answer {
                key: ApiKey::SaslAuthenticate,
                version,
                correlation_id,
                body: ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_string(reason.to_string()))),
                ),
                raw: false,
            })
        };
        let failed = |this: &Self, reason: String, told: &str| Admission::Close {
            answer: refusal(ResponseError::SaslAuthenticationFailed, told),
            reason,
            delay: this.settings.failure_delay,
        };
        let State::Exchange {
            mechanism, server, ..
        } = &mut self.state
        else {
            let reason = "SaslAuthenticate before SaslHandshake".to_string();
            return Admission::Close {
                answer: refusal(ResponseError::IllegalSaslState, &reason),
                reason,
                delay: Duration::ZERO,
            };
        };
        let mechanism = *mechanism;
        let image = image();
        let image = &*image;
        let step = match server {
            MechanismServer::Plain => {
                plain::authenticate(token, &self.settings.plain_users, |u, m| {
                    scram_credential(image, u, m)
                })
            }
            MechanismServer::Scram(s) => {
                let m = match mechanism {
                    Mechanism::Scram(m) => m,
                    Mechanism::Plain => unreachable!("a SCRAM exchange is for a SCRAM mechanism"),
                };
                s.step(token, |u| scram_credential(image, u, m), &nonce())
            }
        };
        let step = match step {
            Ok(step) => step,
            Err(f) => {
                // As Kafka: PLAIN's reasons are told as they are; SCRAM's only as "invalid
                // credentials", except a refused authorization id.
                let told = match mechanism {
                    Mechanism::Scram(m) if !f.message.contains("authorization id") => format!(
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                        m.name()
                    ),
                    _ => f.message.clone(),
                };
                return failed(self, f.message, &told);
            }
        };
        let (reply, lifetime_ms) = match step {
            Step::Challenge(bytes) => (bytes, 0),
            Step::Done {
                reply,
                user,
                expires_at_ms,
            } => {
                if let Some((was, _)) = &self.session {
                    if *was != user {
                        let reason = format!(
                            "Cannot change principals during re-authentication from User.{was}: User.{user}"
                        );
                        return failed(self, reason.clone(), &reason);
                    }
                }
                let lifetime_ms = self.session_lifetime_ms(expires_at_ms);
                self.expires = (lifetime_ms > 0)
                    .then(|| Instant::now() + Duration::from_millis(lifetime_ms as u64));
                self.session = Some((user, mechanism));
                self.state = State::Handshake;
                // Only v1+ clients are told; v0 ones are closed when the session ends.
                (reply, if version >= 1 { lifetime_ms } else { 0 })
            }
        };
        Admission::Answer(Answer {
            key: ApiKey::SaslAuthenticate,
            version,
            correlation_id,
            body: ResponseKind::SaslAuthenticate(
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(reply))
                    .with_session_lifetime_ms(lifetime_ms),
            ),
            raw,
        })
    }

    /// The session's lifetime in ms (0: unbounded): the shorter of `connections.max.reauth.ms`
    /// (when set) and the time left to the credential's own expiry (a token's), as Kafka
    /// computes it.
    fn session_lifetime_ms(&self, expires_at_ms: Option<i64>) -> i64 {
        let max = self.settings.max_reauth.as_millis() as i64;
        let left = expires_at_ms.map(|at| (at - crate::model::now_ms()).max(1));
        match (max > 0, left) {
            (true, Some(left)) => max.min(left),
            (true, None) => max,
            (false, Some(left)) => left,
            (false, None) => 0,
        }
    }
}

fn close(reason: String) -> Admission {
    Admission::Close {
        reason,
        answer: None,
        delay: Duration::ZERO,
    }
}

/// A user's SCRAM credential for `mechanism` in the metadata image.
fn scram_credential(
    image: &MetadataImage,
    user: &str,
    mechanism: ScramMechanism,
) -> Option<ScramCredential> {
    image
        .scram_credentials
        .get(user)?
        .get(mechanism.name())
        .cloned()
}

/// Fresh randomness for a SCRAM server nonce.
fn nonce() -> [u8; 18] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 18];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    bytes
}
