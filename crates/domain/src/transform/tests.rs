use super::*;

fn users() -> Vec<User> {
    crate::fixtures::quirk_users()
}

fn row(nat: &str) -> UserRow {
    let user = users().into_iter().find(|u| u.nat == nat).expect(nat);
    to_row(user, 1_700_000_000_000).expect("transforms")
}

#[test]
fn key_is_the_login_uuid() {
    assert_eq!(
        row("DE").id.to_string(),
        "6f1c2b0a-3a7e-4c55-9a40-5d1b2f0c9e11"
    );
}

#[test]
fn address_joins_street_city_state_country() {
    assert_eq!(
        row("DE").address,
        "4311 Lindenstraße, Wetzlar, Hessen, Germany"
    );
    assert_eq!(
        row("IR").address,
        "5123 میدان توحید, کرمانشاه, خراسان جنوبی, Iran"
    );
}

#[test]
fn post_code_is_text_whatever_the_api_sent() {
    assert_eq!(row("DE").post_code, "53721");
    assert_eq!(row("NO").post_code, "0150");
    assert_eq!(row("GB").post_code, "EC1A 1BB");
}

#[test]
fn names_phone_and_picture_map_to_their_columns() {
    let r = row("CA");
    assert_eq!(
        (
            r.title.as_str(),
            r.first_name.as_str(),
            r.last_name.as_str()
        ),
        ("Mademoiselle", "Léa", "Côté")
    );
    assert_eq!(r.gender, "female");
    assert_eq!(r.phone, "Z88 L41-5532");
    assert_eq!(r.cell, "K19 F73-2210");
    assert_eq!(r.picture, "https://randomuser.me/api/portraits/women/7.jpg");
    assert_eq!(r.nationality, "CA");
    assert_eq!(r.username, "user7");
}

#[test]
fn dates_and_kafka_timestamp_become_cql_timestamps() {
    let r = row("DE");
    assert_eq!(r.dob, crate::row::Timestamp(610_964_504_123));
    assert_eq!(r.produced_at, crate::row::Timestamp(1_700_000_000_000));
    assert!(r.registered_date.0 > r.dob.0);
}

#[test]
fn null_national_id_still_makes_a_row() {
    let r = row("NZ");
    assert_eq!(r.latitude, -39.9301);
    assert_eq!(r.longitude, 175.0479);
}

#[test]
fn a_record_with_a_bad_uuid_is_rejected() {
    let mut user = users().remove(0);
    user.login.uuid = "42".into();
    assert_eq!(to_row(user, 0), Err(TransformError::BadUuid("42".into())));
}

#[test]
fn non_finite_coordinates_are_rejected() {
    let mut user = users().remove(0);
    user.location.coordinates.longitude = f64::NAN;
    assert!(matches!(
        to_row(user, 0),
        Err(TransformError::NotFinite {
            field: "location.coordinates.longitude",
            ..
        })
    ));
}
