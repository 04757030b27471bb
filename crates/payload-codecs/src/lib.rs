//! Payload codecs (being written).
