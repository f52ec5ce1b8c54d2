/**
 * Following a long transfer (issue 14 item 5): bytes, throughput and ETA from heartbeats, as one
 * rewritten line on a terminal and as occasional plain lines elsewhere.
 */
import { describe, expect, it } from 'vitest';
import { formatTransfer, TransferMeter, transferOfHeartbeat, transferPrinter } from '../../src/client/transfer-progress';

const MiB = 1024 * 1024;

describe('transfer meter', () => {
  it('derives throughput and ETA from successive heartbeats', () => {
    const meter = new TransferMeter();
    expect(meter.add({ id: 'a', what: 'stageEtcdSnapshot etcd-1', atMs: 0, bytes: 0, total: 100 * MiB }).rate).toBeUndefined();
    const view = meter.add({ id: 'a', what: 'stageEtcdSnapshot etcd-1', atMs: 2000, bytes: 20 * MiB, total: 100 * MiB });
    expect(view.rate).toBe(10 * MiB);
    expect(view.etaSeconds).toBe(8);
    expect(formatTransfer(view)).toBe('stageEtcdSnapshot etcd-1: 20.0 MiB of 100.0 MiB, 10.0 MiB/s, ETA 8s');
  });

  it('shows bytes and throughput without an ETA when the size is not known; a retry starts its series again', () => {
    const meter = new TransferMeter();
    meter.add({ id: 'b', what: 'streamEtcdSnapshot', atMs: 0, bytes: 50 * MiB });
    expect(formatTransfer(meter.add({ id: 'b', what: 'streamEtcdSnapshot', atMs: 1000, bytes: 60 * MiB }))).toBe(
      'streamEtcdSnapshot: 60.0 MiB, 10.0 MiB/s',
    );
    // A new attempt from 0: the old samples (more bytes) are dropped, no negative rate.
    expect(meter.add({ id: 'b', what: 'streamEtcdSnapshot', atMs: 2000, bytes: 1 * MiB }).rate).toBeUndefined();
  });

  it('reads byte counts from heartbeat details, naming member, file or phase', () => {
    expect(transferOfHeartbeat('stageEtcdSnapshot', { bytes: 5, total: 10, member: 'etcd-2' })).toEqual({
      what: 'stageEtcdSnapshot etcd-2',
      bytes: 5,
      total: 10,
    });
    expect(transferOfHeartbeat('fetchDrillArtefact', { phase: 'fetch', file: 'etcd.db.gz', bytes: 5 })).toEqual({
      what: 'fetchDrillArtefact etcd.db.gz fetch',
      bytes: 5,
    });
    expect(transferOfHeartbeat('x', { waiting: 'etcd' })).toBeNull();
    expect(transferOfHeartbeat('x', undefined)).toBeNull();
  });
});

describe('transfer printer', () => {
  it('on a terminal: one line rewritten in place, wiped before a step line', () => {
    const written: string[] = [];
    const printer = transferPrinter({
      tty: true,
      write: (t) => written.push(t),
      line: () => {
        throw new Error('no plain lines on a TTY');
      },
      columns: 80,
    });
    printer.show([{ id: 'a', what: 'stage', bytes: MiB, total: 2 * MiB, rate: MiB, etaSeconds: 1 }]);
    printer.clear();
    printer.clear(); // nothing drawn: nothing to wipe
    expect(written).toEqual(['\r\x1b[2Kstage: 1.0 MiB of 2.0 MiB, 1.0 MiB/s, ETA 1s', '\r\x1b[2K']);
  });

  it('elsewhere: nothing for a short transfer, a plain line every interval for a long one', () => {
    let now = 0;
    const lines: string[] = [];
    const printer = transferPrinter({
      tty: false,
      write: () => {
        throw new Error('no control codes off a TTY');
      },
      line: (l) => lines.push(l),
      plainAfterMs: 10_000,
      now: () => now,
    });
    const view = (bytes: number) => [{ id: 'a', what: 'stage', bytes }];
    printer.show(view(1));
    now = 5_000;
    printer.show(view(2));
    expect(lines).toEqual([]);
    now = 10_000;
    printer.show(view(3));
    now = 15_000;
    printer.show(view(4));
    now = 20_000;
    printer.show(view(5));
    expect(lines).toEqual(['  ... stage: 3 B', '  ... stage: 5 B']);
  });
});
