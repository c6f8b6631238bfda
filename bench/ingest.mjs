// The ingest workload arrives with the ingestion endpoint (issue 3).
export async function ingestRun() {
  throw new Error('the ingest workload needs POST /v1/ingest/:lambda, which is not built yet');
}
