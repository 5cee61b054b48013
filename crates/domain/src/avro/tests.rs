use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use super::*;

fn users() -> Vec<User> {
    crate::fixtures::quirk_users()
}

#[test]
fn checked_in_schema_parses_and_has_docs() {
    let json: serde_json::Value = serde_json::from_str(SCHEMA_JSON).expect("json");
    assert_eq!(json["namespace"], "io.userpipeline.v1");
    for field in json["fields"].as_array().expect("fields") {
        assert!(
            field["doc"].is_string(),
            "field {} has no doc",
            field["name"]
        );
    }
    assert!(matches!(schema(), Schema::Record(_)));
}

#[test]
fn what_the_code_writes_reads_back_with_the_avsc_as_reader() {
    for user in users() {
        let datum = to_datum(&user).expect("encodes");
        assert_eq!(from_datum(schema(), &datum).expect("decodes"), user);
    }
}

#[test]
fn the_direct_writer_writes_the_bytes_of_the_value_tree_encoding() {
    // What schema_registry_converter's encode_struct did (struct → Value → datum), byte for
    // byte: records published before and after the direct writer are the same.
    let writer = GenericDatumWriter::builder(schema())
        .build()
        .expect("writer");
    let mut appended = vec![7u8];
    for user in users() {
        let value = apache_avro::to_value(&user)
            .expect("to value")
            .resolve(schema())
            .expect("resolves");
        let expected = writer.write_value_to_vec(value).expect("encodes");
        assert_eq!(
            to_datum(&user).expect("encodes"),
            expected,
            "{}",
            user.login.uuid
        );
        let before = appended.len();
        write_datum(&user, &mut appended).expect("appends");
        assert_eq!(
            &appended[before..],
            &expected[..],
            "appended after what was there"
        );
    }
    assert_eq!(appended[0], 7, "what was in the buffer stays");
}

#[test]
fn what_the_avsc_writes_reads_back_into_the_code() {
    // Build the datum from the schema alone (generic Values), then read it as a struct.
    let user = &users()[3];
    let value = Value::Record(vec![
        ("gender".into(), Value::String(user.gender.clone())),
        (
            "name".into(),
            Value::Record(vec![
                ("title".into(), Value::String(user.name.title.clone())),
                ("first".into(), Value::String(user.name.first.clone())),
                ("last".into(), Value::String(user.name.last.clone())),
            ]),
        ),
        (
            "location".into(),
            Value::Record(vec![
                (
                    "street".into(),
                    Value::Record(vec![
                        ("number".into(), Value::Long(user.location.street.number)),
                        (
                            "name".into(),
                            Value::String(user.location.street.name.clone()),
                        ),
                    ]),
                ),
                ("city".into(), Value::String(user.location.city.clone())),
                ("state".into(), Value::String(user.location.state.clone())),
                (
                    "country".into(),
                    Value::String(user.location.country.clone()),
                ),
                (
                    "postcode".into(),
                    Value::String(user.location.postcode.clone()),
                ),
                (
                    "coordinates".into(),
                    Value::Record(vec![
                        (
                            "latitude".into(),
                            Value::Double(user.location.coordinates.latitude),
                        ),
                        (
                            "longitude".into(),
                            Value::Double(user.location.coordinates.longitude),
                        ),
                    ]),
                ),
                (
                    "timezone".into(),
                    Value::Record(vec![
                        (
                            "offset".into(),
                            Value::String(user.location.timezone.offset.clone()),
                        ),
                        (
                            "description".into(),
                            Value::String(user.location.timezone.description.clone()),
                        ),
                    ]),
                ),
            ]),
        ),
        ("email".into(), Value::String(user.email.clone())),
        (
            "login".into(),
            Value::Record(vec![
                (
                    "uuid".into(),
                    Value::Uuid(user.login.uuid.parse().expect("uuid")),
                ),
                (
                    "username".into(),
                    Value::String(user.login.username.clone()),
                ),
            ]),
        ),
        ("dob".into(), dated(&user.dob)),
        ("registered".into(), dated(&user.registered)),
        ("phone".into(), Value::String(user.phone.clone())),
        ("cell".into(), Value::String(user.cell.clone())),
        (
            "id".into(),
            Value::Record(vec![
                ("name".into(), Value::String(user.id.name.clone())),
                ("value".into(), Value::Union(0, Box::new(Value::Null))),
            ]),
        ),
        (
            "picture".into(),
            Value::Record(vec![
                ("large".into(), Value::String(user.picture.large.clone())),
                ("medium".into(), Value::String(user.picture.medium.clone())),
                (
                    "thumbnail".into(),
                    Value::String(user.picture.thumbnail.clone()),
                ),
            ]),
        ),
        ("nat".into(), Value::String(user.nat.clone())),
    ]);
    let datum = GenericDatumWriter::builder(schema())
        .build()
        .expect("writer")
        .write_value_to_vec(value)
        .expect("schema accepts the value");
    let back = from_datum(schema(), &datum).expect("code reads it");
    assert_eq!(&back, user);
    assert_eq!(back.id.value, None);
}

fn dated(d: &crate::user::Dated) -> Value {
    Value::Record(vec![
        ("date".into(), Value::TimestampMillis(d.date)),
        ("age".into(), Value::Int(d.age)),
    ])
}

#[test]
fn an_older_writer_without_the_id_value_field_is_readable() {
    // The reader's default (null) fills a field the writer did not have.
    let writer = Schema::parse_str(&SCHEMA_JSON.replace(
        r#"{"name": "value", "type": ["null", "string"], "default": null, "doc": "The identifier; null for some nationalities (NZ, UA, TR, IR...)."}"#,
        r#"{"name": "value_was_renamed", "type": ["null", "string"], "default": null}"#,
    ))
    .expect("variant parses");
    let user = users().remove(0);
    let mut value = apache_avro::to_value(&user).expect("to value");
    if let Value::Record(fields) = &mut value {
        for (name, v) in fields.iter_mut() {
            if name == "id" {
                if let Value::Record(id) = v {
                    id[1].0 = "value_was_renamed".into();
                }
            }
        }
    }
    let datum = GenericDatumWriter::builder(&writer)
        .build()
        .expect("writer")
        .write_value_to_vec(value.resolve(&writer).expect("resolve"))
        .expect("encode");
    assert_eq!(from_datum(&writer, &datum).expect("decode").id.value, None);
}

#[test]
fn our_own_writer_schema_reads_straight_into_the_struct_and_others_resolve() {
    // A registry may hand the schema back reformatted and without docs: still ours on the wire.
    fn strip_docs(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("doc");
                map.values_mut().for_each(strip_docs);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip_docs),
            _ => {}
        }
    }
    let mut json: serde_json::Value = serde_json::from_str(SCHEMA_JSON).expect("json");
    strip_docs(&mut json);
    let registered = Schema::parse(&json).expect("parses");
    let reader = UserReader::for_writer(&registered);
    assert!(matches!(reader, UserReader::Ours));
    for user in users() {
        let datum = to_datum(&user).expect("encodes");
        assert_eq!(reader.read(&datum).expect("reads"), user);
    }
    let newer = Schema::parse_str(&SCHEMA_JSON.replacen(
        r#""fields": ["#,
        r#""fields": [{"name": "nickname", "type": ["null", "string"], "default": null},"#,
        1,
    ))
    .expect("newer parses");
    assert!(matches!(
        UserReader::for_writer(&newer),
        UserReader::Resolving(_)
    ));
    assert!(
        UserReader::for_writer(&newer).read(&[]).is_err(),
        "an empty datum is not a User"
    );
}
