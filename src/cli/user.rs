//! `spool user`: the SCRAM users kept in the metadata quorum, as Kafka's
//! `kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-512=[password=...]'`
//! manages them: `add` salts the password here and sends only the salted form
//! (AlterUserScramCredentials), `list` shows users, mechanisms and iterations
//! (DescribeUserScramCredentials), `delete` removes a user's credentials.

use super::client::{self, AdminArgs, Output};
use super::error_name;
use super::table;
use super::wire::{Connection, WireError};
use crate::server::sasl::scram::{ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use clap::{Args, Subcommand, ValueEnum};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};
use std::io::BufRead;
use thiserror::Error;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a SCRAM user, or change its password (one mechanism per call).
    Add(AddArgs),
    /// List SCRAM users with their mechanisms and iteration counts.
    List(ListArgs),
    /// Delete a user's SCRAM credentials (every mechanism, or the one given).
    Delete(DeleteArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MechanismArg {
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl MechanismArg {
    fn scram(self) -> ScramMechanism {
        match self {
            MechanismArg::ScramSha256 => ScramMechanism::Sha256,
            MechanismArg::ScramSha512 => ScramMechanism::Sha512,
        }
    }
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The user's name.
    pub name: String,
    #[arg(long, value_enum, default_value = "SCRAM-SHA-512")]
    pub mechanism: MechanismArg,
    /// The password; without it the first line of standard input is read.
    #[arg(long)]
    pub password: Option<String>,
    /// PBKDF2 iterations (Kafka's bounds: 4096..=16384).
    #[arg(long, default_value_t = 8192)]
    pub iterations: i32,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Only these users (all when none is named).
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    pub name: String,
    /// Only this mechanism's credential.
    #[arg(long, value_enum)]
    pub mechanism: Option<MechanismArg>,
}

#[derive(Debug, Error)]
pub enum UserError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("{what}: {}{}", error_name(*code), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Refused {
        what: String,
        code: i16,
        message: Option<String>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Output(#[from] client::ClientError),
}

fn refused(what: String, code: i16, message: Option<&StrBytes>) -> Result<(), UserError> {
    if code == 0 {
        return Ok(());
    }
    Err(UserError::Refused {
        what,
        code,
        message: message.map(|m| m.to_string()),
    })
}

pub fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => add(&args)?,
        UserCommand::List(args) => list(&args)?,
        UserCommand::Delete(args) => delete(&args)?,
    }
    Ok(())
}

fn connect(admin: &AdminArgs) -> Result<Connection, WireError> {
    Connection::open(&admin.client.bootstrap_server, admin.timeout())
}

fn add(args: &AddArgs) -> Result<(), UserError> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&args.iterations) {
        return Err(UserError::Invalid(format!(
            "--iterations {} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}",
            args.iterations
        )));
    }
    let password = match &args.password {
        Some(p) => p.clone(),
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| UserError::Invalid(format!("reading the password: {e}")))?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if password.is_empty() {
        return Err(UserError::Invalid("the password is empty".into()));
    }
    let m = args.mechanism.scram();
    let mut salt = [0u8; 32];
    {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| UserError::Invalid("no system randomness".into()))?;
    }
    let salted = m.salted_password(password.as_bytes(), &salt, args.iterations);
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(args.name.clone()))
            .with_mechanism(m.kafka_type())
            .with_iterations(args.iterations)
            .with_salt(salt.to_vec().into())
            .with_salted_password(salted.into()),
    ]);
    let response = connect(&args.admin)?.call(&request, 0)?;
    for r in &response.results {
        refused(
            format!("adding {} for user {}", m.name(), r.user),
            r.error_code,
            r.error_message.as_ref(),
        )?;
    }
    client::print(&format!("user {}: {} set\n", args.name, m.name()))?;
    Ok(())
}

fn list(args: &ListArgs) -> Result<(), UserError> {
    let users = (!args.names.is_empty()).then(|| {
        args.names
            .iter()
            .map(|n| UserName::default().with_name(StrBytes::from_string(n.clone())))
            .collect()
    });
    let response = connect(&args.admin)?.call(
        &DescribeUserScramCredentialsRequest::default().with_users(users),
        0,
    )?;
    refused(
        "listing users".into(),
        response.error_code,
        response.error_message.as_ref(),
    )?;
    let mut rows = Vec::new();
    for r in &response.results {
        refused(
            format!("user {}", r.user),
            r.error_code,
            r.error_message.as_ref(),
        )?;
        for c in &r.credential_infos {
            let mechanism = ScramMechanism::from_kafka_type(c.mechanism).map_or_else(
                || format!("UNKNOWN({})", c.mechanism),
                |m| m.name().to_string(),
            );
            rows.push(vec![
                r.user.to_string(),
                mechanism,
                c.iterations.to_string(),
            ]);
        }
    }
    match args.admin.output {
        Output::Human => client::print(&table::render(&["User", "Mechanism", "Iterations"], &rows))?,
        Output::Json => client::print_json(&Value::Array(
            rows.iter()
                .map(|r| json!({"user": r[0], "mechanism": r[1], "iterations": r[2].parse::<i32>().unwrap_or(0)}))
                .collect(),
        ))?,
    }
    Ok(())
}

fn delete(args: &DeleteArgs) -> Result<(), UserError> {
    let mut conn = connect(&args.admin)?;
    let mechanisms: Vec<ScramMechanism> = match args.mechanism {
        Some(m) => vec![m.scram()],
        None => {
            let response = conn.call(
                &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                    UserName::default().with_name(StrBytes::from_string(args.name.clone())),
                ])),
                0,
            )?;
            let mut found = Vec::new();
            for r in &response.results {
                refused(
                    format!("user {}", r.user),
                    r.error_code,
                    r.error_message.as_ref(),
                )?;
                found.extend(
                    r.credential_infos
                        .iter()
                        .filter_map(|c| ScramMechanism::from_kafka_type(c.mechanism)),
                );
            }
            found
        }
    };
    let request = AlterUserScramCredentialsRequest::default().with_deletions(
        mechanisms
            .iter()
            .map(|m| {
                ScramCredentialDeletion::default()
                    .with_name(StrBytes::from_string(args.name.clone()))
                    .with_mechanism(m.kafka_type())
            })
            .collect(),
    );
    let response = conn.call(&request, 0)?;
    for r in &response.results {
        refused(
            format!("deleting user {}", r.user),
            r.error_code,
            r.error_message.as_ref(),
        )?;
    }
    client::print(&format!("user {} deleted\n", args.name))?;
    Ok(())
}
