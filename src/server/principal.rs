//! The principal of a TLS client: its certificate's subject as an RFC 2253 distinguished name
//! (the form Java's `X500Principal.getName()` gives Kafka), mapped by
//! `ssl.principal.mapping.rules` as Kafka's `SslPrincipalMapper` does: rules in order,
//! `RULE:<regex>/<replacement>/[L|U]` (the regex must match the whole name; `$1` refers to its
//! groups; L or U lowercases or uppercases the result) or `DEFAULT` (the name as it is). A name
//! no rule matches has no principal, and the connection is refused.
//!
//! The certificate has been verified by rustls before it is read here; its reading is still
//! bounded by its own bytes.

use regex::Regex;

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Debug, Clone)]
pub struct PrincipalRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

impl PrincipalRules {
    /// Parses a comma-separated rule list; commas inside a rule's pattern or replacement are
    /// part of it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| format!("rule `{rest}`: no `/` after the pattern"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| format!("rule `{rest}`: no `/` after the replacement"))?;
                let (case, after) = match after.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                    _ => (None, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("rule pattern `{pattern}`: {e}"))?;
                rules.push(Rule::Replace {
                    pattern,
                    replacement: replacement.to_string(),
                    case,
                });
                rest = after;
            } else {
                return Err(format!(
                    "`{rest}` is neither DEFAULT nor RULE:pattern/replacement/[LU]"
                ));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("`{rest}`: rules are separated by commas")),
            }
        }
        if rules.is_empty() {
            return Err("no rule".into());
        }
        Ok(PrincipalRules { rules })
    }

    /// The user name for a distinguished name, or `None` when no rule applies.
    pub fn map(&self, dn: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(dn.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if !pattern.is_match(dn) {
                        continue;
                    }
                    let mapped = pattern.replace(dn, replacement.as_str()).into_owned();
                    let mapped = match case {
                        Some('L') => mapped.to_lowercase(),
                        Some('U') => mapped.to_uppercase(),
                        _ => mapped,
                    };
                    return (!mapped.is_empty()).then_some(mapped);
                }
            }
        }
        None
    }
}

