//! IncrementalAlterConfigs (KIP-339) through librdkafka's C API.
//!
//! The rdkafka crate wraps only the legacy AlterConfigs, which replaces a resource's whole set
//! of configs: a `--delete-config` built on it would be a read-modify-write that silently
//! undoes any change made between the read and the write. librdkafka itself has the
//! incremental call, so this module calls it directly. It is the only `unsafe` outside the
//! log's mmap: each pointer it creates is owned by an [`Owned`] guard and destroyed before
//! the function returns, and every string handed to librdkafka is copied by it.

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::RDKafkaErrorCode;
use std::ffi::{c_char, c_int, CStr, CString};
use std::time::Duration;
use thiserror::Error;

/// One change to a topic's configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set `name` to `value` on the topic.
    Set(String, String),
    /// Remove the topic's own value of `name`, going back to the default.
    Delete(String),
}

#[derive(Debug, Error)]
pub enum AlterConfigError {
    #[error(
        "the broker at {bootstrap} does not support altering configs \
         (IncrementalAlterConfigs); topic `{topic}` is unchanged"
    )]
    Unsupported { bootstrap: String, topic: String },
    #[error("`{name}` (a config of topic `{topic}`) cannot be passed to librdkafka: {source}")]
    Nul {
        topic: String,
        name: String,
        source: std::ffi::NulError,
    },
    #[error("cannot alter config `{name}` of topic `{topic}`: {reason}")]
    BadOp {
        topic: String,
        name: String,
        reason: String,
    },
    #[error("altering the configs of topic `{topic}` failed: {code}{}", detail(.message))]
    Failed {
        topic: String,
        code: RDKafkaErrorCode,
        message: String,
    },
    #[error("the broker at {bootstrap} did not answer within {timeout_ms} ms; topic `{topic}` may or may not be changed")]
    Timeout {
        bootstrap: String,
        topic: String,
        timeout_ms: u64,
    },
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// A librdkafka object and the function that destroys it.
struct Owned<T> {
    ptr: *mut T,
    destroy: unsafe extern "C" fn(*mut T),
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: `ptr` came from the matching librdkafka constructor, is not shared, and
            // is destroyed exactly once, here.
            unsafe { (self.destroy)(self.ptr) }
        }
    }
}

/// Applies `ops` to `topic` in one IncrementalAlterConfigs request, waiting up to `timeout`.
pub fn incremental_alter_topic<C: ClientContext>(
    client: &Client<C>,
    bootstrap: &str,
    topic: &str,
    ops: &[ConfigOp],
    timeout: Duration,
) -> Result<(), AlterConfigError> {
    let rk = client.native_ptr();
    let c_topic = c_string(topic, topic)?;
    let timeout_ms = timeout.as_millis().min(i32::MAX as u128 - 10_000) as c_int;
    // SAFETY: `c_topic` is a valid C string for the call; librdkafka copies it.
    let resource = Owned {
        ptr: unsafe {
            rd::rd_kafka_ConfigResource_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                c_topic.as_ptr(),
            )
        },
        destroy: rd::rd_kafka_ConfigResource_destroy,
    };
    for op in ops {
        add_op(&resource, topic, op)?;
    }
    // SAFETY: `rk` is the live client handle borrowed from `client` for this whole function.
    let options = Owned {
        ptr: unsafe {
            rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
            )
        },
        destroy: rd::rd_kafka_AdminOptions_destroy,
    };
    let mut errstr: [c_char; 256] = [0; 256];
    // SAFETY: `options` is live and `errstr` is a writable buffer of the length given. The
    // only failure is a timeout out of range, which the clamp above rules out.
    unsafe {
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.ptr,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    // SAFETY: as above, `rk` is live.
    let queue = Owned {
        ptr: unsafe { rd::rd_kafka_queue_new(rk) },
        destroy: rd::rd_kafka_queue_destroy,
    };
    let mut resources = [resource.ptr];
    // SAFETY: every pointer is live; librdkafka copies the resources and options and posts
    // one result event on `queue`.
    unsafe {
        rd::rd_kafka_IncrementalAlterConfigs(
            rk,
            resources.as_mut_ptr(),
            resources.len(),
            options.ptr,
            queue.ptr,
        )
    };
    // librdkafka fails the request itself after the request timeout; the margin only covers
    // its bookkeeping.
    // SAFETY: `queue` is live; the event returned (or null) is ours to destroy.
    let event = Owned {
        ptr: unsafe { rd::rd_kafka_queue_poll(queue.ptr, timeout_ms + 5_000) },
        destroy: rd::rd_kafka_event_destroy,
    };
    result_of(&event, bootstrap, topic, timeout_ms as u64)
}

