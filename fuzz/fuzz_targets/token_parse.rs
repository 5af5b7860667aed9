//! `TokenFormat::parse` on arbitrary text: never panics; whatever it accepts has the
//! format's prefix and carries the id it names; a parse error's message is one of the fixed
//! messages (with numbers), so it never quotes any of the input.
#![no_main]

use std::sync::OnceLock;

use api_tokens::{ParseError, TokenFormat};
use libfuzzer_sys::fuzz_target;

fn format() -> &'static TokenFormat {
    static FORMAT: OnceLock<TokenFormat> = OnceLock::new();
    FORMAT.get_or_init(|| TokenFormat::new("fz_live").expect("a valid prefix"))
}

/// A message with its digits removed: what every instance of one variant shares.
fn template(message: &str) -> String {
    message.chars().filter(|c| !c.is_ascii_digit()).collect()
}

fn templates() -> &'static [String] {
    static ALL: OnceLock<Vec<String>> = OnceLock::new();
    ALL.get_or_init(|| {
        [
            ParseError::Empty,
            ParseError::TooLong { max: 0 },
            ParseError::InvalidCharacter { position: 0 },
            ParseError::WrongPrefix,
            ParseError::WrongLength {
                expected: 0,
                found: 0,
            },
            ParseError::BadChecksum,
            ParseError::InvalidEncoding { position: 0 },
        ]
        .iter()
        .map(|e| template(&e.to_string()))
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match format().parse(text) {
        Ok(token) => {
            assert!(
                text.starts_with("fz_live_"),
                "accepted a foreign prefix: {text:?}"
            );
            // The id is part of what was presented.
            let id = token.id().to_string();
            assert!(text.contains(&id), "the parsed id {id} is not in {text:?}");
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                templates().contains(&template(&message)),
                "a parse error's message is not one of the fixed ones: {message}"
            );
        }
    }
});
