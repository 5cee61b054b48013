//! The Cassandra row, one per person (`schemas/cassandra.cql`). The driver's traits are
//! derived only with the `cassandra` feature (`cassandra.rs`), so a crate that makes rows
//! without writing them (the producer) does not compile the driver.

#[cfg(feature = "cassandra")]
mod cassandra;

/// The CQL that creates the keyspace and table, with `{keyspace}`,
/// `{replication}` and `{table_id}` placeholders; see [`schema_statements`].
pub const CQL: &str = include_str!("../../../schemas/cassandra.cql");

/// Table name inside the keyspace.
pub const TABLE: &str = "created_users";

/// Namespace of [`table_id`]'s name-based UUIDs (this project's, made once at random).
const TABLE_ID_NAMESPACE: uuid::Uuid = uuid::uuid!("6386871a-e581-445b-b68b-2487994a9646");

/// The id `created_users` is created with in `keyspace`: a UUID named after the
/// keyspace and table, so every replica's `CREATE TABLE` creates the same table.
/// Created concurrently through different nodes with ids of their own, Cassandra
/// would keep one and drop the other, with any rows already written to it.
pub fn table_id(keyspace: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &TABLE_ID_NAMESPACE,
        format!("{keyspace}.{TABLE}").as_bytes(),
    )
}

/// A row of `created_users`. Field order and names are the table's columns, so
/// the same struct binds the INSERT and reads rows back.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "cassandra",
    derive(scylla::SerializeRow, scylla::DeserializeRow)
)]
pub struct UserRow {
    pub id: uuid::Uuid,
    pub first_name: String,
    pub last_name: String,
    pub title: String,
    pub gender: String,
    pub address: String,
    pub city: String,
    pub state: String,
    pub country: String,
    pub post_code: String,
    pub latitude: f64,
    pub longitude: f64,
    pub email: String,
    pub username: String,
    pub phone: String,
    pub cell: String,
    pub dob: Timestamp,
    pub registered_date: Timestamp,
    pub picture: String,
    pub nationality: String,
    pub produced_at: Timestamp,
}

/// A row with the time it is written at: its record's own time in µs since the epoch, so
/// that of two versions of a user the later record wins, whichever is written last.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "cassandra", derive(scylla::SerializeRow))]
pub struct TimedRow {
    #[cfg_attr(feature = "cassandra", scylla(flatten))]
    pub row: UserRow,
    pub write_time: i64,
}

/// A CQL `timestamp`: milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

/// Bytes Cassandra adds to each cell's value in a batch's size: its timestamp (8), TTL (4)
/// and local deletion time (8).
const CELL_OVERHEAD: usize = 20;
/// And to each row: its liveness (timestamp, TTL, deletion time) and deletion, rounded up.
const ROW_OVERHEAD: usize = 56;

impl UserRow {
    pub const COLUMNS: [&'static str; 21] = [
        "id",
        "first_name",
        "last_name",
        "title",
        "gender",
        "address",
        "city",
        "state",
        "country",
        "post_code",
        "latitude",
        "longitude",
        "email",
        "username",
        "phone",
        "cell",
        "dob",
        "registered_date",
        "picture",
        "nationality",
        "produced_at",
    ];

    /// `INSERT` of every column, with the write time bound as `write_time` (µs since the
    /// epoch; [`TimedRow`] binds both). Idempotent: a replay with the same `id` overwrites
    /// the row with the same values. The write time is a bound value, not the statement's
    /// default timestamp, so that rows written together in one batch keep each its own.
    pub fn insert_cql(keyspace: &str) -> String {
        let marks: Vec<String> = Self::COLUMNS.iter().map(|c| format!(":{c}")).collect();
        format!(
            "INSERT INTO {keyspace}.{TABLE} ({}) VALUES ({}) USING TIMESTAMP :write_time",
            Self::COLUMNS.join(", "),
            marks.join(", ")
        )
    }

    /// The row's size as Cassandra counts it against `batch_size_warn_threshold` (the data
    /// size of each partition update in a batch: every cell's value with 20 bytes of
    /// timestamp, TTL and deletion time, and the row's own liveness and deletion), rounded up,
    /// so that a batch this crate sizes under the threshold draws no warning. Checked against
    /// Cassandra's own count by tests/integration/tests/batching.rs.
    pub fn size(&self) -> usize {
        let text = [
            &self.first_name,
            &self.last_name,
            &self.title,
            &self.gender,
            &self.address,
            &self.city,
            &self.state,
            &self.country,
            &self.post_code,
            &self.email,
            &self.username,
            &self.phone,
            &self.cell,
            &self.picture,
            &self.nationality,
        ];
        // Values: the text, two doubles and three timestamps (8 bytes each); the key (id) is
        // the partition's, not a cell. Then the cells' and the row's overhead.
        let values = text.iter().map(|t| t.len()).sum::<usize>() + 5 * 8;
        values + CELL_OVERHEAD * (Self::COLUMNS.len() - 1) + ROW_OVERHEAD
    }

    /// `SELECT` of every column, in the struct's order.
    pub fn select_cql(keyspace: &str) -> String {
        format!(
            "SELECT {} FROM {keyspace}.{TABLE}",
            Self::COLUMNS.join(", ")
        )
    }
}

/// The statements of [`CQL`] with the placeholders filled in, one per entry,
/// comments dropped. `replication` is a CQL map literal such as
/// `{'class': 'SimpleStrategy', 'replication_factor': 1}`.
pub fn schema_statements(keyspace: &str, replication: &str) -> Vec<String> {
    let text: String = CQL
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace("{keyspace}", keyspace)
                .replace("{replication}", replication)
                .replace("{table_id}", &table_id(keyspace).to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_file_yields_keyspace_then_table() {
        let stmts = schema_statements("ks", "{'class': 'SimpleStrategy', 'replication_factor': 1}");
        assert_eq!(stmts.len(), 2);
        assert!(stmts[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks"));
        assert!(stmts[0].ends_with("'replication_factor': 1}"));
        assert!(stmts[1].starts_with("CREATE TABLE IF NOT EXISTS ks.created_users"));
        assert!(stmts[1].ends_with(&format!("WITH ID = {}", table_id("ks"))));
    }

    #[test]
    fn table_id_is_the_same_for_every_replica_and_differs_by_keyspace() {
        assert_eq!(table_id("ks"), table_id("ks"));
        assert_ne!(table_id("ks"), table_id("other"));
        assert_eq!(table_id("ks").get_version_num(), 5);
    }

    #[test]
    fn every_row_column_is_in_the_table_definition() {
        let table = &schema_statements("ks", "{}")[1];
        for column in UserRow::COLUMNS {
            assert!(
                table
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(column)),
                "column {column} missing from schemas/cassandra.cql"
            );
        }
    }
}
