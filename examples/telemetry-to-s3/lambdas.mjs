// The job of the "1 million requests per minute" article: clients POST
// batches of telemetry to /v1/ingest/telemetry, Conveyor turns each payload into one task of
// this lambda, and the lambda stores the payload as one object in S3-compatible storage, or in
// a folder that stands in for a bucket. The object key is the task id, so a retry (after a
// timeout, a lost worker, a crash) overwrites the same object instead of adding a second one.
//
// Settings, from the environment (read when a task runs):
//   S3_ENDPOINT           e.g. http://127.0.0.1:9000 (MinIO) or https://s3.eu-west-1.amazonaws.com;
//                         unset: the filesystem bucket below
//   S3_BUCKET             bucket name (default "telemetry")
//   S3_REGION             (default "us-east-1")
//   S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY
//                         credentials (default: the AWS SDK's own chain, AWS_ACCESS_KEY_ID, profiles, ...)
//   S3_FORCE_PATH_STYLE   "false" for virtual-hosted-style URLs (default: path style, which
//                         MinIO and most S3-compatible servers expect)
//   BUCKET_DIR            folder of the filesystem bucket (default ./bucket)
//   TELEMETRY_PREFIX      key prefix (default "telemetry/")
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

/** Uploads one telemetry payload; the result names the object. */
export const telemetry = {
  name: 'telemetry',
  timeoutMs: 30_000,
  maxAttempts: 8,
  backoff: { baseMs: 1000, maxMs: 60_000 },
  async handler(payload, ctx) {
    const key = `${process.env.TELEMETRY_PREFIX ?? 'telemetry/'}${ctx.task.id}.json`;
    const body = JSON.stringify(payload);
    if (process.env.S3_ENDPOINT) {
      const { client, PutObjectCommand, bucket } = await s3Of(process.env.S3_ENDPOINT);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }), {
        abortSignal: ctx.signal,
      });
      return { stored: `s3://${bucket}/${key}`, bytes: Buffer.byteLength(body) };
    }
    const file = join(resolve(process.env.BUCKET_DIR ?? './bucket'), key);
    await ensureDir(dirname(file));
    // Write aside, then rename: readers see the whole object or none, as with a PUT.
    const part = `${file}.${ctx.task.attempt}.part`;
    await writeFile(part, body, { signal: ctx.signal });
    await rename(part, file);
    return { stored: file, bytes: Buffer.byteLength(body) };
  },
};

// One S3 client per endpoint, made on first use (the SDK is only loaded when S3 is configured).
const clients = new Map();

async function s3Of(endpoint) {
  let s3 = clients.get(endpoint);
  if (!s3) {
    const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
    const { S3_ACCESS_KEY_ID: accessKeyId, S3_SECRET_ACCESS_KEY: secretAccessKey } = process.env;
    const client = new S3Client({
      endpoint,
      region: process.env.S3_REGION ?? 'us-east-1',
      forcePathStyle: process.env.S3_FORCE_PATH_STYLE !== 'false',
      ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
    });
    s3 = { client, PutObjectCommand, bucket: process.env.S3_BUCKET ?? 'telemetry' };
    clients.set(endpoint, s3);
  }
  return s3;
}

// Folders already made: one mkdir per folder, not one per payload.
const made = new Set();

async function ensureDir(dir) {
  if (made.has(dir)) return;
  await mkdir(dir, { recursive: true });
  made.add(dir);
}
