/**
 * A moto S3 server of its own, outside a world: for single-tool tests and benchmarks that need an
 * S3-compatible endpoint and nothing else. Stopped by `stop()` (the caller's teardown).
 */
import { spawn } from 'node:child_process';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort, LOOPBACK, waitForPortOpen } from './ports';
import { motoServerBinary } from './world';

export interface MotoServer {
  endpoint: string;
  /** A client of it (any credentials do). */
  s3: S3Client;
  stop(): Promise<void>;
}

/** Starts moto_server on a free loopback port, with `buckets` created. `env` is added to its environment (e.g. a world marker). */
export async function startMotoServer(buckets: string[], env: Record<string, string> = {}): Promise<MotoServer> {
  const port = await freePort();
  const child = spawn(motoServerBinary(), ['-H', LOOPBACK, '-p', String(port)], { stdio: 'ignore', env: { ...process.env, ...env } });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    s3.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  const endpoint = `http://${LOOPBACK}:${port}`;
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  try {
    await waitForPortOpen(port, 'moto_server', 30_000);
    for (const bucket of buckets) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, s3, stop };
}
