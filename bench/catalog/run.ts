/**
 * bench/catalog: does the catalog stay fast with 1 000 sets and 100 000 change-capture segments?
 * Generates them (bench/catalog/synthetic.ts) in a local directory and in S3 (a moto server of the
 * benchmark's own), then times, per target, the catalog's old way (every key of the store, wal/
 * included) against the new one (one level, a delimiter listing) in the same run:
 *   - `backups list` (listBackupSets, in process),
 *   - status's catalog part (readCatalog + evaluateCluster),
 *   - a prune plan (the catalog, planRetention, the segment listing and planSegmentRetention, the
 *     dry run's sizes, the leftovers scan: what pruneBackupSetsWorkflow does before it deletes),
 *   - a point-in-time plan's listing (the catalog, the base snapshot, the chain to the target).
 * Prints the figures against the goals (list <= 2 s, prune plan <= 10 s) and exits 0 whether met
 * or not; 1 when the old and new ways disagree or something broke; 2 for bad options.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { parseConfig } from '../../src/config/load';
import type { Config, StorageTargetConfig } from '../../src/config/schema';
import { listBackupSets, readManifest, type CatalogEntry } from '../../src/catalog/catalog';
import { MANIFEST_FILE, openStore } from '../../src/storage';
import { evaluateCluster } from '../../src/status/objectives';
import { listSegmentObjects, deleteSegmentObjects, planRetention, planSegmentRetention } from '../../src/retention';
import { retentionInForce } from '../../src/retention/in-force';
import { segmentStore } from '../../src/capture/segment-store';
import { chainSegments, type SegmentName } from '../../src/capture/segments';
import { chooseBaseSnapshot, type PitrSnapshot } from '../../src/capture/point-in-time';
import { startMotoServer } from '../../src/sandbox/moto';
import { readCommandLine, parseTargets, positiveInteger } from '../support/cli';
import { runBenchmark, runMain } from '../support/lifecycle';
import { loadText, newRunDir, pad, repoRoot, verdict, writeResult } from '../support/results';
import { syntheticCatalog } from './synthetic';

const HELP = `npx tsx bench/catalog/run.ts [options]
  --sets N           backup sets per target (default 1000)
  --segments N       change-capture segments in the local target (default 100000)
  --s3-segments N    segments in the S3 target (default 10000: moto takes ~140 PutObject/s on 2 cores)
  --targets LIST     local,s3 (default both)
  --rounds N         timed rounds of each new-way figure, median reported (default 3; the old way runs once)
  --json             the figures as one JSON line on stdout too
exit 0 whether the goals are met or not; 1 when the old and new ways disagree or something broke; 2 for bad options`;

interface Options {
  sets: number;
  segments: number;
  s3Segments: number;
  targets: string[];
  rounds: number;
  json: boolean;
}

function parse(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      sets: { type: 'string', default: '1000' },
      segments: { type: 'string', default: '100000' },
      's3-segments': { type: 'string', default: '10000' },
      targets: { type: 'string', default: 'local,s3' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return undefined;
  return {
    sets: positiveInteger('sets', values.sets),
    segments: positiveInteger('segments', values.segments),
    s3Segments: positiveInteger('s3-segments', values['s3-segments']),
    targets: parseTargets(values.targets),
    rounds: positiveInteger('rounds', values.rounds),
    json: values.json,
  };
}

const CLUSTER = 'prod';
const CLUSTER_ID = '1402871592359120310';
const BUCKET = 'nnoe-dr-bench-catalog';
const GOALS = { listSeconds: 2, prunePlanSeconds: 10 };
/** A set every 6 hours, newest now: 1 000 sets span 250 days (most expire under the production profile). */
const EVERY_MS = 6 * 3600_000;

async function seconds<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - started) / 1000 };
}

async function median<T>(rounds: number, fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const runs: Array<{ value: T; seconds: number }> = [];
  for (let i = 0; i < rounds; i++) runs.push(await seconds(fn));
  return runs.sort((a, b) => a.seconds - b.seconds)[Math.floor(runs.length / 2)]!;
}

