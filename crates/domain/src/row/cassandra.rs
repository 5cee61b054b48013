//! [`Timestamp`] as the driver's CQL `timestamp`, by way of its own `CqlTimestamp`: the row's
//! derives need each column's value to be one the driver can send and read back.

use scylla::deserialize::value::DeserializeValue;
use scylla::deserialize::{DeserializationError, FrameSlice, TypeCheckError};
use scylla::frame::response::result::ColumnType;
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::{CellWriter, WrittenCellProof};
use scylla::serialize::SerializationError;
use scylla::value::CqlTimestamp;

use super::Timestamp;

impl SerializeValue for Timestamp {
    fn serialize<'b>(
        &self,
        typ: &ColumnType,
        writer: CellWriter<'b>,
    ) -> Result<WrittenCellProof<'b>, SerializationError> {
        CqlTimestamp(self.0).serialize(typ, writer)
    }
}

impl<'frame, 'metadata> DeserializeValue<'frame, 'metadata> for Timestamp {
    fn type_check(typ: &ColumnType) -> Result<(), TypeCheckError> {
        <CqlTimestamp as DeserializeValue>::type_check(typ)
    }

    fn deserialize(
        typ: &'metadata ColumnType<'metadata>,
        v: Option<FrameSlice<'frame>>,
    ) -> Result<Self, DeserializationError> {
        CqlTimestamp::deserialize(typ, v).map(|t| Timestamp(t.0))
    }
}
