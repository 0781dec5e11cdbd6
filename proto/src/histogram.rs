//! HdrHistogram transport: the agent sends round-trip times as a V2-serialized
//! histogram, so the host can merge, re-percentile and write .hgrm files.

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

/// Why a histogram could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum HistogramCodecError {
    /// The serializer refused the histogram.
    #[error("cannot serialize the histogram")]
    Serialize(#[source] hdrhistogram::serialization::V2SerializeError),
    /// The bytes are not a V2 histogram.
    #[error("cannot deserialize the histogram")]
    Deserialize(#[source] hdrhistogram::serialization::DeserializeError),
}

/// Serializes `histogram` in the HdrHistogram V2 format.
pub fn encode(histogram: &Histogram<u64>) -> Result<Vec<u8>, HistogramCodecError> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(HistogramCodecError::Serialize)?;
    Ok(bytes)
}

/// Reads a histogram written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, HistogramCodecError> {
    let mut reader = bytes;
    Deserializer::new()
        .deserialize(&mut reader)
        .map_err(HistogramCodecError::Deserialize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_recorded_value() {
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for value in [1_000, 25_000, 25_010, 1_000_000] {
            histogram.record(value).unwrap();
        }
        let back = decode(&encode(&histogram).unwrap()).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(
            back.value_at_quantile(0.5),
            histogram.value_at_quantile(0.5)
        );
        assert_eq!(back.max(), histogram.max());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"not a histogram").is_err());
    }
}
