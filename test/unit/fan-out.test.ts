import { describe, expect, it } from 'vitest';
import { allPipelines } from '../../src/storage/fan-out';

const failing = (code: string, afterMs: number) =>
  new Promise((_done, fail) => setTimeout(() => fail(Object.assign(new Error(code), { code })), afterMs));
const passing = (afterMs: number) => new Promise((done) => setTimeout(done, afterMs));

describe('allPipelines', () => {
  it('throws the cause, not the premature close another pipeline reported first', async () => {
    await expect(allPipelines([failing('ERR_STREAM_PREMATURE_CLOSE', 1), failing('ENOSPC', 20)])).rejects.toMatchObject({ code: 'ENOSPC' });
  });

  it('throws a premature close when that is all there is, and resolves when every pipeline does', async () => {
    await expect(allPipelines([failing('ERR_STREAM_PREMATURE_CLOSE', 1), passing(5)])).rejects.toMatchObject({
      code: 'ERR_STREAM_PREMATURE_CLOSE',
    });
    await expect(allPipelines([passing(1), passing(5)])).resolves.toBeUndefined();
  });

  it('does not wait for a pipeline that hangs after another failed', async () => {
    await expect(allPipelines([failing('ECONNRESET', 1), new Promise(() => undefined)])).rejects.toMatchObject({ code: 'ECONNRESET' });
  });
});
