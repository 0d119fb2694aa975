//! Kafka's listener settings: `listeners` (`NAME://host:port,...`, or spool's plain
//! `host:port`, which is the PLAINTEXT listener), `advertised.listeners`,
//! `listener.security.protocol.map`, `controller.listener.names` and
//! `inter.broker.listener.name`, validated as Kafka validates them.
//!
//! A node serves every listener `listeners` names that is not a controller listener (each a
//! client listener with its own advertised address), plus the controller listener when
//! `controller.listener.names` names one of `listeners`. Client listeners are PLAINTEXT, SSL,
//! SASL_PLAINTEXT or SASL_SSL; the listeners nodes use between themselves (the controller's and
//! the inter-broker one) are PLAINTEXT until node-to-node TLS lands.

use std::collections::BTreeMap;

/// One listener: its name, and where it binds or is advertised (`host` empty: every address).
/// Nodes register their advertised ones in the metadata, hence serde.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `host:port` to bind, the empty host as every IPv4 address.
    pub fn bind_addr(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// What this node listens on and tells clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPlan {
    /// The client listeners, in the order `listeners` gives them; never empty.
    pub clients: Vec<ClientListener>,
    /// Which of `clients` other nodes use (`inter.broker.listener.name`; by default the one
    /// named PLAINTEXT, else the first).
    pub inter_broker: usize,
    /// The listener `controller.listener.names` names, when it is one of `listeners`.
    pub controller: Option<Endpoint>,
}

/// A client listener: where it binds, and what `advertised.listeners` says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientListener {
    pub bind: Endpoint,
    pub advertised: Option<Endpoint>,
    /// Its security protocol: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: String,
}

impl ClientListener {
    /// Whether connections begin with a TLS handshake (SSL, SASL_SSL).
    pub fn is_tls(&self) -> bool {
        matches!(self.protocol.as_str(), "SSL" | "SASL_SSL")
    }

    /// Whether clients must authenticate with SASL before anything else (SASL_*).
    pub fn is_sasl(&self) -> bool {
        self.protocol.starts_with("SASL_")
    }
}

impl ListenerPlan {
    /// The first client listener, the one a single-listener node is known by.
    pub fn first(&self) -> &ClientListener {
        &self.clients[0]
    }
}

