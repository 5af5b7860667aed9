//! `presented_token` on arbitrary header values: never panics; what it returns is visible
//! ASCII taken from one of the headers, and two headers carrying different tokens are
//! refused.
#![no_main]

use api_tokens::{AuthError, presented_token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Option<Vec<u8>>, Option<Vec<u8>>)| {
    let (authorization, api_key) = input;
    match presented_token(authorization.as_deref(), api_key.as_deref()) {
        Ok(token) => {
            assert!(!token.is_empty());
            assert!(token.bytes().all(|b| b.is_ascii_graphic()), "{token:?}");
            // Surrounding spaces and tabs are not part of a header's value.
            let in_auth = authorization
                .as_deref()
                .is_some_and(|a| a.trim_ascii().ends_with(token.as_bytes()));
            let in_key = api_key.as_deref().map(<[u8]>::trim_ascii) == Some(token.as_bytes());
            assert!(in_auth || in_key, "the token came from neither header");
        }
        Err(AuthError::Missing) => assert!(authorization.is_none() && api_key.is_none()),
        Err(AuthError::MalformedHeader { .. }) => {
            // Each header alone must then be malformed too, or the two disagree.
            let alone = (
                authorization
                    .as_deref()
                    .map(|a| presented_token(Some(a), None)),
                api_key.as_deref().map(|k| presented_token(None, Some(k))),
            );
            if let (Some(Ok(a)), Some(Ok(b))) = alone {
                assert_ne!(a, b, "two headers with the same token were refused");
            }
        }
        Err(e) => panic!("presented_token answered {e:?}"),
    }
});
