//! DescribeUserScramCredentials and AlterUserScramCredentials: the SCRAM credentials kept in
//! the metadata quorum. The admin client salts the password itself; the quorum keeps only the
//! salt, the iterations, StoredKey and ServerKey derived from the salted password here.

use super::str_bytes;
use crate::broker::Broker;
use crate::cluster::command::MetadataCommand;
use crate::cluster::image::{MetadataImage, ScramCredential};
use crate::protocol::errors;
use crate::server::sasl::scram::{ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How long an alter waits for this node to apply what the quorum committed.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub mod describe {
    use super::*;
    use crate::protocol::routes::{Reply, RequestContext};
    use kafka_protocol::messages::describe_user_scram_credentials_response::{
        CredentialInfo, DescribeUserScramCredentialsResult,
    };
    use kafka_protocol::messages::{
        DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, ResponseKind,
    };

    pub async fn handle(
        broker: Arc<Broker>,
        request: DescribeUserScramCredentialsRequest,
        _: RequestContext,
    ) -> Reply {
        let image = broker.image();
        let wanted: Vec<String> = match request.users {
            Some(users) if !users.is_empty() => {
                users.into_iter().map(|u| u.name.to_string()).collect()
            }
            _ => image.scram_credentials.keys().cloned().collect(),
        };
        let mut seen = BTreeSet::new();
        let twice: BTreeSet<&String> = wanted.iter().filter(|u| !seen.insert(*u)).collect();
        let mut reported = BTreeSet::new();
        let mut results = Vec::new();
        for user in &wanted {
            if !reported.insert(user) {
                continue;
            }
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
            let result = if twice.contains(user) {
                result
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                    ))))
            } else {
                match describe_user(&image, user) {
                    Some(infos) => result.with_credential_infos(infos),
                    None => result
                        .with_error_code(ResponseError::ResourceNotFound.code())
                        .with_error_message(Some(str_bytes(format!(
                            "Attempt to describe a user credential that does not exist: {user}"
                        )))),
                }
            };
            results.push(result);
        }
        Reply::ready(ResponseKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsResponse::default().with_results(results),
        ))
    }

    fn describe_user(image: &MetadataImage, user: &str) -> Option<Vec<CredentialInfo>> {
        let credentials = image.scram_credentials.get(user)?;
        let infos: Vec<CredentialInfo> = ScramMechanism::ALL
            .into_iter()
            .filter_map(|m| {
                credentials.get(m.name()).map(|c| {
                    CredentialInfo::default()
                        .with_mechanism(m.kafka_type())
                        .with_iterations(c.iterations)
                })
            })
            .collect();
        (!infos.is_empty()).then_some(infos)
    }
}

pub mod alter {
    use super::*;
    use crate::protocol::routes::{Reply, RequestContext};
    use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
    use kafka_protocol::messages::{
        AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ResponseKind,
    };

    /// One user's changes, or the first reason to refuse them.
    #[derive(Default)]
    struct Change {
        deletions: Vec<String>,
        upsertions: BTreeMap<String, ScramCredential>,
        refused: Option<(ResponseError, &'static str)>,
    }