/// Why a listener setting was refused; the message names the setting and the value.
pub type Refusal = (&'static str, String);

fn parse_list(key: &'static str, raw: &str) -> Result<Vec<Endpoint>, Refusal> {
    let mut out: Vec<Endpoint> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, addr) = match entry.split_once("://") {
            Some((name, addr)) => (name.trim().to_ascii_uppercase(), addr),
            None => ("PLAINTEXT".to_string(), entry),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err((key, format!("`{entry}`: `{name}` is not a listener name")));
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| (key, format!("`{entry}` has no port (NAME://host:port)")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| (key, format!("`{entry}`: `{port}` is not a port")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if out.iter().any(|e| e.name == name) {
            return Err((key, format!("listener name {name} is given twice")));
        }
        out.push(Endpoint { name, host, port });
    }
    Ok(out)
}

fn protocols(raw: &str) -> Result<BTreeMap<String, String>, Refusal> {
    let key = "listener_security_protocol_map";
    let mut map = BTreeMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| (key, format!("`{entry}` is not NAME:PROTOCOL")))?;
        let protocol = protocol.trim().to_ascii_uppercase();
        if !matches!(
            protocol.as_str(),
            "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"
        ) {
            return Err((
                key,
                format!("`{entry}`: unknown security protocol {protocol}"),
            ));
        }
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

/// Validates the listener settings and says what to bind and advertise.
pub fn plan(
    listeners: &str,
    advertised_raw: &str,
    protocol_map: &str,
    controller_names: &str,
    inter_broker: &str,
) -> Result<ListenerPlan, Refusal> {
    let all = parse_list("listeners", listeners)?;
    if all.is_empty() {
        return Err(("listeners", "no listener is given".into()));
    }
    let map = protocols(protocol_map)?;
    let mut protocol_of: BTreeMap<String, String> = BTreeMap::new();
    let mut ports: BTreeMap<u16, &str> = BTreeMap::new();
    for e in &all {
        if e.port != 0 {
            if let Some(other) = ports.insert(e.port, &e.name) {
                return Err((
                    "listeners",
                    format!("listeners {other} and {} both use port {}", e.name, e.port),
                ));
            }
        }
        let protocol = map.get(&e.name).cloned().unwrap_or_else(|| e.name.clone());
        match protocol.as_str() {
            "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL" => {}
            _ => {
                return Err((
                    "listener_security_protocol_map",
                    format!(
                        "listener {} has no security protocol: add {}:PLAINTEXT",
                        e.name, e.name
                    ),
                ))
            }
        }
        protocol_of.insert(e.name.clone(), protocol);
    }
    let controller_names: Vec<String> = controller_names
        .split(',')
        .map(|n| n.trim().to_ascii_uppercase())
        .filter(|n| !n.is_empty())
        .collect();
    let controller = all
        .iter()
        .find(|e| controller_names.contains(&e.name))
        .cloned();
    let clients: Vec<&Endpoint> = all
        .iter()
        .filter(|e| !controller_names.contains(&e.name))
        .collect();
    if clients.is_empty() {
        return Err((
            "listeners",
            "every listener is a controller listener; a client listener is needed".into(),
        ));
    }
    let inter_broker = inter_broker.trim().to_ascii_uppercase();
    let inter_broker = if inter_broker.is_empty() {
        clients
            .iter()
            .position(|e| e.name == "PLAINTEXT")
            .unwrap_or(0)
    } else {
        clients
            .iter()
            .position(|e| e.name == inter_broker)
            .ok_or_else(|| {
                (
                    "inter_broker_listener_name",
                    format!("{inter_broker} is not a client listener of `listeners`"),
                )
            })?
    };
    let between_nodes = [
        (controller.as_ref(), "controller_listener_names"),
        (Some(clients[inter_broker]), "inter_broker_listener_name"),
    ];
    for (listener, key) in between_nodes {
        if let Some(e) = listener {
            if protocol_of[&e.name] != "PLAINTEXT" {
                return Err((
                    key,
                    format!(
                        "listener {} is {}: nodes do not speak TLS to each other yet, so the \
                         listener they use must be a PLAINTEXT one (bind it to a private address)",
                        e.name, protocol_of[&e.name]
                    ),
                ));
            }
        }
    }
    let mut advertised = BTreeMap::new();
    for a in parse_list("advertised_listeners", advertised_raw)? {
        if !all.iter().any(|e| e.name == a.name) {
            return Err((
                "advertised_listeners",
                format!("{} is not one of `listeners`", a.name),
            ));
        }
        if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
            return Err((
                "advertised_listeners",
                format!(
                    "{}: `{}` is not an address clients can connect to",
                    a.name, a.host
                ),
            ));
        }
        advertised.insert(a.name.clone(), a);
    }
    Ok(ListenerPlan {
        clients: clients
            .into_iter()
            .map(|bind| ClientListener {
                advertised: advertised.remove(&bind.name),
                protocol: protocol_of[&bind.name].clone(),
                bind: bind.clone(),
            })
            .collect(),
        inter_broker,
        controller,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL";
    const MAP_EXT: &str = "PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT";

    #[test]
    fn client_listeners_may_be_ssl_and_node_listeners_stay_plaintext() {
        let p = plan("PLAINTEXT://127.0.0.1:9092,SSL://:9093", "", MAP, "", "").unwrap();
        assert_eq!(p.inter_broker, 0);
        assert!(!p.clients[0].is_tls() && p.clients[1].is_tls());
        let sasl = "PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL,INSIDE:SASL_PLAINTEXT";
        let p = plan(
            "PLAINTEXT://:9092,SECURE://:9093,INSIDE://:9094",
            "",
            sasl,
            "",
            "",
        )
        .unwrap();
        assert!(p.clients[1].is_tls() && p.clients[1].is_sasl());
        assert!(!p.clients[2].is_tls() && p.clients[2].is_sasl());
        let (key, _) = plan("INSIDE://:9094", "", sasl, "", "").unwrap_err();
        assert_eq!(key, "inter_broker_listener_name");
        let tls_controller = "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL";
        let (key, m) = plan(
            "PLAINTEXT://:9092,CONTROLLER://:9093",
            "",
            tls_controller,
            "CONTROLLER",
            "",
        )
        .unwrap_err();
        assert_eq!(key, "controller_listener_names", "{m}");
        let (key, _) = plan("PLAINTEXT://:9092,SSL://:9093", "", MAP, "", "SSL").unwrap_err();
        assert_eq!(key, "inter_broker_listener_name");
    }

    #[test]
    fn kafka_listener_forms_are_read() {
        let p = plan(
            "PLAINTEXT://:9092,CONTROLLER://:9093",
            "PLAINTEXT://broker1:9092",
            MAP,
            "CONTROLLER",
            "",
        )
        .unwrap();
        assert_eq!(p.first().bind.bind_addr(), "0.0.0.0:9092");
        assert_eq!(p.first().advertised.as_ref().unwrap().host, "broker1");
        assert_eq!(p.controller.unwrap().port, 9093);
        let legacy = plan("127.0.0.1:9092", "", MAP, "", "").unwrap();
        assert_eq!(legacy.first().bind.name, "PLAINTEXT");
        assert_eq!(legacy.first().bind.bind_addr(), "127.0.0.1:9092");
        assert_eq!(
            plan("[::1]:9092", "", MAP, "", "")
                .unwrap()
                .first()
                .bind
                .bind_addr(),
            "[::1]:9092"
        );
    }

    #[test]
    fn several_client_listeners_each_advertise_their_own_address() {
        let p = plan(
            "INTERNAL://:19092,CONTROLLER://:9093,EXTERNAL://127.0.0.1:9092",
            "INTERNAL://spool1:19092,EXTERNAL://localhost:29092",
            "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "CONTROLLER",
            "INTERNAL",
        )
        .unwrap();
        let names: Vec<&str> = p.clients.iter().map(|c| c.bind.name.as_str()).collect();
        assert_eq!(names, ["INTERNAL", "EXTERNAL"]);
        assert_eq!(p.inter_broker, 0);
        assert_eq!(p.clients[1].advertised.as_ref().unwrap().port, 29092);
        // Without inter.broker.listener.name: the one named PLAINTEXT, else the first.
        let p = plan("EXTERNAL://:1,PLAINTEXT://:2", "", MAP_EXT, "", "").unwrap();
        assert_eq!(p.clients[p.inter_broker].bind.name, "PLAINTEXT");
    }

    #[test]
    fn bad_listener_values_say_which_is_wrong() {
        let cases = [
            (
                "PLAINTEXT://:9092,CONTROLLER://:9092",
                "",
                "CONTROLLER",
                "",
                "both use port 9092",
            ),
            ("PLAINTEXT://host", "", "", "", "has no port"),
            (
                "PLAINTEXT://:9092",
                "PLAINTEXT://0.0.0.0:9092",
                "",
                "",
                "not an address clients",
            ),
            (
                "PLAINTEXT://:9092",
                "EXTERNAL://h:1",
                "",
                "",
                "EXTERNAL is not one of",
            ),
            (
                "INTERNAL://:9092",
                "",
                "",
                "",
                "INTERNAL has no security protocol",
            ),
            (
                "SSL://:9093",
                "",
                "",
                "",
                "nodes do not speak TLS to each other yet",
            ),
            (
                "PLAINTEXT://:9092",
                "",
                "",
                "INTERNAL",
                "not a client listener",
            ),
            (
                "PLAINTEXT://:9092,PLAINTEXT://:9093",
                "",
                "",
                "",
                "given twice",
            ),
        ];
        for (listeners, advertised, controller, inter, want) in cases {
            let (_, message) = plan(listeners, advertised, MAP, controller, inter).unwrap_err();
            assert!(
                message.contains(want),
                "{listeners} / {advertised}: {message}"
            );
        }
    }
}
