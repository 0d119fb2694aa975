//! `spool group reset-offsets`: work out new committed offsets for a group, print the plan,
//! and commit it only with `--execute` and only while the group has no active members (as
//! Kafka's `kafka-consumer-groups.sh --reset-offsets` does).

use super::client::{self, AdminArgs, ClientError, Output};
use super::group::{self, GroupError};
use super::table;
use clap::{ArgGroup, Args};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
#[command(group(ArgGroup::new("target").required(true)
    .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
pub struct ResetArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[arg(long)]
    group: String,
    /// A topic, or topic:partition,partition,...; repeatable.
    #[arg(long, value_name = "TOPIC[:P,...]")]
    topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    /// To each partition's log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To each partition's log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (kept within each partition's log start and end).
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// To the first record at or after this time: ISO-8601 with a zone, e.g.
    /// 2026-01-02T03:04:05Z, 2026-01-02T03:04:05.250+01:00.
    #[arg(long, value_name = "DATETIME", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
    /// Move each committed offset by N (negative: back), kept within the log.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Commit the new offsets (without it, only print the plan).
    #[arg(long)]
    execute: bool,
    /// Only print the plan (the default; for scripts that say so).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
}

#[derive(Debug, Error)]
pub enum ResetError {
    #[error(
        "offsets of group `{group}` can only be reset while it has no active members, \
         but it is {state} with {members} member(s); stop its consumers first"
    )]
    Active {
        group: String,
        state: String,
        members: usize,
    },
    #[error("`{raw}` is not TOPIC or TOPIC:PARTITION,...: {source}")]
    BadTopic {
        raw: String,
        source: std::num::ParseIntError,
    },
    #[error("cannot shift the offset of topic `{topic}` partition {partition}: group `{group}` has no committed offset there")]
    NoCommittedOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    #[error("group `{group}` has no committed offsets (--all-topics found nothing to reset)")]
    NothingToReset { group: String },
}

pub fn run(args: &ResetArgs) -> Result<(), GroupError> {
    let (admin, metadata) = args.admin.admin_with_metadata()?;
    let state = group::group_state(&args.admin, admin.inner(), &args.group)?;
    if args.execute && !state.is_inactive() {
        return Err(ResetError::Active {
            group: args.group.clone(),
            state: state.state,
            members: state.members.len(),
        }
        .into());
    }
    let consumer = group::offsets_consumer(&args.admin, &args.group)?;
    let committed = group::committed_offsets(&args.admin, &consumer, &metadata, &args.group)?;
    let partitions = if args.all_topics {
        let all: Vec<(String, i32)> = committed.keys().cloned().collect();
        if all.is_empty() {
            return Err(ResetError::NothingToReset {
                group: args.group.clone(),
            }
            .into());
        }
        all
    } else {
        chosen_partitions(&metadata, &args.topic)?
    };
    let plan = plan(args, admin.inner(), &consumer, &committed, &partitions)?;
    if args.execute {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &plan {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| {
                    GroupError::request(&args.admin, &args.group, "build the commit", e)
                })?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| GroupError::request(&args.admin, &args.group, "commit offsets", e))?;
    }
    print_plan(args, &plan)?;
    Ok(())
}

/// The partitions named by `--topic` arguments, each checked against the metadata.
fn chosen_partitions(
    metadata: &Metadata,
    specs: &[String],
) -> Result<Vec<(String, i32)>, GroupError> {
    let mut chosen = Vec::new();
    for raw in specs {
        let (topic, wanted) = match raw.split_once(':') {
            None => (raw.as_str(), None),
            Some((t, ps)) => {
                let ps: Result<Vec<i32>, _> =
                    ps.split(',').map(|p| p.trim().parse::<i32>()).collect();
                let ps = ps.map_err(|source| ResetError::BadTopic {
                    raw: raw.clone(),
                    source,
                })?;
                (t, Some(ps))
            }
        };
        let existing = client::partitions(metadata, topic)?;
        for p in wanted.unwrap_or_else(|| existing.clone()) {
            if !existing.contains(&p) {
                return Err(ClientError::UnknownPartition {
                    topic: topic.to_string(),
                    partition: p,
                    count: existing.len(),
                }
                .into());
            }
            chosen.push((topic.to_string(), p));
        }
    }
    chosen.sort_unstable();
    chosen.dedup();
    Ok(chosen)
}

