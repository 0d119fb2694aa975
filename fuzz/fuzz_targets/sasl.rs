//! What a client sends before it is authenticated, through a SASL listener's authenticator
//! (SaslHandshake, SaslAuthenticate, bare v0 tokens; PLAIN and SCRAM), and the texts parsed
//! from configuration and certificates (JAAS, principal mapping rules, certificate subjects).
//! The first byte chooses which; for the authenticator the rest is a run of frames, each
//! preceded by a one-byte length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::cluster::image::MetadataImage;
use spool::server::principal::{subject_dn, PrincipalRules};
use spool::server::sasl::scram::ScramMechanism;
use spool::server::sasl::{jaas, Admission, Authenticator, Mechanism, SaslSettings};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

#[global_allocator]
static ALLOC: spool_fuzz::Bounded = spool_fuzz::Bounded;

static IMAGE: LazyLock<Arc<MetadataImage>> = LazyLock::new(|| {
    let mut image = MetadataImage::default();
    for m in ScramMechanism::ALL {
        let credential = m.credential_from_salted(&m.salted_password(b"pw", b"salt", 4096), b"salt", 4096);
        image
            .scram_credentials
            .entry("alice".into())
            .or_default()
            .insert(m.name().into(), credential);
    }
    Arc::new(image)
});

static SETTINGS: LazyLock<Arc<SaslSettings>> = LazyLock::new(|| {
    Arc::new(SaslSettings {
        mechanisms: vec![
            Mechanism::Plain,
            Mechanism::Scram(ScramMechanism::Sha256),
            Mechanism::Scram(ScramMechanism::Sha512),
        ],
        plain_users: [("bob".to_string(), "pw".to_string())].into(),
        max_reauth: Duration::from_secs(60),
        max_receive: 524288,
        failure_delay: Duration::ZERO,
    })
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    spool_fuzz::bounded(data, |_| match mode % 4 {
        0 => {
            let mut auth = Authenticator::new(SETTINGS.clone());
            let mut input = rest;
            while let Some((&len, after)) = input.split_first() {
                let len = (len as usize).min(after.len());
                let frame = bytes::Bytes::copy_from_slice(&after[..len]);
                input = &after[len..];
                if let Admission::Close { .. } = auth.admit(&frame, || IMAGE.clone()) {
                    break;
                }
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = jaas::parse(text);
            }
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let (rules, dn) = text.split_once('\n').unwrap_or((text, "CN=x"));
                if let Ok(rules) = PrincipalRules::parse(rules) {
                    let _ = rules.map(dn);
                }
            }
        }
        _ => {
            let _ = subject_dn(rest);
        }
    });
});
