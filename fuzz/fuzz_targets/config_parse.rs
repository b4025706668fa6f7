//! The configuration loader: `Config::parse` on arbitrary TOML text, as
//! read from `gateway.toml` at start and on every reload.
#![no_main]

use std::path::Path;

use bindgate::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/bindgate/gateway.toml");
    match Config::parse(text, path) {
        Ok(config) => {
            let watched = config.watched_files();
            assert_eq!(watched.first().map(|p| p.as_path()), Some(path));
        }
        // Every refusal names the file it is about.
        Err(e) => assert!(e.to_string().contains("/etc/bindgate/gateway.toml"), "{e}"),
    }
});
