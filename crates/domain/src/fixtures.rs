//! The project's API fixtures, for this crate's unit tests.

use crate::api::ApiPage;
use crate::user::User;

/// Raw bytes of `tests/fixtures/randomuser/<name>`.
pub fn read(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/randomuser/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The eight valid users of `quirks.json`, one per quirk.
pub fn quirk_users() -> Vec<User> {
    let page = ApiPage::parse(&read("quirks.json")).expect("quirks page parses");
    assert!(page.rejected.is_empty(), "{:?}", page.rejected);
    page.users
}