/// The outcome carried by an IncrementalAlterConfigs result event (null: none came).
fn result_of(
    event: &Owned<rd::rd_kafka_event_t>,
    bootstrap: &str,
    topic: &str,
    timeout_ms: u64,
) -> Result<(), AlterConfigError> {
    use rd::rd_kafka_resp_err_t as Code;
    let fail = |code: Code, message: String| failure(bootstrap, topic, timeout_ms, code, message);
    if event.ptr.is_null() {
        return Err(fail(Code::RD_KAFKA_RESP_ERR__TIMED_OUT, String::new()));
    }
    // SAFETY: `event` is a live event; the strings and arrays it returns live as long as it
    // does and are copied before it is destroyed.
    unsafe {
        let code = rd::rd_kafka_event_error(event.ptr);
        if code != Code::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(fail(code, text(rd::rd_kafka_event_error_string(event.ptr))));
        }
        let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event.ptr);
        if result.is_null() {
            let what = "librdkafka returned no IncrementalAlterConfigs result";
            return Err(fail(Code::RD_KAFKA_RESP_ERR__FAIL, what.into()));
        }
        let mut count = 0usize;
        let results = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
        for i in 0..count {
            let r = *results.add(i);
            let code = rd::rd_kafka_ConfigResource_error(r);
            if code != Code::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(fail(
                    code,
                    text(rd::rd_kafka_ConfigResource_error_string(r)),
                ));
            }
        }
    }
    Ok(())
}

fn add_op(
    resource: &Owned<rd::rd_kafka_ConfigResource_t>,
    topic: &str,
    op: &ConfigOp,
) -> Result<(), AlterConfigError> {
    use rd::rd_kafka_AlterConfigOpType_t as OpType;
    let (name, kind, value) = match op {
        ConfigOp::Set(n, v) => (n, OpType::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET, Some(v)),
        ConfigOp::Delete(n) => (n, OpType::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE, None),
    };
    let c_name = c_string(topic, name)?;
    let c_value = value.map(|v| c_string(topic, v)).transpose()?;
    let value_ptr = c_value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
    // SAFETY: `resource` is live, the strings are valid for the call and copied by librdkafka;
    // the returned error (or null) is ours to destroy.
    unsafe {
        let error = rd::rd_kafka_ConfigResource_add_incremental_config(
            resource.ptr,
            c_name.as_ptr(),
            kind,
            value_ptr,
        );
        if error.is_null() {
            return Ok(());
        }
        let reason = text(rd::rd_kafka_error_string(error));
        rd::rd_kafka_error_destroy(error);
        Err(AlterConfigError::BadOp {
            topic: topic.to_string(),
            name: name.clone(),
            reason,
        })
    }
}

fn failure(
    bootstrap: &str,
    topic: &str,
    timeout_ms: u64,
    code: rd::rd_kafka_resp_err_t,
    message: String,
) -> AlterConfigError {
    let code = RDKafkaErrorCode::from(code);
    match code {
        // librdkafka checks ApiVersions first and fails locally; a broker that advertises
        // the API but refuses this version says UNSUPPORTED_VERSION.
        RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion => {
            AlterConfigError::Unsupported {
                bootstrap: bootstrap.to_string(),
                topic: topic.to_string(),
            }
        }
        RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut => {
            AlterConfigError::Timeout {
                bootstrap: bootstrap.to_string(),
                topic: topic.to_string(),
                timeout_ms,
            }
        }
        _ => AlterConfigError::Failed {
            topic: topic.to_string(),
            code,
            message,
        },
    }
}

fn c_string(topic: &str, s: &str) -> Result<CString, AlterConfigError> {
    CString::new(s).map_err(|source| AlterConfigError::Nul {
        topic: topic.to_string(),
        name: s.to_string(),
        source,
    })
}

/// Copies a C string owned by librdkafka; null is "".
///
/// # Safety
/// `ptr` is null or a valid NUL-terminated string that outlives this call.
unsafe fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: the caller guarantees a valid NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}
