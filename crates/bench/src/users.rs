//! A local source of API-shaped pages: the project's quirk fixtures, repeated
//! with fresh uuids, serialised as the API would send them.

use serde_json::{json, Value};

const QUIRKS: &str = include_str!("../../../tests/fixtures/randomuser/quirks.json");

/// `count` users as JSON page bodies of at most `page_size` users.
pub fn pages(count: usize, page_size: usize) -> Vec<Vec<u8>> {
    let page: Value = serde_json::from_str(QUIRKS).expect("quirks fixture");
    let templates = page["results"].as_array().expect("results").clone();
    let mut pages = Vec::new();
    let mut made = 0;
    while made < count {
        let n = page_size.min(count - made);
        let users: Vec<Value> = (made..made + n)
            .map(|i| {
                let mut u = templates[i % templates.len()].clone();
                u["login"]["uuid"] = json!(uuid::Uuid::new_v4().to_string());
                u
            })
            .collect();
        pages.push(json!({"results": users, "info": {"seed": "bench", "results": n, "page": pages.len() + 1, "version": "1.4"}}).to_string().into_bytes());
        made += n;
    }
    pages
}