/// The new offset of each partition.
fn plan(
    args: &ResetArgs,
    client: &rdkafka::client::Client<client::CliContext>,
    consumer: &rdkafka::consumer::BaseConsumer<client::CliContext>,
    committed: &BTreeMap<(String, i32), i64>,
    partitions: &[(String, i32)],
) -> Result<BTreeMap<(String, i32), i64>, GroupError> {
    let by_time = match args.to_datetime {
        Some(ms) => offsets_for_time(args, consumer, partitions, ms)?,
        None => BTreeMap::new(),
    };
    let mut plan = BTreeMap::new();
    for (topic, partition) in partitions {
        let key = (topic.clone(), *partition);
        let (low, high) = group::watermarks(&args.admin, client, topic, *partition)?;
        let target = if args.to_earliest {
            low
        } else if args.to_latest {
            high
        } else if let Some(n) = args.to_offset {
            n
        } else if let Some(shift) = args.shift_by {
            let current = committed
                .get(&key)
                .ok_or_else(|| ResetError::NoCommittedOffset {
                    group: args.group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                })?;
            current.saturating_add(shift)
        } else {
            // --to-datetime: no record at or after the time means the log end.
            by_time.get(&key).copied().unwrap_or(high)
        };
        plan.insert(key, target.clamp(low, high));
    }
    Ok(plan)
}

fn offsets_for_time(
    args: &ResetArgs,
    consumer: &rdkafka::consumer::BaseConsumer<client::CliContext>,
    partitions: &[(String, i32)],
    ms: i64,
) -> Result<BTreeMap<(String, i32), i64>, GroupError> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(ms))
            .map_err(|e| {
                GroupError::request(&args.admin, &args.group, "look up offsets by time", e)
            })?;
    }
    let found = consumer
        .offsets_for_times(tpl, args.admin.timeout())
        .map_err(|e| GroupError::request(&args.admin, &args.group, "look up offsets by time", e))?;
    Ok(group::concrete_offsets(&found))
}

fn print_plan(args: &ResetArgs, plan: &BTreeMap<(String, i32), i64>) -> Result<(), ClientError> {
    match args.admin.output {
        Output::Human => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|((t, p), o)| {
                    vec![args.group.clone(), t.clone(), p.to_string(), o.to_string()]
                })
                .collect();
            client::print(&table::render(
                &["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
                &rows,
            ))?;
            if !args.execute {
                eprintln!("Dry run: nothing was committed. Add --execute to commit these offsets.");
            }
        }
        Output::Json => {
            let partitions: Vec<Value> = plan
                .iter()
                .map(|((t, p), o)| json!({"topic": t, "partition": p, "new_offset": o}))
                .collect();
            client::print_json(&json!({
                "group": args.group,
                "executed": args.execute,
                "partitions": partitions,
            }))?;
        }
    }
    Ok(())
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)`.
pub fn parse_datetime(raw: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("`{raw}` is not an ISO-8601 date-time with a zone: {why}");
    let (date, rest) = raw
        .split_once('T')
        .ok_or_else(|| bad("no `T` between date and time"))?;
    let zone_at = rest
        .find(['Z', 'z', '+', '-'])
        .ok_or_else(|| bad("no zone (add Z for UTC, or an offset like +01:00)"))?;
    let (time, zone) = rest.split_at(zone_at);
    let number = |s: &str, what: &str| {
        s.parse::<i64>()
            .map_err(|e| bad(&format!("{what} `{s}`: {e}")))
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d.as_slice() else {
        return Err(bad("date is not YYYY-MM-DD"));
    };
    let (y, mo, da) = (number(y, "year")?, number(mo, "month")?, number(da, "day")?);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<&str> = hms.split(':').collect();
    let [h, mi, s] = t.as_slice() else {
        return Err(bad("time is not HH:MM:SS"));
    };
    let (h, mi, s) = (
        number(h, "hour")?,
        number(mi, "minute")?,
        number(s, "second")?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || s > 60 {
        return Err(bad("a field is out of range"));
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
        number(&digits, "fraction of a second")?
    };
    let offset_minutes = match zone {
        "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return Err(bad("zone offset is not ±HH:MM"));
            }
            sign * (number(&digits[..2], "zone hours")? * 60
                + number(&digits[2..], "zone minutes")?)
        }
    };
    let days = days_from_civil(y, mo, da);
    let seconds = days * 86_400 + h * 3600 + mi * 60 + s - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_with_zones_parse_to_epoch_millis() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_datetime("2026-01-02T03:04:05Z"),
            Ok(1_767_323_045_000)
        );
        assert_eq!(
            parse_datetime("2026-01-02T04:04:05.25+01:00"),
            Ok(1_767_323_045_250)
        );
        assert_eq!(
            parse_datetime("2026-01-01T22:04:05-0500"),
            Ok(1_767_323_045_000)
        );
        assert_eq!(parse_datetime("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
    }

    #[test]
    fn datetimes_without_a_zone_or_malformed_are_refused() {
        assert!(parse_datetime("2026-01-02T03:04:05")
            .unwrap_err()
            .contains("no zone"));
        assert!(parse_datetime("2026-01-02").is_err());
        assert!(parse_datetime("2026-13-02T03:04:05Z").is_err());
        assert!(parse_datetime("2026-01-02T03:04Z").is_err());
        assert!(parse_datetime("2026-01-02T03:04:05+1").is_err());
    }
}
