//! Kafka's inline JAAS configuration (`sasl.jaas.config`): one or more
//! `<LoginModuleClass> <flag> [name=value ...];` entries, values bare or double-quoted (with
//! `\"` and `\\` escapes), as Java's JAAS parser reads them.

use std::collections::BTreeMap;

/// One login module entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

const FLAGS: &[&str] = &["required", "requisite", "sufficient", "optional"];

/// Parses a whole `sasl.jaas.config` value.
pub fn parse(text: &str) -> Result<Vec<LoginModule>, String> {
    let mut tokens = Tokens::new(text);
    let mut modules = Vec::new();
    while let Some(token) = tokens.next()? {
        let Token::Word(class) = token else {
            return Err("expected a login module class name".into());
        };
        let flag = match tokens.next()? {
            Some(Token::Word(f)) if FLAGS.contains(&f.to_ascii_lowercase().as_str()) => {
                f.to_ascii_lowercase()
            }
            _ => {
                return Err(format!(
                    "login module {class}: expected a control flag (required, requisite, sufficient or optional)"
                ))
            }
        };
        let mut options = BTreeMap::new();
        loop {
            match tokens.next()? {
                Some(Token::Semicolon) => break,
                Some(Token::Word(name)) => {
                    if tokens.next()? != Some(Token::Equals) {
                        return Err(format!("login module {class}: option {name} has no `=`"));
                    }
                    let value = match tokens.next()? {
                        Some(Token::Word(v)) | Some(Token::Quoted(v)) => v,
                        _ => {
                            return Err(format!("login module {class}: option {name} has no value"))
                        }
                    };
                    options.insert(name, value);
                }
                _ => return Err(format!("login module {class}: expected `;` at the end")),
            }
        }
        modules.push(LoginModule {
            class,
            flag,
            options,
        });
    }
    if modules.is_empty() {
        return Err("no login module".into());
    }
    Ok(modules)
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

struct Tokens<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Tokens {
            chars: text.chars().peekable(),
        }
    }

    fn next(&mut self) -> Result<Option<Token>, String> {
        while self.chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(c) = self.chars.next() else {
            return Ok(None);
        };
        Ok(Some(match c {
            '=' => Token::Equals,
            ';' => Token::Semicolon,
            '"' => {
                let mut value = String::new();
                loop {
                    match self.chars.next() {
                        None => return Err("unterminated quoted value".into()),
                        Some('"') => break,
                        Some('\\') => match self.chars.next() {
                            Some(e) => value.push(e),
                            None => return Err("unterminated quoted value".into()),
                        },
                        Some(other) => value.push(other),
                    }
                }
                Token::Quoted(value)
            }
            first => {
                let mut word = String::from(first);
                while let Some(c) = self
                    .chars
                    .next_if(|c| !c.is_whitespace() && !matches!(c, '=' | ';' | '"'))
                {
                    word.push(c);
                }
                Token::Word(word)
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_examples_parse() {
        let m = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="admin-secret" user_admin="admin-secret"
               user_alice="a \"quoted\" pass;word";"#,
        )
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].class,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(m[0].flag, "required");
        assert_eq!(m[0].options["user_alice"], "a \"quoted\" pass;word");
        assert_eq!(m[0].options["username"], "admin");
        let m = parse(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=admin;",
        )
        .unwrap();
        assert_eq!(m[0].options["unsecuredLoginStringClaim_sub"], "admin");
    }

    #[test]
    fn malformed_entries_are_errors() {
        for bad in [
            "",
            "Module",
            "Module required",
            "Module always;",
            "Module required a;",
            "Module required a=;",
            "Module required a=\"x;",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
