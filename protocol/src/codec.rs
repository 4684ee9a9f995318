//! bincode 2 body encoding with the crate's size limit applied on decode.

use bincode::config::{self, Configuration, Limit, LittleEndian, Varint};

use crate::error::DecodeError;
use crate::limits::MAX_BODY_LEN;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_BODY_LEN>>;

/// The one bincode configuration both peers use: little-endian, varint
/// integers, and a decode limit of [`MAX_BODY_LEN`] so that no length prefix
/// can make the decoder allocate more than a body could hold.
pub const CONFIG: Config = config::standard()
    .with_little_endian()
    .with_variable_int_encoding()
    .with_limit::<MAX_BODY_LEN>();

/// Encodes a message body, appending to `out`.
pub fn encode_into<T: bincode::Encode>(value: &T, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail; the limit only applies on decode, and an
    // oversized body is caught when the frame header is built.
    let _ = bincode::encode_into_std_write(value, out, CONFIG);
}

/// Encodes a message body into a fresh vector.
pub fn encode<T: bincode::Encode>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Decodes a message body. The whole slice must be consumed.
pub fn decode<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_BODY_LEN {
        return Err(DecodeError::BodyTooLong(bytes.len() as u32));
    }
    let (value, used) =
        bincode::decode_from_slice(bytes, CONFIG).map_err(|e| DecodeError::Body(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::Body(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(value)
}
