use super::*;

use crate::fixtures::{quirk_users as quirks, read as fixture};

fn by_nat(users: &[User], nat: &str) -> User {
    users.iter().find(|u| u.nat == nat).cloned().expect(nat)
}

#[test]
fn integer_postcode_becomes_decimal_text() {
    assert_eq!(by_nat(&quirks(), "DE").location.postcode, "53721");
}

#[test]
fn string_postcodes_keep_letters_spaces_and_leading_zeros() {
    let users = quirks();
    assert_eq!(by_nat(&users, "GB").location.postcode, "EC1A 1BB");
    assert_eq!(by_nat(&users, "CA").location.postcode, "K1A 0B1");
    assert_eq!(by_nat(&users, "NO").location.postcode, "0150");
}

#[test]
fn null_national_id_is_kept_as_none() {
    let nz = by_nat(&quirks(), "NZ");
    assert_eq!(nz.id.name, "");
    assert_eq!(nz.id.value, None);
    assert_eq!(
        by_nat(&quirks(), "DE").id.value.as_deref(),
        Some("41 120589 V 123")
    );
}

#[test]
fn non_latin_names_and_lettered_phones_are_verbatim() {
    let users = quirks();
    let ir = by_nat(&users, "IR");
    assert_eq!(
        (ir.name.first.as_str(), ir.name.last.as_str()),
        ("نگار", "کامروا")
    );
    assert_eq!(by_nat(&users, "RS").name.first, "Милош");
    assert_eq!(by_nat(&users, "IN").name.last, "शर्मा");
    assert_eq!(by_nat(&users, "CA").phone, "Z88 L41-5532");
}

#[test]
fn string_coordinates_become_numbers() {
    let gb = by_nat(&quirks(), "GB");
    assert_eq!(gb.location.coordinates.latitude, -48.1277);
    assert_eq!(gb.location.coordinates.longitude, 114.4006);
}

#[test]
fn odd_timezone_offsets_are_kept() {
    let users = quirks();
    assert_eq!(by_nat(&users, "RS").location.timezone.offset, "+5:45");
    assert_eq!(by_nat(&users, "GB").location.timezone.offset, "-3:30");
}

#[test]
fn dates_become_epoch_millis() {
    let de = by_nat(&quirks(), "DE");
    // 1989-05-12T08:21:44.123Z
    assert_eq!(de.dob.date, 610_964_504_123);
    assert_eq!(de.dob.age, 31);
}

#[test]
fn credentials_are_not_kept() {
    let users = quirks();
    let debug = format!("{users:?}");
    for secret in ["hunter2", "s4lt", &"0".repeat(32)] {
        assert!(
            !debug.contains(secret),
            "{secret} leaked into the parsed record"
        );
    }
    let json = serde_json::to_string(&users).expect("serialize");
    assert!(!json.contains("password") && !json.contains("sha256"));
}

#[test]
fn bad_records_are_rejected_with_reasons_and_the_rest_go_on() {
    let page = ApiPage::parse(&fixture("some_rejected.json")).expect("page is usable");
    assert_eq!(page.users.len(), 2);
    let reasons: Vec<_> = page
        .rejected
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].1.contains("missing field `email`"),
        "{reasons:?}"
    );
    assert!(reasons[1].1.contains("not a UUID"), "{reasons:?}");
    assert!(reasons[2].1.contains("latitude"), "{reasons:?}");
    assert_eq!(page.rejected[1].uuid.as_deref(), Some("not-a-uuid"));
    assert_eq!(page.seed.as_deref(), Some("badbadbad"));
}

#[test]
fn a_page_with_only_bad_records_is_an_error() {
    let err = ApiPage::parse(&fixture("all_rejected.json")).unwrap_err();
    assert!(
        matches!(err, PageError::AllRejected { count: 3, .. }),
        "{err}"
    );
}

#[test]
fn empty_results_are_an_error_not_success() {
    assert_eq!(
        ApiPage::parse(&fixture("empty.json")),
        Err(PageError::Empty)
    );
}

#[test]
fn error_bodies_are_errors_with_the_api_message() {
    match ApiPage::parse(&fixture("error.json")) {
        Err(PageError::Api(msg)) => assert!(msg.starts_with("Uh oh"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ApiPage::parse(&fixture("rate_limited.json")),
        Err(PageError::Api(_))
    ));
}

#[test]
fn non_json_is_malformed_and_quotes_the_body() {
    let err = ApiPage::parse(b"<html>502 Bad Gateway</html>").unwrap_err();
    assert!(err.to_string().contains("502 Bad Gateway"), "{err}");
}

#[test]
fn uuids_are_normalised_to_lower_case() {
    let body = String::from_utf8(fixture("quirks.json"))
        .expect("utf-8")
        .replace(
            "6f1c2b0a-3a7e-4c55-9a40-5d1b2f0c9e11",
            "6F1C2B0A-3A7E-4C55-9A40-5D1B2F0C9E11",
        );
    let page = ApiPage::parse(body.as_bytes()).expect("parses");
    assert_eq!(
        page.users[0].login.uuid,
        "6f1c2b0a-3a7e-4c55-9a40-5d1b2f0c9e11"
    );
}

#[test]
fn a_clean_page_parses_in_one_pass_to_what_the_record_by_record_pass_gives() {
    let clean = fixture("quirks.json");
    let page = ApiPage::<String>::parse_clean(&clean).expect("a clean page takes the one pass");
    assert_eq!(
        Ok(page),
        ApiPage::parse_each(&clean),
        "both passes agree on it"
    );
    // Any page the one pass cannot take whole goes record by record, so each bad record is
    // named and an error body is reported as one.
    for unclean in [
        "some_rejected.json",
        "all_rejected.json",
        "empty.json",
        "error.json",
    ] {
        assert_eq!(
            ApiPage::<String>::parse_clean(&fixture(unclean)),
            None,
            "{unclean}"
        );
    }
}

#[test]
fn a_page_read_with_borrowed_text_has_the_users_read_with_strings() {
    for name in ["quirks.json", "some_rejected.json"] {
        let body = fixture(name);
        let owned = ApiPage::parse(&body).expect("parses");
        let borrowed = ApiPage::parse_borrowed(&body).expect("parses");
        assert_eq!(
            serde_json::to_value(&borrowed.users).expect("to JSON"),
            serde_json::to_value(&owned.users).expect("to JSON"),
            "{name}"
        );
        assert_eq!(borrowed.rejected, owned.rejected, "{name}");
    }
}
