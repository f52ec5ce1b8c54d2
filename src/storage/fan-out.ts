import { Writable } from 'node:stream';

/**
 * Writes every chunk to several destinations, waiting for the slowest (backpressure), and ends
 * them all when it ends. Memory stays at one chunk per destination whatever the artefact size.
 */
export function fanOut(destinations: Writable[]): Writable {
  const waitForDrain = (dest: Writable) =>
    new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        dest.off('error', onError);
        resolve();
      };
      const onError = (err: Error) => {
        dest.off('drain', onDrain);
        reject(err);
      };
      dest.once('drain', onDrain);
      dest.once('error', onError);
    });
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const pending = destinations.filter((dest) => !dest.write(chunk)).map(waitForDrain);
      if (pending.length === 0) return done();
      Promise.all(pending).then(() => done(), done);
    },
    final(done) {
      for (const dest of destinations) dest.end();
      done();
    },
    destroy(err, done) {
      // The error travels up our own pipeline; destinations are only torn down (their owners
      // abort them), so no destination emits an 'error' event nobody listens to.
      if (err) for (const dest of destinations) dest.destroy();
      done(err);
    },
  });
}

/**
 * Awaits pipelines that feed each other (one tees into another). When one fails, the others fail
 * soon after with ERR_STREAM_PREMATURE_CLOSE, and whichever rejects first would hide the cause
 * (a full disk, a reset connection): so the failures are collected briefly and the first one that
 * is not a premature close is thrown.
 */
export async function allPipelines(pipelines: Array<Promise<unknown>>): Promise<void> {
  const failures: unknown[] = [];
  await new Promise<void>((done) => {
    let pending = pipelines.length;
    let grace: NodeJS.Timeout | undefined;
    for (const pipeline of pipelines) {
      pipeline
        .catch((err: unknown) => {
          failures.push(err);
        })
        .finally(() => {
          pending -= 1;
          if (pending === 0) {
            clearTimeout(grace);
            done();
          } else if (failures.length > 0) grace ??= setTimeout(done, 250);
        });
    }
  });
  if (failures.length === 0) return;
  throw failures.find((err) => (err as NodeJS.ErrnoException | undefined)?.code !== 'ERR_STREAM_PREMATURE_CLOSE') ?? failures[0];
}