    pub async fn handle(
        broker: Arc<Broker>,
        request: AlterUserScramCredentialsRequest,
        _: RequestContext,
    ) -> Reply {
        // Users in the order they first appear, each with every change asked for.
        let mut order: Vec<String> = Vec::new();
        let mut changes: BTreeMap<String, Change> = BTreeMap::new();
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for d in &request.deletions {
            let c = change(&mut changes, &mut order, &mut touched, &d.name, d.mechanism);
            if let Some(m) = ScramMechanism::from_kafka_type(d.mechanism) {
                c.deletions.push(m.name().to_string());
            }
        }
        for u in &request.upsertions {
            let c = change(&mut changes, &mut order, &mut touched, &u.name, u.mechanism);
            let Some(m) = ScramMechanism::from_kafka_type(u.mechanism) else {
                continue;
            };
            let refusal = if u.iterations < MIN_ITERATIONS {
                Some((ResponseError::UnacceptableCredential, "Too few iterations"))
            } else if u.iterations > MAX_ITERATIONS {
                Some((ResponseError::UnacceptableCredential, "Too many iterations"))
            } else if u.salt.is_empty() || u.salted_password.is_empty() {
                Some((
                    ResponseError::UnacceptableCredential,
                    "A salt and a salted password are required",
                ))
            } else {
                None
            };
            if c.refused.is_none() {
                c.refused = refusal;
            }
            c.upsertions.insert(
                m.name().to_string(),
                m.credential_from_salted(&u.salted_password, &u.salt, u.iterations),
            );
        }
        Reply::Deferred(Box::pin(async move {
            let mut results = Vec::with_capacity(order.len());
            for user in order {
                let change = changes.remove(&user).unwrap_or_default();
                let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
                let outcome = match change.refused {
                    Some((error, message)) => Err((error, message.to_string())),
                    None => apply(&broker, &user, change.deletions, change.upsertions).await,
                };
                results.push(match outcome {
                    Ok(()) => result,
                    Err((error, message)) => result
                        .with_error_code(error.code())
                        .with_error_message(Some(str_bytes(message))),
                });
            }
            ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(results),
            )
        }))
    }

    /// The change of `user` (first seen: added to `order`), refused for the first problem of
    /// this deletion or upsertion of `mechanism`; a second alteration of one user refuses all
    /// of that user's.
    fn change<'a>(
        changes: &'a mut BTreeMap<String, Change>,
        order: &mut Vec<String>,
        touched: &mut BTreeSet<String>,
        user: &str,
        mechanism: i8,
    ) -> &'a mut Change {
        if !changes.contains_key(user) {
            order.push(user.to_string());
        }
        // As Kafka: a user is altered once per request, whatever the mechanisms.
        let twice = !touched.insert(user.to_string());
        let c = changes.entry(user.to_string()).or_default();
        let refusal = if user.is_empty() {
            Some((
                ResponseError::UnacceptableCredential,
                "Username must not be empty",
            ))
        } else if ScramMechanism::from_kafka_type(mechanism).is_none() {
            Some((
                ResponseError::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism",
            ))
        } else if twice {
            Some((
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request",
            ))
        } else {
            None
        };
        if c.refused.is_none() {
            c.refused = refusal;
        }
        c
    }

    async fn apply(
        broker: &Arc<Broker>,
        user: &str,
        deletions: Vec<String>,
        upsertions: BTreeMap<String, ScramCredential>,
    ) -> Result<(), (ResponseError, String)> {
        let expected = {
            let mut now = broker
                .image()
                .scram_credentials
                .get(user)
                .cloned()
                .unwrap_or_default();
            for d in &deletions {
                now.remove(d);
            }
            now.extend(upsertions.clone());
            now
        };
        let command = MetadataCommand::AlterScramCredentials {
            user: user.to_string(),
            deletions,
            upsertions,
        };
        match broker.replication.controller().propose(command).await {
            Ok(answer) => answer.into_result().map_err(|r| {
                let message = match r {
                    crate::cluster::Rejection::UnknownScramCredential { .. } => {
                        "Attempt to delete a user credential that does not exist".to_string()
                    }
                    other => other.to_string(),
                };
                (ResponseError::ResourceNotFound, message)
            })?,
            Err(e) => return Err((errors::quorum(&e), e.to_string())),
        }
        // New connections to this node use the credential as soon as the answer arrives.
        let mut rx = broker.replication.reconciled();
        let applied = tokio::time::timeout(
            APPLY_TIMEOUT,
            rx.wait_for(|image| {
                image
                    .scram_credentials
                    .get(user)
                    .cloned()
                    .unwrap_or_default()
                    == expected
            }),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        match applied {
            true => Ok(()),
            false => Err((
                ResponseError::RequestTimedOut,
                "the change was committed but not yet applied on this node".to_string(),
            )),
        }
    }
}