/// The text before the first `/` not escaped by a backslash, and what follows it.
fn until_slash(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '/' if !escaped => return Some((&s[..i], &s[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

/// One DER element: its tag, its contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The subject of a DER certificate as an RFC 2253 name, or `None` if it does not parse.
pub fn subject_dn(cert: &[u8]) -> Option<String> {
    let (0x30, certificate, _) = element(cert)? else {
        return None;
    };
    let (0x30, mut tbs, _) = element(certificate)? else {
        return None;
    };
    // [0] version (optional), serial number, signature algorithm, issuer, validity, subject.
    if tbs.first() == Some(&0xa0) {
        tbs = element(tbs)?.2;
    }
    for _ in 0..4 {
        tbs = element(tbs)?.2;
    }
    let (0x30, mut name, _) = element(tbs)? else {
        return None;
    };
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let (0x31, mut set, rest) = element(name)? else {
            return None;
        };
        name = rest;
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let (0x30, mut pair, rest) = element(set)? else {
                return None;
            };
            set = rest;
            let (0x06, oid, after) = element(pair)? else {
                return None;
            };
            pair = after;
            let value_der = pair;
            let (tag, value, _) = element(pair)?;
            let oid = dotted(oid)?;
            attributes.push(match keyword(&oid) {
                Some(k) => format!("{k}={}", escape(&string_value(tag, value)?)),
                None => format!("{oid}=#{}", hex(value_der)),
            });
        }
        rdns.push(attributes.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn dotted(oid: &[u8]) -> Option<String> {
    let (&first, rest) = oid.split_first()?;
    let mut parts = vec![
        (first / 40).min(2) as u64,
        (first as u64) - 40 * (first / 40).min(2) as u64,
    ];
    let mut value: u64 = 0;
    for b in rest {
        value = value.checked_mul(128)? | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            parts.push(value);
            value = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The keywords RFC 2253 (and Java) print by name.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn string_value(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, NumericString, VisibleString.
        0x0c | 0x13 | 0x16 | 0x12 | 0x1a => String::from_utf8(value.to_vec()).ok(),
        // TeletexString, read as Latin-1.
        0x14 => Some(value.iter().map(|b| *b as char).collect()),
        // BMPString: UTF-16BE.
        0x1e if value.len().is_multiple_of(2) => String::from_utf16(
            &value
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )
        .ok(),
        // UniversalString: UTF-32BE.
        0x1c if value.len().is_multiple_of(4) => value
            .chunks(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rule_examples() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=([^,]*),O=(.*)$/$1@$2/, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules
                .map("CN=Kafka-Client,OU=ServiceUsers,O=Acme,C=US")
                .as_deref(),
            Some("kafka-client")
        );
        assert_eq!(rules.map("CN=bob,O=acme").as_deref(), Some("bob@acme"));
        assert_eq!(rules.map("OU=x").as_deref(), Some("OU=x"));
        let strict = PrincipalRules::parse("RULE:^CN=(.*)$/$1/U").unwrap();
        assert_eq!(strict.map("CN=a").as_deref(), Some("A"));
        assert_eq!(strict.map("OU=a"), None);
        assert!(PrincipalRules::parse("DEFAULT")
            .unwrap()
            .map("CN=x")
            .is_some());
        for bad in [
            "",
            "RULE:abc",
            "RULE:a/b",
            "NOPE",
            "RULE:(/x/",
            "DEFAULT DEFAULT",
        ] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad}");
        }
        // A comma inside a pattern belongs to it; an escaped slash too.
        let r = PrincipalRules::parse(r"RULE:^CN=a\/b,O=(.*)$/$1/").unwrap();
        assert_eq!(r.map("CN=a/b,O=z").as_deref(), Some("z"));
    }

    /// One attribute of a name: its OID's bytes, the string's tag, the string.
    type Attribute<'a> = (&'a [u8], u8, &'a [u8]);

    /// A certificate with the given subject RDNs (each a list of attributes).
    fn cert_with_subject(rdns: &[&[Attribute]]) -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if content.len() < 128 {
                out.push(content.len() as u8);
            } else {
                out.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
            }
            out.extend_from_slice(content);
            out
        }
        let mut name = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, tag, value) in rdn.iter() {
                let mut pair = tlv(0x06, oid);
                pair.extend(tlv(*tag, value));
                set.extend(tlv(0x30, &pair));
            }
            name.extend(tlv(0x31, &set));
        }
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[1, 2, 3]));
        tbs.extend(tlv(0x30, &tlv(0x06, &[0x2a, 0x86, 0x48])));
        tbs.extend(tlv(0x30, &[]));
        tbs.extend(tlv(0x30, &[]));
        tbs.extend(tlv(0x30, &name));
        tbs.extend(tlv(0x30, &[]));
        let mut cert = tlv(0x30, &tbs);
        cert.extend(tlv(0x30, &[]));
        tlv(0x30, &cert)
    }

    #[test]
    fn subjects_read_as_java_prints_them() {
        let cert = cert_with_subject(&[
            &[(&[0x55, 0x04, 0x06], 0x13, b"US")],
            &[(&[0x55, 0x04, 0x0a], 0x0c, b"Acme, Inc.")],
            &[
                (&[0x55, 0x04, 0x0b], 0x0c, b"eng"),
                (&[0x55, 0x04, 0x0b], 0x0c, b"ops"),
            ],
            &[(&[0x55, 0x04, 0x03], 0x0c, b"client")],
            &[(
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
                0x16,
                b"a@b",
            )],
        ]);
        assert_eq!(
            subject_dn(&cert).unwrap(),
            "1.2.840.113549.1.9.1=#1603614062,CN=client,OU=eng+OU=ops,O=Acme\\, Inc.,C=US"
        );
        // Truncated anywhere: no name, no panic.
        for cut in 0..cert.len() {
            let _ = subject_dn(&cert[..cut]);
        }
        assert!(subject_dn(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }
}