/** Runs `fn` on `items` with `limit` in flight. */
async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

// ------------------------------------------------------------------ the catalog, old and new

/** The catalog as it was before the delimiter listing: every key of the store, those ending in /manifest.json. */
async function oldCatalog(target: StorageTargetConfig, cluster?: string): Promise<CatalogEntry[]> {
  const store = await openStore(target);
  const setIds = (await store.list()).filter((k) => k.endsWith(`/${MANIFEST_FILE}`)).map((k) => k.slice(0, -MANIFEST_FILE.length - 1));
  const entries: CatalogEntry[] = [];
  await inParallel(setIds, 8, async (setId) => {
    const manifest = await readManifest(store, setId);
    if (cluster && manifest.cluster !== cluster) return;
    entries.push({
      setId,
      cluster: manifest.cluster,
      status: manifest.status,
      createdAt: manifest.createdAt,
      components: manifest.components.map((c) => c.component),
      targets: [target.name],
      bytes: manifest.components.flatMap((c) => c.artefacts).reduce((sum, a) => sum + a.bytes, 0),
      manifest,
    });
  });
  return entries.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

type Catalog = (cluster?: string) => Promise<CatalogEntry[]>;

/** status's catalog part for one cluster: the catalog read once, judged (nothing else of status: Temporal, etcd, agents). */
async function statusOf(catalog: Catalog): Promise<number> {
  const sets = await catalog();
  const lines = evaluateCluster({
    cluster: CLUSTER,
    now: Date.now(),
    components: ['etcd', 'phpipam', 'agent-cache'],
    unreadableTargets: [],
    sets: sets.map((s) => ({ setId: s.setId, status: s.status, createdAt: s.createdAt, components: s.components })),
    backupSchedule: null,
    drillSchedule: null,
    objectives: { captureMaxLagRevisions: 1000 },
    lastDrill: null,
    capture: { state: 'not-running', lastDurable: null, currentRevision: null } as never,
    running: [],
    agents: null,
  });
  return lines.length;
}

/** What pruneBackupSetsWorkflow does before it deletes, for one target (a dry run's report). */
async function prunePlan(
  catalog: Catalog,
  config: Config,
  target: StorageTargetConfig,
): Promise<{ expire: number; keep: number; segmentsGoing: number; leftovers: number }> {
  const sets = await catalog();
  const plan = planRetention({
    sets: sets.map((s) => ({ setId: s.setId, cluster: s.cluster, createdAt: s.createdAt, status: s.status })),
    policy: retentionInForce(config, CLUSTER),
    now: new Date(),
    protectedSetIds: [],
  });
  const expired = new Set(plan.expire.map((e) => e.setId));
  const survivors = sets
    .filter((s) => !expired.has(s.setId))
    .map((s) => {
      const etcd = s.manifest.components.find((c) => c.component === 'etcd');
      return {
        setId: s.setId,
        createdAt: s.createdAt,
        ...(etcd?.component === 'etcd' ? { snapshot: { revision: etcd.facts.revision, clusterId: etcd.facts.clusterId } } : {}),
      };
    });
  const store = await openStore(target);
  const objects = await listSegmentObjects(store, CLUSTER);
  const segments = planSegmentRetention({ cluster: CLUSTER, sets: survivors, keys: objects.map((o) => o.key) });
  const byKey = new Map(objects.map((o) => [o.key, o]));
  const going = await deleteSegmentObjects(
    store,
    segments.delete.map((k) => byKey.get(k)!),
    { dryRun: true },
  );
  const leftovers = await store.listLeftovers({ olderThan: new Date(Date.now() - 3600_000) });
  return { expire: plan.expire.length, keep: plan.keep.length, segmentsGoing: going.objects, leftovers: leftovers.length };
}

/** A point-in-time plan's reading: the snapshots, the base for `targetRevision`, the chain up to it (the live cluster's answer left out). */
async function pitrPlan(
  catalog: Catalog,
  list: (after: number, target: number) => Promise<SegmentName[]>,
  targetRevision: number,
): Promise<{ setId: string; segments: string[] }> {
  const snapshots: PitrSnapshot[] = (await catalog(CLUSTER))
    .filter((s) => s.status === 'complete')
    .flatMap((s) =>
      s.manifest.components.flatMap((c) =>
        c.component === 'etcd'
          ? [{ setId: s.setId, createdMs: Date.parse(s.createdAt), revision: c.facts.revision, clusterId: c.facts.clusterId }]
          : [],
      ),
    );
  const base = chooseBaseSnapshot(snapshots, { revision: targetRevision }, CLUSTER_ID);
  if (!base) throw new Error(`no snapshot at or before revision ${targetRevision}`);
  const chain = chainSegments(await list(base.revision, targetRevision), base.revision);
  if (chain.reachable < targetRevision) throw new Error(`the chain from ${base.setId} reaches ${chain.reachable}, not ${targetRevision}`);
  return { setId: base.setId, segments: chain.segments.filter((s) => s.from <= targetRevision).map((s) => s.key) };
}

// ------------------------------------------------------------------ generation

async function generate(
  target: StorageTargetConfig,
  data: ReturnType<typeof syntheticCatalog>,
  putS3: (key: string, body: string) => Promise<void>,
): Promise<number> {
  const started = performance.now();
  const manifests = new Map(data.sets.map((s) => [`${s.setId}/${MANIFEST_FILE}`, JSON.stringify(s.manifest)]));
  // In S3 one artefact per set besides the manifest (PutObject on moto is the slow part); locally all of them.
  const keys = [
    ...data.sets.flatMap((s) => (target.type === 's3' ? [s.keys[0]!, s.keys[s.keys.length - 1]!] : s.keys)),
    ...data.segmentKeys,
  ];
  let done = 0;
  const report = setInterval(
    () => console.log(`  ${target.name}: ${done}/${keys.length} objects, ${((performance.now() - started) / 1000).toFixed(0)} s`),
    30_000,
  );
  try {
    await inParallel(keys, target.type === 's3' ? 32 : 16, async (key) => {
      const body = manifests.get(key) ?? 'x';
      if (target.type === 's3') await putS3(key, body);
      else {
        const path = join(target.path, ...key.split('/'));
        await mkdir(join(path, '..'), { recursive: true });
        await writeFile(path, body);
      }
      done += 1;
    });
  } finally {
    clearInterval(report);
  }
  return (performance.now() - started) / 1000;
}

// ------------------------------------------------------------------ main

interface TargetFigures {
  target: string;
  sets: number;
  segments: number;
  objects: number;
  generateSeconds: number;
  list: { old: number; new: number };
  status: { old: number; new: number };
  prunePlan: { old: number; new: number; expire: number; keep: number; segmentsGoing: number };
  pitrPlan: { old: number; new: number; segmentsUsed: number };
  cliListSeconds: number | null;
}

async function main(argv: string[]): Promise<number> {
  const line = readCommandLine(argv, parse, HELP);
  if ('exitCode' in line) return line.exitCode;
  const options = line.options;
  return runBenchmark(async (teardown) => {
    const runDir = newRunDir('catalog');
    console.log(
      `bench/catalog: ${options.sets} sets, ${options.segments} segments locally, ${options.s3Segments} in S3; load ${loadText()}; logs in ${runDir}`,
    );
    const moto = options.targets.includes('s3') ? await startMotoServer([BUCKET]) : null;
    if (moto) teardown.add('moto', () => moto.stop());
    process.env.BENCH_CATALOG_S3_KEY = 'testing';
    const raw = {
      workDir: join(runDir, 'work'),
      clusters: [
        {
          name: CLUSTER,
          etcd: { members: [{ name: 'etcd-1', node: 'node-1', clientUrl: 'https://127.0.0.1:1', peerUrl: 'https://127.0.0.1:2' }] },
        },
      ],
      storage: [
        ...(options.targets.includes('local') ? [{ name: 'local', type: 'local', path: join(runDir, 'local') }] : []),
        ...(moto
          ? [
              {
                name: 's3',
                type: 's3',
                bucket: BUCKET,
                endpoint: moto.endpoint,
                forcePathStyle: true,
                accessKeyId: { env: 'BENCH_CATALOG_S3_KEY' },
                secretAccessKey: { env: 'BENCH_CATALOG_S3_KEY' },
              },
            ]
          : []),
      ],
      retention: { profile: 'production' },
    };
    const config = parseConfig(raw);
    const configPath = join(runDir, 'nnoe-dr.json');
    await writeFile(configPath, JSON.stringify(raw));
    teardown.add('local target', () => rm(join(runDir, 'local'), { recursive: true, force: true }));

    const figures: TargetFigures[] = [];
    let disagreements = 0;
    for (const target of config.storage) {
      teardown.checkInterrupted();
      const segmentsHere = target.type === 's3' ? options.s3Segments : options.segments;
      const data = syntheticCatalog({
        cluster: CLUSTER,
        clusterId: CLUSTER_ID,
        sets: options.sets,
        segments: segmentsHere,
        newest: new Date(),
        everyMs: EVERY_MS,
        revisionsPerSegment: 10,
      });
      console.log(`\n${target.name}: generating ${data.sets.length} sets and ${data.segmentKeys.length} change-capture objects ...`);
      const generateSeconds = await generate(target, data, (key, body) =>
        moto!.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body })).then(() => undefined),
      );
      const objects = (await (await openStore(target)).list()).length;
      console.log(`  ${objects} objects in ${generateSeconds.toFixed(1)} s (${(objects / generateSeconds).toFixed(0)}/s)`);

      const newCatalog: Catalog = (cluster) => listBackupSets(config, { targets: [target.name], cluster });
      const oldWay: Catalog = (cluster) => oldCatalog(target, cluster);
      const segments = segmentStore(config);
      const rounds = options.rounds;

      await newCatalog(); // warm-up (module loading, the page cache), for neither way to pay it
      const listNew = await median(rounds, () => newCatalog());
      const listOld = await seconds(() => oldWay());
      const same = (a: CatalogEntry[], b: CatalogEntry[]) =>
        JSON.stringify(a.map((e) => e.setId)) === JSON.stringify(b.map((e) => e.setId));
      if (!same(listNew.value, listOld.value) || listNew.value.length !== options.sets) {
        console.error(
          `  DISAGREE: backups list found ${listNew.value.length} sets the new way, ${listOld.value.length} the old way (generated ${options.sets})`,
        );
        disagreements += 1;
      }
      console.log(`  backups list: new ${listNew.seconds.toFixed(2)} s, old ${listOld.seconds.toFixed(2)} s`);

      const statusNew = await median(rounds, () => statusOf(newCatalog));
      const statusOld = await seconds(() => statusOf(oldWay));
      console.log(`  status (catalog part): new ${statusNew.seconds.toFixed(2)} s, old ${statusOld.seconds.toFixed(2)} s`);

      const pruneNew = await median(rounds, () => prunePlan(newCatalog, config, target));
      const pruneOld = await seconds(() => prunePlan(oldWay, config, target));
      if (JSON.stringify(pruneNew.value) !== JSON.stringify(pruneOld.value)) {
        console.error(`  DISAGREE: prune plan new ${JSON.stringify(pruneNew.value)}, old ${JSON.stringify(pruneOld.value)}`);
        disagreements += 1;
      }
      console.log(
        `  prune plan: new ${pruneNew.seconds.toFixed(2)} s, old ${pruneOld.seconds.toFixed(2)} s (expire ${pruneNew.value.expire}, keep ${pruneNew.value.keep}, ${pruneNew.value.segmentsGoing} segments would go)`,
      );

      // Restore to a little before the newest captured revision (the incident was a moment ago), between two snapshots.
      const pitrTarget = data.lastRevision - 555;
      const pitrNew = await median(rounds, () =>
        pitrPlan(
          newCatalog,
          (after, to) => segments.listSegmentsAfter(CLUSTER, CLUSTER_ID, after, { targets: [target.name], enough: (s) => s.from > to }),
          pitrTarget,
        ),
      );
      const pitrOld = await seconds(() => pitrPlan(oldWay, () => segments.listSegments(CLUSTER, CLUSTER_ID, [target.name]), pitrTarget));
      if (JSON.stringify(pitrNew.value) !== JSON.stringify(pitrOld.value)) {
        console.error(
          `  DISAGREE: PITR plan new ${pitrNew.value.setId} + ${pitrNew.value.segments.length} segments, old ${pitrOld.value.setId} + ${pitrOld.value.segments.length}`,
        );
        disagreements += 1;
      }
      console.log(
        `  PITR plan (to revision ${pitrTarget}): new ${pitrNew.seconds.toFixed(2)} s, old ${pitrOld.seconds.toFixed(2)} s (${pitrNew.value.segments.length} segments from ${pitrNew.value.setId})`,
      );

      // The command an operator types, a process of its own (tsx compiles the CLI on start: that time is in it).
      const cli = await seconds(async () =>
        spawnSync(
          join(repoRoot, 'node_modules', '.bin', 'tsx'),
          [join(repoRoot, 'src/client/cli.ts'), '-c', configPath, 'backups', 'list', '--target', target.name],
          { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
        ),
      );
      const cliOk =
        cli.value.status === 0 && cli.value.stdout.split('\n').filter((l) => l.startsWith(`${CLUSTER}-`)).length === options.sets;
      if (!cliOk) console.error(`  nnoe-dr backups list failed (exit ${cli.value.status}): ${cli.value.stderr.slice(-500)}`);
      console.log(`  nnoe-dr backups list, a process (tsx): ${cli.seconds.toFixed(2)} s`);

      figures.push({
        target: target.name,
        sets: options.sets,
        segments: segmentsHere,
        objects,
        generateSeconds,
        list: { old: listOld.seconds, new: listNew.seconds },
        status: { old: statusOld.seconds, new: statusNew.seconds },
        prunePlan: {
          old: pruneOld.seconds,
          new: pruneNew.seconds,
          expire: pruneNew.value.expire,
          keep: pruneNew.value.keep,
          segmentsGoing: pruneNew.value.segmentsGoing,
        },
        pitrPlan: { old: pitrOld.seconds, new: pitrNew.seconds, segmentsUsed: pitrNew.value.segments.length },
        cliListSeconds: cliOk ? cli.seconds : null,
      });
    }

    console.log(`\nsummary (seconds; new = this code, old = every key listed; load ${loadText()}):`);
    console.log(
      `${pad('target', 7)}${pad('sets', 6, true)}${pad('segments', 10, true)}  ${pad('list new/old', 18)}${pad('status new/old', 18)}${pad('prune plan new/old', 22)}${pad('PITR plan new/old', 20)}cli list`,
    );
    const pair = (p: { old: number; new: number }) => `${p.new.toFixed(2)}/${p.old.toFixed(2)} (${(p.old / p.new).toFixed(1)}x)`;
    for (const f of figures) {
      console.log(
        `${pad(f.target, 7)}${pad(String(f.sets), 6, true)}${pad(String(f.segments), 10, true)}  ${pad(pair(f.list), 18)}${pad(pair(f.status), 18)}${pad(pair(f.prunePlan), 22)}${pad(pair(f.pitrPlan), 20)}${f.cliListSeconds?.toFixed(2) ?? 'failed'}`,
      );
    }
    for (const f of figures) {
      console.log(
        `${f.target}: backups list ${f.list.new.toFixed(2)} s <= ${GOALS.listSeconds} s: ${verdict(f.list.new <= GOALS.listSeconds)}; prune plan ${f.prunePlan.new.toFixed(2)} s <= ${GOALS.prunePlanSeconds} s: ${verdict(f.prunePlan.new <= GOALS.prunePlanSeconds)}`,
      );
    }
    writeResult(runDir, { options, load: loadText(), goals: GOALS, figures, disagreements }, options.json);
    return disagreements > 0 ? 1 : 0;
  });
}

runMain(main);
