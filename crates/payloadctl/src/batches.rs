//! Decoding many payloads: batches of [`BATCH_SIZE`], up to [`IN_FLIGHT`]
//! of them at once (a Codec Server sees one request per batch), with a
//! progress bar for large documents.

use std::sync::Arc;

use payload_proto::temporal::api::common::v1::Payload;
use tokio::task::JoinSet;

use crate::codecs::Decoder;
use crate::output::Progress;

/// Payloads per batch (per request to a Codec Server).
pub(crate) const BATCH_SIZE: usize = 256;
/// Batches decoded concurrently.
pub(crate) const IN_FLIGHT: usize = 4;
/// Below this many payloads no progress bar is drawn.
const PROGRESS_MIN: usize = 2 * BATCH_SIZE;

/// Decodes `payloads` with `decoder`; one result per payload, in order.
pub(crate) async fn decode_all(
    decoder: Arc<Decoder>,
    payloads: Vec<Payload>,
) -> anyhow::Result<Vec<Result<Payload, String>>> {
    let total = payloads.len();
    let progress = Progress::new(total, PROGRESS_MIN, "decoding");
    let mut batches: Vec<Vec<Payload>> = Vec::new();
    let mut rest = payloads.into_iter().peekable();
    while rest.peek().is_some() {
        batches.push(rest.by_ref().take(BATCH_SIZE).collect());
    }
    let mut results: Vec<Option<Vec<Result<Payload, String>>>> = vec![None; batches.len()];
    let mut pending = batches.into_iter().enumerate();
    let mut running = JoinSet::new();
    let spawn = |running: &mut JoinSet<_>, (index, batch): (usize, Vec<Payload>)| {
        let decoder = Arc::clone(&decoder);
        running.spawn(async move { (index, decoder.decode(batch).await) });
    };
    for next in pending.by_ref().take(IN_FLIGHT) {
        spawn(&mut running, next);
    }
    let outcome = async {
        while let Some(joined) = running.join_next().await {
            let (index, decoded) = joined?;
            let decoded = decoded?;
            progress.advance(decoded.len());
            results[index] = Some(decoded);
            if let Some(next) = pending.next() {
                spawn(&mut running, next);
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    progress.finish();
    outcome?;
    let out: Vec<_> = results.into_iter().flatten().flatten().collect();
    anyhow::ensure!(
        out.len() == total,
        "internal error: decoded {} payloads of {total}",
        out.len()
    );
    Ok(out)
}
